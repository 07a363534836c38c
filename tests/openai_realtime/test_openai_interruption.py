"""Barge-in against the fake server: cancel, then truncate to what was heard or delete."""

from __future__ import annotations

import anyio
import pytest
from support.fake_openai import FakeOpenAI, open_session

from omnivoice.realtime.provider import SpeechStarted
from omnivoice.realtime.types import AudioChunk, HeardResponse, Transcript
from omnivoice_openai_realtime import Provider

pytestmark = pytest.mark.anyio

NO_SERVER_CANCEL = {
    "type": "server_vad",
    "silence_duration_ms": 500,
    "create_response": True,
    "interrupt_response": False,
}
"""The server leaves the response running on speech: only the client cancels it."""


def agent_audio(ms: int) -> bytes:
    return bytes(i % 200 for i in range(ms * 8))  # mu-law, 8 bytes per ms


def received(chunks: list[AudioChunk]) -> int:
    return sum(len(c.audio) for c in chunks)


async def test_barge_in_cancels_the_response_and_truncates_to_what_was_heard(
    fake: FakeOpenAI,
) -> None:
    provider = Provider("test", url=fake.url, turn_detection=NO_SERVER_CANCEL)
    with anyio.fail_after(5):
        async with open_session(provider) as probe:
            conn = await fake.connection(0)
            response = await conn.respond(
                audio=agent_audio(1000), transcript="Our opening hours are nine to five.", hold=True
            )
            await probe.wait_for(AudioChunk, lambda c: received(probe.of_type(AudioChunk)) >= 8000)
            await conn.speech_started()
            await probe.wait_for(SpeechStarted)
            await probe.session.interrupt(340)  # the bridge: the caller heard 340 ms
            cancel = await conn.wait_for("response.cancel")
            truncate = await conn.wait_for("conversation.item.truncate")
            await probe.wait_for(AudioChunk, lambda c: c.is_final)
    assert cancel == {"type": "response.cancel", "response_id": response.id}
    assert truncate == {
        "type": "conversation.item.truncate",
        "item_id": response.item_id,
        "content_index": 0,
        "audio_end_ms": 340,
    }
    types = [e["type"] for e in conn.events]
    assert types.index("response.cancel") < types.index("conversation.item.truncate")
    assert response.status == "cancelled"
    assert conn.items[str(response.item_id)]["audio_ms"] == 340
    # One final chunk closes the interrupted response for the consumer.
    assert [c.is_final for c in probe.of_type(AudioChunk)].count(True) == 1


async def test_when_the_server_cancelled_already_the_client_still_truncates(
    fake: FakeOpenAI,
) -> None:
    provider = Provider("test", url=fake.url)  # interrupt_response: true (the default)
    with anyio.fail_after(5):
        async with open_session(provider) as probe:
            conn = await fake.connection(0)
            response = await conn.respond(
                audio=agent_audio(800), transcript="Let me tell you about", hold=True
            )
            await probe.wait_for(AudioChunk, lambda c: received(probe.of_type(AudioChunk)) >= 6400)
            await conn.speech_started()  # the server cancels the response itself
            await probe.wait_for(AudioChunk, lambda c: c.is_final)
            await probe.session.interrupt(450)
            truncate = await conn.wait_for("conversation.item.truncate")
        await conn.wait_closed()
    assert response.status == "cancelled"
    assert truncate["audio_end_ms"] == 450
    assert truncate["item_id"] == response.item_id
    assert conn.of_type("response.cancel") == []  # nothing left to cancel
    # The server sent no transcript.done for the cancelled item: the text so far is final.
    finals = [t for t in probe.of_type(Transcript) if t.is_final]
    assert finals == [Transcript("Let me tell you about", is_input=False, is_final=True)]


async def test_an_answer_nobody_heard_is_deleted(fake: FakeOpenAI) -> None:
    provider = Provider("test", url=fake.url, turn_detection=NO_SERVER_CANCEL)
    with anyio.fail_after(5):
        async with open_session(provider) as probe:
            conn = await fake.connection(0)
            response = await conn.respond(audio=agent_audio(500), transcript="Hello", hold=True)
            await probe.wait_for(AudioChunk)
            await conn.speech_started()
            await probe.wait_for(SpeechStarted)
            await probe.session.interrupt(0)
            delete = await conn.wait_for("conversation.item.delete")
            await probe.wait_for(AudioChunk, lambda c: c.is_final)
        await conn.wait_closed()
    assert delete == {"type": "conversation.item.delete", "item_id": response.item_id}
    assert conn.of_type("conversation.item.truncate") == []
    assert str(response.item_id) not in conn.items


