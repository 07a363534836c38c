"""``omnivoice demo``: a whole phone conversation, offline, through the real gateway.

The gateway serves the local text pipeline (PocketSphinx, the demo responder, eSpeak NG)
on a free localhost port; the simulated phone calls it through Twilio's real media-stream
protocol and speaks a scripted caller (synthesised by the local text-to-speech), one
utterance a turn. At the end: the transcript, a latency table per turn, the word error
rate of the recognised caller, a stereo recording (caller left, agent right) and the
call record.
"""

from __future__ import annotations

import datetime as dt
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import attrs
import numpy as np

from omnivoice import hookimpl
from omnivoice.audio import TWILIO, g711
from omnivoice.audio.converter import Converter
from omnivoice.audio.format import Encoding
from omnivoice.calls import CallInfo
from omnivoice.gateway.config import Config, PipelineMode, TextConfig
from omnivoice.gateway.events import Event, EventType
from omnivoice.gateway.records import read_call_record
from omnivoice.gateway.server import Gateway
from omnivoice.plugins import Registry, get_registry
from omnivoice.registration import Kind
from omnivoice.telephony.phone import CallReport, SimulatedPhone
from omnivoice_local.llm import CURRENT_TIME_TOOL
from omnivoice_local.script import DEMO_CALLER_SCRIPT
from omnivoice_local.tts import LocalTTS
from omnivoice_local.wer import word_error_rate

__all__ = ["DemoResult", "run_demo"]

INSTRUCTIONS = "You are the offline demo assistant of omnivoice."


@attrs.frozen
class DemoResult:
    """What the demo call produced."""

    record: Mapping[str, Any]
    """The call record (see :func:`omnivoice.gateway.records.read_call_record`)."""
    report: CallReport
    """The simulated phone's report."""
    word_error_rate: float
    """Of the recognised caller's words against the script."""
    recording: Path
    record_path: Path


def _current_time(call_id: str, name: str, arguments: Mapping[str, Any]) -> dict[str, str]:
    return {"time": dt.datetime.now().isoformat(timespec="minutes")}


class _Progress:
    """Shows the call's events as they happen."""

    def __init__(self, show: Callable[[str], None]) -> None:
        self._show = show

    @hookimpl
    def call_event(self, call: CallInfo, event: Event) -> None:
        data = event.data
        line = None
        if event.type is EventType.USER_TRANSCRIPT and data.get("final"):
            line = f"caller: {data['text']}"
        elif event.type is EventType.AGENT_TRANSCRIPT and data.get("final"):
            line = f"agent:  {data['text']}"
        elif event.type is EventType.FUNCTION_CALL:
            line = f"        (function call {data['name']})"
        elif event.type is EventType.INTERRUPTION:
            line = f"        (the caller interrupted after {data['heard_ms']} ms)"
        elif event.type is EventType.ERROR:
            line = f"        (error: {data['message']})"
        if line is not None:
            self._show(f"[{event.time:5.1f} s] {line}")


async def _caller_turns(script: Sequence[str]) -> list[bytes]:
    """The script, spoken by the local voice, as the phone's mu-law 8 kHz."""
    tts = LocalTTS()
    voice_format = tts.produces[0]
    converter = Converter()
    turns = []
    for sentence in script:
        pcm = b"".join(
            [chunk async for chunk in tts.synthesize(sentence, audio_format=voice_format)]
        )
        turns.append(converter.convert(pcm, voice_format, TWILIO))
    await tts.aclose()
    return turns


def _write_stereo(path: Path, caller: bytes, agent: bytes) -> None:
    """Caller left, agent right, PCM16 8 kHz."""
    import wave

    left = np.frombuffer(g711.decode(caller, Encoding.MULAW), "<i2")
    right = np.frombuffer(g711.decode(agent, Encoding.MULAW), "<i2")
    n = max(len(left), len(right))
    stereo = np.zeros((n, 2), dtype="<i2")
    stereo[: len(left), 0] = left
    stereo[: len(right), 1] = right
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(TWILIO.sample_rate)
        wav.writeframes(stereo.tobytes())


