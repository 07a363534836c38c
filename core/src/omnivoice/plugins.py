"""Loading plugins and looking up what they register.

Built-in plugins (the core's own codecs and providers) load first, then every entry point
of the ``omnivoice`` group, each in isolation: a plugin that fails to import or whose hook
raises is reported with its error and skipped, and the rest load.

``OMNIVOICE_PLUGINS=a,b`` limits the entry-point plugins to those names (an entry point's
name or its distribution's); ``OMNIVOICE_PLUGINS=`` (set but empty) loads built-ins only.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import logging
import os
import traceback
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import attrs
import pluggy

from omnivoice import hookspecs
from omnivoice.audio.format import AudioFormat
from omnivoice.errors import PluginConflictError, PluginNotFoundError
from omnivoice.registration import Capability, Kind, Registration

__all__ = [
    "ENTRY_POINT_GROUP",
    "PLUGINS_ENV_VAR",
    "PluginInfo",
    "Registry",
    "get_registry",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "omnivoice"
PLUGINS_ENV_VAR = "OMNIVOICE_PLUGINS"
CORE_DISTRIBUTION = "omnivoice-core"

_BUILTIN_PLUGINS: tuple[str, ...] = (
    "omnivoice.default_plugins.codecs",
    "omnivoice.default_plugins.echo",
    "omnivoice.default_plugins.commands",
    "omnivoice.default_plugins.telemetry",
)

_REGISTRATION_HOOKS: Mapping[Kind, str] = {
    Kind.REALTIME: "register_realtime_providers",
    Kind.STT: "register_stt_providers",
    Kind.LLM: "register_llm_providers",
    Kind.TTS: "register_tts_providers",
    Kind.CODEC: "register_codecs",
    Kind.TRANSPORT: "register_transports",
}

# Names this project publishes, so a missing one comes with the command that installs it.
_PUBLISHED: Mapping[tuple[Kind, str], str] = {
    (Kind.REALTIME, "openai-realtime"): "omnivoice-openai-realtime",
    (Kind.REALTIME, "openai"): "omnivoice-openai-realtime",
    (Kind.REALTIME, "gemini-live"): "omnivoice-gemini-live",
    (Kind.REALTIME, "gemini"): "omnivoice-gemini-live",
    (Kind.STT, "deepgram"): "omnivoice-deepgram-stt",
    (Kind.TTS, "elevenlabs"): "omnivoice-elevenlabs-tts",
    (Kind.TRANSPORT, "twilio"): "omnivoice-twilio",
    (Kind.TRANSPORT, "telnyx"): "omnivoice-telnyx",
    (Kind.STT, "local"): "omnivoice-local",
    (Kind.LLM, "local"): "omnivoice-local",
    (Kind.TTS, "local"): "omnivoice-local",
}


@attrs.frozen
class PluginInfo:
    """One loaded (or failed) plugin and what it registered."""

    name: str
    distribution: str
    version: str
    builtin: bool = False
    registrations: tuple[Registration, ...] = ()
    error: str | None = None
    """Why the plugin was skipped (its exception, with the place it was raised)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "builtin": self.builtin,
            "registrations": [r.to_dict() for r in self.registrations],
            "error": self.error,
        }


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def _describe(exc: BaseException) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {frame[0].filename}:{frame[0].lineno})" if frame else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _requested_plugins(environ: Mapping[str, str]) -> frozenset[str] | None:
    """The plugin names ``OMNIVOICE_PLUGINS`` allows, or ``None`` for all."""
    value = environ.get(PLUGINS_ENV_VAR)
    if value is None:
        return None
    return frozenset(part.strip() for part in value.split(",") if part.strip())


class _Recorder:
    """The ``register`` callable handed to one plugin for one kind."""

    def __init__(self, kind: Kind, plugin: str, distribution: str) -> None:
        self.kind = kind
        self.plugin = plugin
        self.distribution = distribution
        self.registrations: list[Registration] = []

    def __call__(
        self,
        name: str,
        factory: Callable[..., Any],
        *,
        accepts: Iterable[AudioFormat] | None = None,
        produces: Iterable[AudioFormat] | None = None,
        capabilities: Capability | Iterable[Capability | str] | None = None,
        env_vars: Iterable[str] = (),
        aliases: Iterable[str] = (),
        priority: int = 0,
        description: str = "",
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind.label} needs a non-empty name, got {name!r}")
        if not callable(factory):
            raise TypeError(f"the factory of {self.kind.label} {name!r} is not callable")
        # Declared once: what the factory (a provider class) says, unless given here.
        accepts = _declared(factory, "accepts", ()) if accepts is None else tuple(accepts)
        produces = _declared(factory, "produces", ()) if produces is None else tuple(produces)
        if capabilities is None:
            capabilities = _declared(factory, "capabilities", Capability.NONE)
        bad = [f for f in (*accepts, *produces) if not isinstance(f, AudioFormat)]
        if bad:
            raise TypeError(f"{self.kind.label} {name!r}: not an AudioFormat: {bad[0]!r}")
        self.registrations.append(
            Registration(
                kind=self.kind,
                name=name,
                factory=factory,
                plugin=self.plugin,
                distribution=self.distribution,
                accepts=accepts,
                produces=produces,
                capabilities=capabilities,
                env_vars=env_vars,
                aliases=aliases,
                priority=priority,
                description=description,
            )
        )


