"""One call's ``multi-stream-input`` socket against the fake: contexts per response, text as
it is written, barge-in, the 5-context limit, keep-alives, and a socket that drops."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import pytest
from elevenlabs_tts.conftest import tts_for
from support.fake_elevenlabs import API_KEY, FakeElevenLabs

from omnivoice.audio import TWILIO, AudioFormat, Encoding
from omnivoice.pipeline import Flush, SpeechStream
from omnivoice.realtime import WordTiming

pytestmark = pytest.mark.anyio

ANSWER = "Hello, thank you for calling. We open at nine tomorrow."


async def speak(
    stream: SpeechStream, pieces: Sequence[str | Flush]
) -> tuple[bytes, list[WordTiming]]:
    """One response from ``pieces`` (then its end): its audio and words."""
    tx, rx = anyio.create_memory_object_stream[str | Flush](len(pieces) + 1)
    for piece in pieces:
        tx.send_nowait(piece)
    tx.close()
    audio = bytearray()
    words: list[WordTiming] = []
    with anyio.fail_after(10), rx:
        async with stream.speak(rx) as spoken:
            async for piece in spoken:
                audio += piece.audio
                words.extend(piece.words)
    return bytes(audio), words


def by_words(text: str) -> list[str]:
    return [word + " " for word in text.split()]


def timed(words: list[WordTiming]) -> list[tuple[str, float, float]]:
    return [(w.text, w.start_ms, w.end_ms) for w in words]


async def test_one_socket_per_call_and_one_context_per_response(fake: FakeElevenLabs) -> None:
    tts = tts_for(fake)
    async with tts.open_stream(audio_format=TWILIO) as stream:
        socket = await fake.connection(0)  # open before any response
        assert socket.messages == []
        first, first_words = await speak(stream, by_words(ANSWER))
        second, second_words = await speak(stream, by_words("Goodbye now."))
    assert len(fake.connections) == 1
    assert socket.voice_id == "voice-1"
    assert socket.multi
    assert socket.headers["xi-api-key"] == API_KEY
    assert socket.params == {
        "model_id": "eleven_flash_v2_5",
        "output_format": "ulaw_8000",
        "sync_alignment": "true",
        "inactivity_timeout": "180",
    }
    assert list(socket.contexts) == ["r1", "r2"]
    for context, audio, words, text in [
        (socket.contexts["r1"], first, first_words, ANSWER),
        (socket.contexts["r2"], second, second_words, "Goodbye now."),
    ]:
        assert context.text.split() == text.split()
        assert context.closed  # closed when done
        assert context.final_sent
        assert bytes(context.audio) == audio  # mu-law, byte for byte
        assert timed(words) == context.words()  # each word as the alignment times it
    assert socket.closed_by_client  # close_socket when the call ended


async def test_the_text_goes_out_as_it_is_written_and_each_sentence_at_once(
    fake: FakeElevenLabs,
) -> None:
    tts = tts_for(fake)
    tx, rx = anyio.create_memory_object_stream[str | Flush](16)
    heard: list[bytes] = []
    first_audio = anyio.Event()
    async with tts.open_stream(audio_format=TWILIO) as stream:
        socket = await fake.connection(0)
        with anyio.fail_after(10), rx:
            async with stream.speak(rx) as spoken, anyio.create_task_group() as tasks:

                async def write() -> None:
                    with tx:
                        for piece in ["Hel", "lo ", "there. ", "How "]:
                            await tx.send(piece)
                        # Before the rest is written, the first sentence is being spoken.
                        await first_audio.wait()
                        await tx.send("are you?")

                tasks.start_soon(write)
                async for piece in spoken:
                    heard.append(piece.audio)
                    first_audio.set()
    context = socket.contexts["r1"]
    assert context.texts == ["Hello ", "there. ", "How ", "are ", "you? "]
    texts = [m.get("text") for m in socket.messages if m.get("flush")]
    assert texts == ["there. ", "you? "]  # each sentence flushed as it ended
    assert b"".join(heard) == bytes(context.audio)


async def test_barge_in_closes_the_context_at_once_and_nothing_of_it_comes_after(
    fake: FakeElevenLabs,
) -> None:
    fake.pace_s = 0.01  # the answer's audio takes a while to come
    tts = tts_for(fake)
    async with tts.open_stream(audio_format=TWILIO) as stream:
        socket = await fake.connection(0)
        tx, rx = anyio.create_memory_object_stream[str | Flush](64)
        with anyio.fail_after(10), tx, rx:
            for piece in by_words(ANSWER * 3):
                tx.send_nowait(piece)
            tx.send_nowait(Flush())
            async with stream.speak(rx) as spoken:
                first = await anext(aiter(spoken))
            context = socket.contexts["r1"]
            await fake.wait_until(lambda: context.closed)
            assert len(context.audio) < len(ANSWER * 3) * 160  # it was still speaking
        # The next response hears only itself, although the first one's audio goes on.
        audio, _ = await speak(stream, by_words("Sorry, go on."))
        await fake.wait_until(lambda: context.final_sent)
    assert first.audio
    assert audio == bytes(socket.contexts["r2"].audio)
    assert context.audio_after_close > 0
    # What came after the close (and what was on its way) was dropped, counted.
    dropped = stream.stats.dropped_audio_bytes
    assert context.audio_after_close <= dropped <= len(context.audio) - len(first.audio)


async def barge_in(stream: SpeechStream, fake: FakeElevenLabs, socket: int = 0) -> None:
    """A response cut off once the vendor is speaking it: its audio is still on its way
    when its context is closed."""
    tx, rx = anyio.create_memory_object_stream[str | Flush](64)
    with anyio.fail_after(10), tx, rx:
        for piece in [*by_words(ANSWER), Flush()]:
            tx.send_nowait(piece)
        connection = fake.connections[socket]
        count = len(connection.contexts)
        async with stream.speak(rx):
            await fake.wait_until(
                lambda: (
                    len(connection.contexts) > count
                    and list(connection.contexts.values())[-1].generations > 0
                )
            )


async def test_old_contexts_are_awaited_rather_than_exceed_five(fake: FakeElevenLabs) -> None:
    fake.pace_s = 0.02  # a closed context's end comes after its queued audio
    tts = tts_for(fake, context_close_timeout=10.0)
    async with tts.open_stream(audio_format=TWILIO) as stream:
        socket = await fake.connection(0)
        for _ in range(7):  # seven barge-ins in a row
            await barge_in(stream, fake)
        assert len(socket.active()) <= 5
        audio, _ = await speak(stream, by_words("Yes?"))
    assert socket.error is None  # never max_active_conversations
    assert len(fake.connections) == 1
    assert len(socket.contexts) == 8
    assert audio == bytes(socket.contexts["r8"].audio)


async def test_the_socket_is_replaced_rather_than_hit_the_limit(fake: FakeElevenLabs) -> None:
    fake.pace_s = 0.05  # ends of closed contexts come late
    tts = tts_for(fake, context_close_timeout=0.05)
    async with tts.open_stream(audio_format=TWILIO) as stream:
        old = await fake.connection(0)
        for _ in range(5):
            await barge_in(stream, fake)
        assert len(old.active()) == 5
        audio, _ = await speak(stream, by_words("Yes?"))
        new = await fake.connection(1)
    assert old.error is None
    assert old.closed_by_client  # the old socket was closed with close_socket
    assert list(new.contexts) == ["r6"]
    assert audio == bytes(new.contexts["r6"].audio)


async def test_keep_alives_hold_the_socket_open_across_silences(fake: FakeElevenLabs) -> None:
    fake.inactivity_s = 0.3
    tts = tts_for(fake, keepalive_s=0.05, inactivity_timeout=1)
    async with tts.open_stream(audio_format=TWILIO) as stream:
        socket = await fake.connection(0)
        # Several times the vendor's timeout of silence passes.
        await fake.wait_until(lambda: socket.keepalives >= 20)
        audio, _ = await speak(stream, by_words("Still here."))
        # And a context waiting for text is kept alive too.
        tx, rx = anyio.create_memory_object_stream[str | Flush](4)
        with anyio.fail_after(10), tx, rx:
            async with stream.speak(rx) as spoken:
                await tx.send("Let me check. ")
                await anext(aiter(spoken))
                before = socket.keepalives
                await fake.wait_until(lambda: socket.keepalives >= before + 10)
    assert socket.error is None
    assert len(fake.connections) == 1
    assert audio == bytes(socket.contexts["r1"].audio)
    assert any(m == {"text": "", "context_id": "r2"} for m in socket.messages)


async def test_a_socket_the_vendor_closed_when_idle_is_opened_again(fake: FakeElevenLabs) -> None:
    fake.inactivity_s = 0.1  # it closes sooner than the keep-alive comes
    tts = tts_for(fake, keepalive_s=0.9, inactivity_timeout=1)
    async with tts.open_stream(audio_format=TWILIO) as stream:
        first = await fake.connection(0)
        await fake.wait_until(lambda: first.error is not None)
        await fake.connection(1)
        fake.inactivity_s = 5.0
        audio, _ = await speak(stream, by_words("Hello again."))
    assert first.error == "input_timeout_exceeded"
    spoken = [c for s in fake.connections for c in s.contexts.values()]
    assert [bytes(c.audio) for c in spoken] == [audio]


async def test_a_socket_dropped_mid_response_goes_on_from_the_unspoken_text(
    fake: FakeElevenLabs,
) -> None:
    fake.pace_s = 0.01
    text = "One two three four five six seven eight nine ten eleven twelve."
    tts = tts_for(fake)
    async with tts.open_stream(audio_format=TWILIO) as stream:
        tx, rx = anyio.create_memory_object_stream[str | Flush](64)
        words: list[WordTiming] = []
        with anyio.fail_after(10), tx, rx:
            for piece in by_words(text):
                tx.send_nowait(piece)
            tx.close()
            async with stream.speak(rx) as spoken:
                async for piece in spoken:
                    words.extend(piece.words)
                    if len(words) == 3 and len(fake.connections) == 1:
                        await fake.cut(0)  # the network drops
        second = await fake.connection(1)
    assert [w.text for w in words] == text.split()  # every word once, in order
    starts = [w.start_ms for w in words]
    assert starts == sorted(starts)  # one clock across both sockets
    resumed = second.contexts["r1"].text.split()
    assert resumed == text.split()[-len(resumed) :]
    assert len(resumed) < len(text.split())


async def test_pcm_formats_are_asked_for_by_name(fake: FakeElevenLabs) -> None:
    tts = tts_for(fake)
    for fmt, name in [
        (AudioFormat(Encoding.PCM16, 16000), "pcm_16000"),
        (AudioFormat(Encoding.PCM16, 22050), "pcm_22050"),
        (AudioFormat(Encoding.PCM16, 24000), "pcm_24000"),
        (AudioFormat(Encoding.ALAW, 8000), "alaw_8000"),
    ]:
        async with tts.open_stream(audio_format=fmt) as stream:
            audio, words = await speak(stream, by_words("Hi there."))
        socket = fake.connections[-1]
        assert socket.params["output_format"] == name
        assert audio == bytes(socket.context.audio)
        assert timed(words) == socket.context.words()


async def test_voice_settings_schedule_and_the_calls_voice(fake: FakeElevenLabs) -> None:
    tts = tts_for(
        fake,
        model="eleven_turbo_v2_5",
        voice_settings={"stability": 0.4, "speed": 1.1},
        chunk_length_schedule=[50, 120],
        language_code="en",
    )
    async with tts.open_stream(audio_format=TWILIO, voice="voice-2") as stream:
        await speak(stream, by_words("Hi."))
    socket = fake.connections[0]
    assert socket.voice_id == "voice-2"  # the call's voice comes first
    assert socket.params["model_id"] == "eleven_turbo_v2_5"
    assert socket.params["language_code"] == "en"
    assert socket.context.init == {
        "text": " ",
        "voice_settings": {"stability": 0.4, "speed": 1.1},
        "generation_config": {"chunk_length_schedule": [50, 120]},
        "context_id": "r1",
    }
