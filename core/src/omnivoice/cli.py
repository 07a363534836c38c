"""The ``omnivoice`` command line. Plugins add subcommands through ``register_commands``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from omnivoice import __version__
from omnivoice.plugins import PluginInfo, Registry, get_registry

__all__ = ["main"]


def main(argv: Sequence[str] | None = None, *, registry: Registry | None = None) -> int:
    """Run the command line; return the exit status.

    ``registry`` defaults to the process-wide one (:func:`omnivoice.plugins.get_registry`).
    """
    registry = registry or get_registry()
    parser = _build_parser(registry)
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        status = handler(args)
    except KeyboardInterrupt:
        return 130
    return int(status or 0)


def _build_parser(registry: Registry) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omnivoice", description="Realtime voice AI on phone lines."
    )
    parser.add_argument("--version", action="version", version=f"omnivoice {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")

    plugins = subparsers.add_parser("plugins", help="list installed plugins and what they register")
    plugins.add_argument("--json", action="store_true", help="print JSON instead of text")
    plugins.set_defaults(handler=lambda args: _plugins(registry, as_json=args.json))

    for plugin, exc in registry.call_each("register_commands", subparsers=subparsers):
        print(f"omnivoice: plugin {plugin} could not add its commands: {exc}", file=sys.stderr)
    return parser


def _plugins(registry: Registry, *, as_json: bool) -> int:
    if as_json:
        document = [info.to_dict() for info in registry.plugins]
        print(json.dumps(document, indent=2))
        return 0
    for info in registry.plugins:
        print(_describe_plugin(info))
    for conflict in registry.conflicts():
        print(f"conflict: {conflict}")
    return 0


def _describe_plugin(info: PluginInfo) -> str:
    origin = "built-in" if info.builtin else f"plugin {info.name}"
    lines = [f"{info.distribution} {info.version} ({origin})"]
    if info.error:
        lines.append(f"  failed to load: {info.error}")
    elif not info.registrations:
        lines.append("  registers nothing")
    for r in info.registrations:
        line = f"  {r.kind.value:<9} {r.name}"
        if r.aliases:
            line += f" (alias {', '.join(r.aliases)})"
        details = []
        if r.accepts:
            details.append("in " + ", ".join(map(str, r.accepts)))
        if r.produces:
            details.append("out " + ", ".join(map(str, r.produces)))
        if r.capabilities:
            details.append("can " + ", ".join(r.capabilities.names))
        if r.env_vars:
            details.append("reads " + ", ".join(r.env_vars))
        if details:
            line += "  [" + "; ".join(details) + "]"
        lines.append(line)
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
