"""The plugin registry: loading, isolation of broken plugins, lookups, conflicts."""

from __future__ import annotations

import importlib.metadata
import logging
from types import SimpleNamespace
from typing import Any

import pytest

from omnivoice import hookimpl
from omnivoice.audio import OPENAI, TWILIO
from omnivoice.calls import CallInfo
from omnivoice.errors import PluginConflictError, PluginNotFoundError
from omnivoice.plugins import PLUGINS_ENV_VAR, Registry
from omnivoice.registration import Capability, Kind, Register

BUILTINS_ONLY = {PLUGINS_ENV_VAR: ""}


def _provider(**options: Any) -> dict[str, Any]:
    return options


def realtime_plugin(name: str, *, priority: int = 0, aliases: tuple[str, ...] = ()) -> object:
    """A plugin object registering one realtime provider."""

    class Plugin:
        @hookimpl
        def register_realtime_providers(self, register: Register) -> None:
            register(
                name,
                _provider,
                accepts=[TWILIO],
                produces=[OPENAI],
                capabilities=[Capability.USER_TRANSCRIPTS, "agent_transcripts"],
                env_vars=["ACME_KEY"],
                aliases=aliases,
                priority=priority,
            )

    return Plugin()


def test_builtins_only_when_env_var_is_empty() -> None:
    registry = Registry.load(environ=BUILTINS_ONLY)
    assert registry.plugins
    assert all(info.builtin for info in registry.plugins)
    assert {info.distribution for info in registry.plugins} == {"omnivoice-core"}


def test_env_var_limits_entry_points_by_name_or_distribution() -> None:
    # The workspace's plugin distributions are installed in the development environment.
    registry = Registry.load(environ={PLUGINS_ENV_VAR: "twilio, omnivoice-telnyx"})
    loaded = {info.distribution for info in registry.plugins if not info.builtin}
    assert loaded == {"omnivoice-twilio", "omnivoice-telnyx"}


def test_all_entry_points_load_without_the_env_var() -> None:
    registry = Registry.load(environ={})
    loaded = {info.distribution for info in registry.plugins if not info.builtin}
    installed = {
        ep.dist.name
        for ep in importlib.metadata.entry_points(group="omnivoice")
        if ep.dist is not None
    }
    assert loaded == installed
    assert "omnivoice-twilio" in loaded
    assert all(info.error is None for info in registry.plugins)


def test_registration_carries_its_metadata() -> None:
    registry = Registry.load(environ=BUILTINS_ONLY, extra=[("acme", realtime_plugin("acme"))])
    registration = registry.get(Kind.REALTIME, "acme")
    assert registration.plugin == "acme"
    assert registration.accepts == (TWILIO,)
    assert registration.produces == (OPENAI,)
    assert registration.capabilities == Capability.TRANSCRIPTS
    assert registration.env_vars == ("ACME_KEY",)
    assert registry.create(Kind.REALTIME, "acme", model="m") == {"model": "m"}
    assert registration.to_dict()["accepts"] == ["mulaw@8000"]


def test_lookup_by_alias() -> None:
    plugin = realtime_plugin("acme-realtime", aliases=("acme",))
    registry = Registry.load(environ=BUILTINS_ONLY, extra=[("acme", plugin)])
    assert registry.get(Kind.REALTIME, "acme").name == "acme-realtime"
    assert {"acme", "acme-realtime"} <= set(registry.names(Kind.REALTIME))


def test_missing_published_name_says_what_to_install() -> None:
    registry = Registry.load(environ=BUILTINS_ONLY, extra=[("acme", realtime_plugin("acme"))])
    with pytest.raises(PluginNotFoundError) as info:
        registry.get(Kind.REALTIME, "openai")
    message = str(info.value)
    assert "no realtime provider named 'openai'" in message
    assert "acme (" in message  # what is installed
    assert "pip install omnivoice-openai-realtime" in message


def test_missing_unknown_name_has_no_install_hint() -> None:
    registry = Registry.load(environ=BUILTINS_ONLY)
    with pytest.raises(PluginNotFoundError) as info:
        registry.get(Kind.TTS, "nobody-publishes-this")
    assert "installed: none" in str(info.value)
    assert "pip install" not in str(info.value)


def test_same_name_same_priority_is_an_error_naming_both() -> None:
    registry = Registry.load(
        environ=BUILTINS_ONLY,
        extra=[("first", realtime_plugin("dup")), ("second", realtime_plugin("dup"))],
    )
    with pytest.raises(PluginConflictError) as info:
        registry.get(Kind.REALTIME, "dup")
    assert "plugin first" in str(info.value)
    assert "plugin second" in str(info.value)
    assert len(registry.conflicts()) == 1


def test_higher_priority_wins() -> None:
    registry = Registry.load(
        environ=BUILTINS_ONLY,
        extra=[("low", realtime_plugin("dup")), ("high", realtime_plugin("dup", priority=10))],
    )
    assert registry.get(Kind.REALTIME, "dup").plugin == "high"
    assert registry.conflicts() == []


class _Broken:
    @hookimpl
    def register_realtime_providers(self, register: Register) -> None:
        register("half", _provider)
        raise RuntimeError("boom")

    @hookimpl
    def call_started(self, call: CallInfo) -> None:
        raise AssertionError("a skipped plugin must not be called")