class Registry:
    """The loaded plugins and everything they registered, looked up by kind and name.

    Build one with :meth:`load`; most code uses the process-wide :func:`get_registry`.
    """

    def __init__(self, manager: pluggy.PluginManager, plugins: Iterable[PluginInfo]) -> None:
        self.manager = manager
        self.plugins: tuple[PluginInfo, ...] = tuple(plugins)
        self.hook_errors = 0
        """How many times an observer hook raised (each one is also logged)."""
        index: dict[tuple[Kind, str], list[Registration]] = defaultdict(list)
        for info in self.plugins:
            for registration in info.registrations:
                for name in registration.names:
                    index[registration.kind, name].append(registration)
        self._index = dict(index)

    # --- loading ------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        *,
        environ: Mapping[str, str] | None = None,
        extra: Iterable[tuple[str, object]] = (),
    ) -> Registry:
        """Load the built-in plugins, the entry-point plugins, then ``extra``.

        ``extra`` is a list of ``(name, plugin)`` pairs registered as if installed (handy
        for applications and tests that keep a plugin in their own code).
        """
        environ = os.environ if environ is None else environ
        manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        manager.add_hookspecs(hookspecs)
        candidates: list[PluginInfo] = []
        for module in _BUILTIN_PLUGINS:
            info = PluginInfo(module, CORE_DISTRIBUTION, _version(CORE_DISTRIBUTION), builtin=True)
            candidates.append(
                _register(manager, info, functools.partial(importlib.import_module, module))
            )
        candidates.extend(_load_entry_points(manager, _requested_plugins(environ)))
        for name, plugin in extra:
            info = PluginInfo(name, getattr(plugin, "__name__", name), "0+local")
            candidates.append(_register(manager, info, functools.partial(_identity, plugin)))
        return cls(manager, [_collect(manager, info) for info in candidates])

    # --- lookups ------------------------------------------------------------------------

    def registrations(self, kind: Kind | None = None) -> list[Registration]:
        """Every registration (of one kind), in load order; shadowed ones included."""
        return [r for info in self.plugins for r in info.registrations if kind in (None, r.kind)]

    def names(self, kind: Kind) -> list[str]:
        """The names one can :meth:`get` for ``kind``, sorted."""
        return sorted(name for k, name in self._index if k is kind)

    def get(self, kind: Kind, name: str) -> Registration:
        """The registration that answers to ``name``.

        Raises :class:`PluginNotFoundError` if none does (the message lists what is
        installed and how to install the missing one) and :class:`PluginConflictError` if
        two plugins register it with the same priority.
        """
        candidates = self._index.get((kind, name))
        if not candidates:
            raise PluginNotFoundError(self._not_found_message(kind, name))
        ranked = sorted(candidates, key=lambda r: r.priority, reverse=True)
        if len(ranked) > 1 and ranked[0].priority == ranked[1].priority:
            tied = [r for r in ranked if r.priority == ranked[0].priority]
            raise PluginConflictError(_conflict_message(kind, name, tied))
        return ranked[0]

    def create(self, kind: Kind, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Look ``name`` up and call its factory with the given arguments."""
        return self.get(kind, name).factory(*args, **kwargs)

    def conflicts(self) -> list[str]:
        """A message for each name that two plugins register with the same priority."""
        found = []
        for (kind, name), candidates in sorted(self._index.items(), key=lambda i: i[0][1]):
            try:
                if len(candidates) > 1:
                    self.get(kind, name)
            except PluginConflictError as exc:
                found.append(str(exc))
        return found

    def _not_found_message(self, kind: Kind, name: str) -> str:
        installed = sorted({(r.name, r.distribution) for r in self.registrations(kind)})
        listing = ", ".join(f"{n} ({d})" for n, d in installed) or "none"
        message = f"no {kind.label} named {name!r} is installed; installed: {listing}."
        distribution = _PUBLISHED.get((kind, name))
        if distribution is not None:
            message += f" Install it with: pip install {distribution}"
        failed = [p for p in self.plugins if p.error]
        if failed:
            names = ", ".join(f"{p.name} ({p.distribution})" for p in failed)
            message += f" Plugins that failed to load: {names}; run `omnivoice plugins`."
        return message

    # --- observer hooks -----------------------------------------------------------------

    def notify(self, hook_name: str, **kwargs: Any) -> None:
        """Call every implementation of an observer hook, each in isolation.

        An implementation that raises is logged with its plugin's name and counted in
        :attr:`hook_errors`; the others still run.
        """
        for plugin, exc in self.call_each(hook_name, **kwargs):
            self.hook_errors += 1
            log.error("plugin %s failed in %s: %s", plugin, hook_name, _describe(exc))

    def call_each(self, hook_name: str, **kwargs: Any) -> Iterator[tuple[str, BaseException]]:
        """Call each implementation of ``hook_name`` in pluggy's order (``tryfirst`` ones
        first, then the latest registered first, ``trylast`` ones last); yield
        ``(plugin, exception)`` for each that raised."""
        # get_hookimpls() lists them in the reverse of the order pluggy calls them.
        for impl in reversed(getattr(self.manager.hook, hook_name).get_hookimpls()):
            try:
                impl.function(**{k: v for k, v in kwargs.items() if k in impl.argnames})
            except Exception as exc:
                yield impl.plugin_name, exc


def _declared(factory: object, attribute: str, default: Any) -> Any:
    """A provider class's own declaration (not a property, nor anything else)."""
    value = getattr(factory, attribute, default)
    if isinstance(default, tuple):
        return tuple(value) if isinstance(value, tuple | list) else default
    return value if isinstance(value, type(default)) else default


