"""Gateway.from_config: what a realtime Config builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnivoice.audio import TWILIO
from omnivoice.default_plugins.echo import EchoProvider
from omnivoice.errors import PluginNotFoundError
from omnivoice.gateway import Config, RealtimeConfig
from omnivoice.gateway.records import CallRecords
from omnivoice.gateway.server import Gateway
from omnivoice.plugins import PLUGINS_ENV_VAR, Registry
from omnivoice.realtime import Client, FunctionDeclaration, ProcessConfig, Provider
from omnivoice.telephony import Start
from omnivoice.testing import ScriptedProvider

pytestmark = pytest.mark.anyio

START = Start(
    stream_id="s", call_id="c", account_id=None, custom_parameters={}, media_format=TWILIO
)


def registry(*plugins: str) -> Registry:
    return Registry.load(environ={PLUGINS_ENV_VAR: ",".join(plugins)})


async def session_of(gateway: Gateway) -> tuple[Provider, ProcessConfig]:
    return await gateway.sessions(START)


async def test_a_named_provider_gets_its_options_and_each_call_its_config() -> None:
    config = Config(
        realtime=RealtimeConfig(
            provider="echo",
            instructions="be brief",
            voice="marin",
            functions=[FunctionDeclaration("lookup")],
            temperature=0.3,
            options={"pause_ms": 250},
        ),
        lead_ms=60,
        mark_every=1,
    )
    gateway = Gateway.from_config(config, registry=registry("twilio"))
    provider, process = await session_of(gateway)
    assert isinstance(provider, EchoProvider)
    assert provider.pause_ms == 250
    assert (process.instructions, process.voice, process.temperature) == ("be brief", "marin", 0.3)
    assert [f.name for f in process.functions] == ["lookup"]
    assert (gateway.settings.lead_ms, gateway.settings.mark_every) == (60, 1)
    assert set(gateway.transports) == {"twilio"}


async def test_fallbacks_make_a_fallback_client() -> None:
    primary, backup = ScriptedProvider("primary"), ScriptedProvider("backup")
    config = Config(realtime=RealtimeConfig(provider=primary, fallbacks=[backup]))
    provider, _ = await session_of(Gateway.from_config(config, registry=registry()))
    assert isinstance(provider, Client)
    assert provider.providers == (primary, backup)


def test_transports_can_be_chosen_and_a_missing_one_says_what_to_install() -> None:
    config = Config(transports=("twilio",))
    gateway = Gateway.from_config(config, registry=registry("twilio", "telnyx"))
    assert set(gateway.transports) == {"twilio"}
    with pytest.raises(PluginNotFoundError, match="pip install omnivoice-telnyx"):
        Gateway.from_config(Config(transports=("telnyx",)), registry=registry("twilio"))


def test_a_missing_provider_says_what_to_install() -> None:
    with pytest.raises(PluginNotFoundError, match="pip install omnivoice-openai-realtime"):
        Gateway.from_config(Config(realtime=RealtimeConfig(provider="openai")), registry=registry())


def test_records_register_the_call_record_writer(tmp_path: Path) -> None:
    gateway = Gateway.from_config(Config(records=tmp_path / "r"), registry=registry())
    writers = [p for p in gateway.registry.manager.get_plugins() if isinstance(p, CallRecords)]
    assert len(writers) == 1
    assert (tmp_path / "r").is_dir()