async def test_audio_after_the_barge_in_is_not_forwarded(fake: FakeOpenAI) -> None:
    provider = Provider("test", url=fake.url, turn_detection=NO_SERVER_CANCEL)
    with anyio.fail_after(5):
        async with open_session(provider) as probe:
            conn = await fake.connection(0)
            conn.late_cancel = True
            response = await conn.respond(audio=agent_audio(200), transcript="One", hold=True)
            await probe.wait_for(AudioChunk, lambda c: received(probe.of_type(AudioChunk)) >= 1600)
            await probe.session.interrupt(100)
            await conn.wait_for("conversation.item.truncate")
            # Deltas the server sent before it saw the cancel: dropped, not forwarded.
            ids = {"response_id": response.id, "item_id": response.item_id, "output_index": 0}
            await conn.send({"type": "response.output_audio.delta", **ids, "delta": "AAAA"})
            await conn.send({"type": "response.output_audio_transcript.delta", **ids, "delta": "x"})
            await conn.cancel_response()
            await probe.wait_for(AudioChunk, lambda c: c.is_final)
            # And a late delta of a finished response too.
            await conn.send({"type": "response.output_audio.delta", **ids, "delta": "AAAA"})
            await conn.send({"type": "input_audio_buffer.speech_started", "item_id": "u9"})
            await probe.wait_for(SpeechStarted)
    audio = probe.of_type(AudioChunk)
    assert received(audio) == 1600
    assert [c.is_final for c in audio][-1]  # the response was closed by its response.done
    assert Transcript("x", is_input=False, is_final=False) not in probe.events


async def test_the_truncation_never_exceeds_the_audio_received(fake: FakeOpenAI) -> None:
    provider = Provider("test", url=fake.url)
    with anyio.fail_after(5):
        async with open_session(provider) as probe:
            conn = await fake.connection(0)
            await conn.respond(audio=agent_audio(300), transcript="Short.")
            await probe.wait_for(AudioChunk, lambda c: c.is_final)
            # Playback estimates can run past the end: the caller heard it all, nothing is cut.
            await probe.session.interrupt(5000)
            second = await conn.respond(audio=agent_audio(300), transcript="Again.")
            await probe.wait_for(AudioChunk, lambda c: c.is_final, count=2)
            await probe.session.interrupt(120)
            truncate = await conn.wait_for("conversation.item.truncate")
            await probe.session.interrupt(60)  # a second barge-in on the same item: nothing
            await conn.respond(audio=agent_audio(100))
            await probe.wait_for(AudioChunk, lambda c: c.is_final, count=3)
        await conn.wait_closed()  # everything the client sent has been read
    assert truncate["item_id"] == second.item_id
    assert truncate["audio_end_ms"] == 120
    assert len(conn.of_type("conversation.item.truncate")) == 1
    assert conn.of_type("conversation.item.delete") == []


async def test_each_response_cut_short_is_truncated_to_its_own_heard_position(
    fake: FakeOpenAI,
) -> None:
    provider = Provider("test", url=fake.url, turn_detection=NO_SERVER_CANCEL)
    with anyio.fail_after(5):
        async with open_session(provider) as probe:
            conn = await fake.connection(0)
            # "Let me check" plays while the answer after it is already arriving.
            first = await conn.respond(audio=agent_audio(800), transcript="Let me check.")
            second = await conn.respond(
                audio=agent_audio(1000), transcript="Your order shipped on Monday.", hold=True
            )
            await probe.wait_for(AudioChunk, lambda c: c.response_id == second.id)
            await conn.speech_started()
            await probe.wait_for(SpeechStarted)
            heard = [HeardResponse(first.id, 500, 800), HeardResponse(second.id, 0, 1000)]
            await probe.session.interrupt(500, responses=heard)
            cancel = await conn.wait_for("response.cancel")
            truncate = await conn.wait_for("conversation.item.truncate")
            delete = await conn.wait_for("conversation.item.delete")
            await probe.wait_for(AudioChunk, lambda c: c.is_final and c.response_id == second.id)
    assert cancel["response_id"] == second.id
    # Each by its own figure: the first to what was heard of it, the second (unheard) gone.
    assert (truncate["item_id"], truncate["audio_end_ms"]) == (first.item_id, 500)
    assert delete["item_id"] == second.item_id
    assert conn.items[str(first.item_id)]["audio_ms"] == 500