class _UnknownHookError(Exception):
    """A plugin implements hooks in a way omnivoice cannot call."""


def _identity(plugin: object) -> object:
    return plugin


def _register(
    manager: pluggy.PluginManager, info: PluginInfo, load: Callable[[], object]
) -> PluginInfo:
    """Import a plugin and register it with the manager; record any failure."""
    try:
        plugin = load()
        manager.register(plugin, name=info.name)
        unknown = sorted(
            caller.name
            for caller in manager.get_hookcallers(plugin) or ()
            if not caller.has_spec()
            and any(not impl.optionalhook for impl in caller.get_hookimpls())
        )
        if unknown:
            manager.unregister(plugin)
            raise _UnknownHookError(f"implements unknown hooks {unknown} (misspelled?)")
        wrappers = sorted(
            caller.name
            for caller in manager.get_hookcallers(plugin) or ()
            for impl in caller.get_hookimpls()
            if impl.plugin is plugin and (impl.hookwrapper or impl.wrapper)
        )
        if wrappers:
            manager.unregister(plugin)
            raise _UnknownHookError(
                f"implements {wrappers} as wrappers; omnivoice calls each implementation "
                "on its own, so hook wrappers are not supported"
            )
    except Exception as exc:
        log.warning("plugin %s (%s) was skipped: %s", info.name, info.distribution, _describe(exc))
        return attrs.evolve(info, error=_describe(exc))
    return info


def _load_entry_points(
    manager: pluggy.PluginManager, requested: frozenset[str] | None
) -> Iterator[PluginInfo]:
    seen: set[tuple[str, str]] = set()
    entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    for entry_point in sorted(entry_points, key=lambda ep: ep.name):
        dist = entry_point.dist
        distribution = dist.name if dist is not None else "unknown"
        if (entry_point.name, distribution) in seen:
            continue  # the same distribution seen twice on sys.path
        seen.add((entry_point.name, distribution))
        if requested is not None and not {entry_point.name, distribution} & requested:
            continue
        version = dist.version if dist is not None else "0+unknown"
        info = PluginInfo(entry_point.name, distribution, version)
        yield _register(manager, info, entry_point.load)


def _collect(manager: pluggy.PluginManager, info: PluginInfo) -> PluginInfo:
    """Run the registration hooks of one plugin; skip the plugin whole if one raises."""
    if info.error is not None:
        return info
    plugin = manager.get_plugin(info.name)
    registrations: list[Registration] = []
    for kind, hook_name in _REGISTRATION_HOOKS.items():
        for impl in getattr(manager.hook, hook_name).get_hookimpls():
            if impl.plugin is not plugin:
                continue
            recorder = _Recorder(kind, info.name, info.distribution)
            try:
                impl.function(**{"register": recorder} if impl.argnames else {})
            except Exception as exc:
                manager.unregister(plugin)
                log.warning(
                    "plugin %s (%s) was skipped: %s", info.name, info.distribution, _describe(exc)
                )
                return attrs.evolve(info, error=f"in {hook_name}: {_describe(exc)}")
            registrations.extend(recorder.registrations)
    return attrs.evolve(info, registrations=tuple(registrations))


def _conflict_message(kind: Kind, name: str, tied: list[Registration]) -> str:
    who = " and ".join(f"{r.distribution} (plugin {r.plugin})" for r in tied)
    return (
        f"{kind.label} {name!r} is registered by {who}, all with priority "
        f"{tied[0].priority}; uninstall one, limit loading with {PLUGINS_ENV_VAR}, "
        "or register the preferred one with a higher priority"
    )


_registry: Registry | None = None


def get_registry(*, reload: bool = False) -> Registry:
    """The process-wide registry, loaded on first use (or again with ``reload=True``)."""
    global _registry
    if _registry is None or reload:
        _registry = Registry.load()
    return _registry