def test_a_plugin_whose_hook_raises_is_skipped_whole() -> None:
    registry = Registry.load(
        environ=BUILTINS_ONLY, extra=[("broken", _Broken()), ("good", realtime_plugin("good"))]
    )
    broken = next(p for p in registry.plugins if p.name == "broken")
    assert broken.error is not None
    assert "register_realtime_providers" in broken.error
    assert "RuntimeError: boom" in broken.error
    assert broken.registrations == ()
    assert registry.get(Kind.REALTIME, "good").plugin == "good"
    with pytest.raises(PluginNotFoundError, match="failed to load: broken"):
        registry.get(Kind.REALTIME, "half")
    registry.notify("call_started", call=CallInfo(call_id="c1", transport="test"))
    assert registry.hook_errors == 0


def test_an_invalid_registration_is_reported_as_the_plugins_error() -> None:
    class NotCallable:
        @hookimpl
        def register_codecs(self, register: Register) -> None:
            register("bad", "not a factory")  # type: ignore[arg-type]

    registry = Registry.load(environ=BUILTINS_ONLY, extra=[("bad", NotCallable())])
    (info,) = [p for p in registry.plugins if p.name == "bad"]
    assert info.error is not None
    assert "not callable" in info.error


def test_a_plugin_with_an_unknown_hook_is_skipped() -> None:
    class Typo:
        @hookimpl
        def register_realtime_provider(self, register: Register) -> None:  # missing "s"
            pass

    registry = Registry.load(environ=BUILTINS_ONLY, extra=[("typo", Typo())])
    (info,) = [p for p in registry.plugins if p.name == "typo"]
    assert info.error is not None
    assert "register_realtime_provider" in info.error


def test_an_entry_point_that_fails_to_import_is_reported(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    broken = importlib.metadata.EntryPoint(
        name="ghost", value="omnivoice_no_such_module.plugin", group="omnivoice"
    )
    working = importlib.metadata.EntryPoint(
        name="codecs-again", value="omnivoice.default_plugins.codecs", group="omnivoice"
    )

    def entry_points(**selection: Any) -> list[importlib.metadata.EntryPoint]:
        assert selection == {"group": "omnivoice"}
        return [broken, working]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    with caplog.at_level(logging.WARNING, logger="omnivoice.plugins"):
        registry = Registry.load(environ={})
    ghost = next(p for p in registry.plugins if p.name == "ghost")
    assert ghost.error is not None
    assert "ModuleNotFoundError" in ghost.error
    assert "ghost" in caplog.text
    # The module is already registered as a built-in: pluggy refuses it twice, and says so.
    again = next(p for p in registry.plugins if p.name == "codecs-again")
    assert again.error is not None


def test_observer_errors_are_counted_and_do_not_stop_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[str] = []

    class Failing:
        @hookimpl
        def call_ended(self, call: CallInfo, transcript: Any, metrics: Any) -> None:
            raise ValueError("observer bug")

    class Recording:
        @hookimpl
        def call_ended(self, call: CallInfo) -> None:  # may take fewer arguments
            seen.append(call.call_id)

    registry = Registry.load(
        environ=BUILTINS_ONLY, extra=[("failing", Failing()), ("recording", Recording())]
    )
    with caplog.at_level(logging.ERROR, logger="omnivoice.plugins"):
        registry.notify(
            "call_ended", call=CallInfo(call_id="c7", transport="t"), transcript=[], metrics={}
        )
    assert seen == ["c7"]
    assert registry.hook_errors == 1
    assert "observer bug" in caplog.text


def test_observers_run_in_pluggys_order() -> None:
    order: list[str] = []

    def observer(name: str, **marks: bool) -> object:
        class Observer:
            @hookimpl(**marks)
            def call_started(self, call: CallInfo) -> None:
                order.append(name)

        return Observer()

    registry = Registry.load(
        environ=BUILTINS_ONLY,
        extra=[
            ("last", observer("last", trylast=True)),
            ("early", observer("early")),
            ("first", observer("first", tryfirst=True)),
            ("late", observer("late")),
        ],
    )
    registry.notify("call_started", call=CallInfo(call_id="c1", transport="t"))
    # As pluggy itself calls them: tryfirst, then the latest registered first, trylast.
    assert order == ["first", "late", "early", "last"]
    ours, order[:] = list(order), []
    registry.manager.hook.call_started(call=CallInfo(call_id="c2", transport="t"))
    assert order == ours


@pytest.mark.parametrize("marker", ["wrapper", "hookwrapper"])
def test_a_hook_wrapper_is_refused_with_its_reason(marker: str) -> None:
    class Wrapping:
        @hookimpl(**{marker: True})
        def call_started(self, call: CallInfo) -> Any:
            yield

    registry = Registry.load(environ=BUILTINS_ONLY, extra=[("wrapping", Wrapping())])
    info = next(p for p in registry.plugins if p.name == "wrapping")
    assert info.error is not None
    assert "call_started" in info.error
    assert "wrappers" in info.error
    assert registry.manager.get_plugin("wrapping") is None  # never called


def test_plugin_info_json_shape() -> None:
    registry = Registry.load(environ=BUILTINS_ONLY, extra=[("acme", realtime_plugin("acme"))])
    document = next(p for p in registry.plugins if p.name == "acme").to_dict()
    assert set(document) >= {"distribution", "version", "registrations", "error"}
    assert document["registrations"][0]["kind"] == "realtime"
    assert document["registrations"][0]["name"] == "acme"
    assert document["error"] is None


def test_extra_plugin_may_be_a_module() -> None:
    module = SimpleNamespace(__name__="acme_module")
    registry = Registry.load(environ=BUILTINS_ONLY, extra=[("acme", module)])
    assert next(p for p in registry.plugins if p.name == "acme").error is None