async def run_demo(
    *,
    recording: Path = Path("demo-call.wav"),
    records: Path = Path("demo-records"),
    script: Sequence[str] = DEMO_CALLER_SCRIPT,
    show: Callable[[str], None] = print,
    registry: Registry | None = None,
) -> DemoResult:
    """Run the demo call; ``show`` receives progress lines."""
    registry = registry if registry is not None else get_registry()
    config = Config(
        mode=PipelineMode.TEXT,
        stt_provider="local",
        llm_provider="local",
        tts_provider="local",
        text=TextConfig(
            instructions=INSTRUCTIONS,
            functions=[CURRENT_TIME_TOOL],
            on_function_call=_current_time,
            stt_options={"phrases": list(script)},
        ),
        transports=("twilio",),
        mark_every=1,
    )
    show("omnivoice demo: an offline phone call through the gateway")
    show("  synthesising the caller's script with the local voice ...")
    turns = await _caller_turns(script)
    gateway = Gateway.from_config(config, registry=registry)
    writer = gateway.write_records(records)
    progress = _Progress(show)
    registry.manager.register(progress, name="demo-progress")
    try:
        async with anyio.create_task_group() as tasks:
            url: str = await tasks.start(_serve, gateway)
            show(f"  gateway on {url}; the caller dials in (Twilio media stream)\n")
            phone = SimulatedPhone(
                url.replace("http://", "ws://") + "/twilio/media",
                registry.create(Kind.TRANSPORT, "twilio"),
                turns,
                TWILIO,
                linger_s=0.5,
                pause_s=0.8,
                reply_timeout_s=15.0,
            )
            report = await phone.run()
            tasks.cancel_scope.cancel()
    finally:
        registry.manager.unregister(progress)
        registry.manager.unregister(writer)
    (record_path,) = writer.paths.values()
    record = read_call_record(record_path)
    _write_stereo(recording, bytes(phone.spoken), bytes(phone.heard))
    heard = " ".join(t["text"] for t in record["transcript"] or [] if t["role"] == "user")
    wer = word_error_rate(" ".join(script), heard)
    return DemoResult(record, report, wer, recording, record_path)


async def _serve(gateway: Gateway, *, task_status: anyio.abc.TaskStatus[str]) -> None:
    await gateway.serve("127.0.0.1", 0, on_ready=task_status.started)


def summary(result: DemoResult) -> str:
    """The transcript, the per-turn latency table and the figures, as text."""
    lines = ["", "Transcript (as the caller heard it):"]
    for turn in result.record["transcript"] or []:
        who = "caller" if turn["role"] == "user" else "agent "
        text = turn["text"] if turn["role"] == "user" else (turn.get("heard_text") or "")
        cut = " [interrupted]" if turn.get("interrupted") else ""
        lines.append(f"  {turn['start']:5.1f} s  {who}  {text}{cut}")
    timings = [
        e["details"]["pipeline"]
        for e in result.record["events"]
        if e["type"] == EventType.USAGE.value and "pipeline" in e.get("details", {})
    ]
    latencies = (result.record["metrics"] or {}).get("response_latencies_ms", [])
    lines += ["", "Latency per turn (ms):", _table(timings, latencies)]
    metrics = result.record["metrics"] or {}
    lines += [
        "",
        f"Recognition word error rate of the caller: {result.word_error_rate:.0%}",
        f"Turns {metrics.get('turns', 0)}, interruptions {metrics.get('interruptions', 0)}, "
        f"function calls {metrics.get('function_calls', 0)}, errors {metrics.get('errors', 0)}",
        f"Recording (caller left, agent right): {result.recording}",
        f"Call record: {result.record_path}",
    ]
    return "\n".join(lines)


_COLUMNS = {
    "stt_final_ms": "STT final",
    "llm_first_token_ms": "LLM first token",
    "tts_first_audio_ms": "TTS first audio",
    "response_ms": "response",
}


def _table(timings: list[Mapping[str, Any]], latencies: list[float]) -> str:
    keys = [key for key in _COLUMNS if any(key in t for t in timings)]
    header = ["turn", *(_COLUMNS[key] for key in keys), "to the caller"]
    rows = []
    for index in range(max(len(timings), len(latencies))):
        timing = timings[index] if index < len(timings) else {}
        row = [str(index + 1)]
        row += [f"{timing[k]:.0f}" if isinstance(timing.get(k), int | float) else "-" for k in keys]
        row.append(f"{latencies[index]:.0f}" if index < len(latencies) else "-")
        rows.append(row)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  " + "  ".join(cell.rjust(width) for cell, width in zip(r, widths, strict=True))
        for r in [header, *rows]
    )


def command(recording: Path, records: Path) -> int:
    """The ``omnivoice demo`` command."""
    started = time.monotonic()

    def show(line: str) -> None:
        print(line, flush=True)

    result = anyio.run(functools.partial(run_demo, recording=recording, records=records, show=show))
    show(summary(result))
    show(f"\nDone in {time.monotonic() - started:.0f} s.")
    return 0 if result.record["complete"] else 1
