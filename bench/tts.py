"""Benchmark: how soon a caller hears the agent, by the way the text reaches ElevenLabs.

    python3 tasks.py bench tts [--turns 5] [--rounds 2] [--rtt-ms 30] [--word-ms 25]

A text pipeline (``omnivoice.pipeline.TextPipeline``) answers the turns of a scripted
caller. Its model writes each answer word by word, ``--word-ms`` a word; ElevenLabs is the
in-repo fake (``tests/support/fake_elevenlabs.py``) with a simulated network round trip of
``--rtt-ms``: setting up a connection costs two round trips (TCP and TLS) on top of the
handshake, an HTTP request three, and each generation's first audio one. Three ways, side
by side, interleaved round by round:

* **streamed**: the answer's words streamed into the call's ``multi-stream-input``
  socket, opened when the call starts, each sentence flushed as it ends;
* **sentence sockets**: one ``stream-input`` socket per sentence (``stream_text=False``);
* **sentence HTTP**: one HTTP streaming request per sentence (``transport="http"``).

Figures per way: the pipeline's ``response_ms`` (the end of the caller's speech to the
first audio handed to the bridge: what the caller waits for, before the phone line's own
delay) and ``tts_first_audio_ms`` (the first text sent to synthesis to its first audio),
best and median over every turn, and the median's ratio to the streamed way's. The model's
time to its first sentence is the same for all three. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.fake_elevenlabs import API_KEY, VOICE, FakeElevenLabs
from support.fake_pipeline import FakeSTT

from omnivoice.audio import TWILIO
from omnivoice.pipeline import LanguageModel, Message, TextDelta, TextPipeline, ToolCall
from omnivoice.realtime import FunctionDeclaration, Transcript, Usage
from omnivoice.realtime.provider import SpeechStarted, SpeechStopped
from omnivoice.testing import open_probe
from omnivoice_elevenlabs_tts import ElevenLabsTTS

ANSWER = (
    "Sure, I can help with that. Your order left our warehouse this morning. "
    "It should arrive on Thursday, before noon."
)
WAYS = {
    "streamed": ({}, {}),
    "sentence sockets": ({}, {"stream_text": False}),
    "sentence HTTP": ({"transport": "http"}, {}),
}


class TimedModel(LanguageModel):
    """Writes :data:`ANSWER` a word at a time, ``word_s`` a word."""

    name = "timed-model"

    def __init__(self, word_s: float) -> None:
        self.word_s = word_s

    def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[FunctionDeclaration] = (),
        temperature: float | None = None,
    ) -> AsyncIterator[TextDelta | ToolCall]:
        return self._words()

    async def _words(self) -> AsyncIterator[TextDelta | ToolCall]:
        for index, word in enumerate(ANSWER.split(" ")):
            await anyio.sleep(self.word_s)
            yield TextDelta(word if index == 0 else " " + word)


async def call(fake: FakeElevenLabs, way: str, turns: int, word_s: float) -> list[dict[str, Any]]:
    """One call of ``turns`` turns; the pipeline's figures of each."""
    tts_options, pipeline_options = WAYS[way]
    url = fake.http_url if tts_options.get("transport") == "http" else fake.api_url
    tts = ElevenLabsTTS(API_KEY, voice_id=VOICE, url=url, **tts_options)
    stt = FakeSTT(accepts=[TWILIO])
    pipeline = TextPipeline(stt, TimedModel(word_s), tts, vad=False, **pipeline_options)
    figures = []
    try:
        async with open_probe(pipeline, input_format=TWILIO, output_format=TWILIO) as probe:
            for turn in range(turns):
                stt.streams[-1].emit(
                    SpeechStarted(),
                    Transcript(f"turn {turn}", is_input=True, is_final=True),
                    SpeechStopped(),
                )
                usage = await probe.wait_for(Usage, count=turn + 1)
                figures.append(dict(usage.details["pipeline"]))
    finally:
        await pipeline.aclose()
    return figures


async def main(args: argparse.Namespace) -> None:
    async with FakeElevenLabs() as fake:
        fake.rtt_s = args.rtt_ms / 1000
        fake.ms_per_char = 10
        results: dict[str, list[dict[str, Any]]] = {way: [] for way in WAYS}
        for _ in range(args.rounds):
            for way in WAYS:
                results[way] += await call(fake, way, args.turns, args.word_ms / 1000)
        assert fake.violations == [], fake.violations
    print(
        f"ElevenLabs fake, {args.rtt_ms:g} ms round trip; the model writes a word every "
        f"{args.word_ms:g} ms; {args.rounds} calls of {args.turns} turns per way"
    )
    print()
    print("| way | response_ms best (median) | vs streamed | tts_first_audio_ms best (median) |")
    print("|---|---:|---:|---:|")
    reference = statistics.median(r["response_ms"] for r in results["streamed"])
    for way, figures in results.items():
        response = [r["response_ms"] for r in figures]
        first = [r["tts_first_audio_ms"] for r in figures]
        print(
            f"| {way} | {min(response):.0f} ({statistics.median(response):.0f}) "
            f"| {statistics.median(response) / reference:.2f} "
            f"| {min(first):.0f} ({statistics.median(first):.0f}) |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rtt-ms", type=float, default=30.0)
    parser.add_argument("--word-ms", type=float, default=25.0)
    anyio.run(main, parser.parse_args())
