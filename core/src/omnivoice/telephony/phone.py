"""A simulated phone: plays the carrier's part of a call against a gateway, in real time.

It opens the carrier's media WebSocket, sends ``connected`` and ``start``, streams the
caller's audio as 20 ms media frames paced like a phone line, and plays the agent's audio
as a handset would: in real time, from a queue that ``clear`` empties. A mark is echoed
only once the audio queued before it has played (a ``clear`` returns the pending ones,
as Twilio does). What was played is what the caller heard.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence

import anyio
import attrs

from omnivoice.audio.format import AudioFormat, Encoding
from omnivoice.net.websocket import ConnectionClosed, WebSocket, connect
from omnivoice.telephony.carrier import CarrierSide, ClearRequest, MarkRequest, PlayRequest
from omnivoice.telephony.transport import Transport

__all__ = ["CallReport", "SimulatedPhone"]

log = logging.getLogger(__name__)

_SILENCE = {Encoding.MULAW: b"\xff", Encoding.ALAW: b"\xd5", Encoding.PCM16: b"\x00"}
_FRAME_S = 0.02
_PAUSE_S = 0.2
"""Agent audio this long after the caller's last speech counts as a reply (for latency)."""


@attrs.define
class CallReport:
    """What happened on the simulated phone."""

    frames_sent: int = 0
    frames_received: int = 0
    marks_received: int = 0
    marks_acknowledged: int = 0
    clears: int = 0
    heard_ms: int = 0
    """Agent audio played to the caller."""
    dropped_ms: int = 0
    """Agent audio a clear dropped before it played."""
    bad_frames: int = 0
    latencies_ms: list[float] = attrs.field(factory=list)
    """Per agent reply: end of the caller's speech to the first agent audio received."""
    quiet_frames_before_reply: list[int] = attrs.field(factory=list)
    """Per agent reply: the frames of silence the caller had sent after its speech when
    the reply's first audio arrived (a count, unlike a latency, that load cannot change)."""
    received: list[bytes | str] = attrs.field(factory=list, repr=False)
    """Everything the gateway sent, in order: audio payloads, ``"mark:NAME"``, ``"clear"``."""
    acknowledged: list[tuple[str, int]] = attrs.field(factory=list)
    """Each mark echoed, with the agent audio played before it (ms since the call began)."""
    close_code: int | None = None
    close_reason: str | None = None


class SimulatedPhone:
    """One call from a simulated caller.

    ``audio`` is the caller's speech in ``media_format``: one recording played straight
    through, with ``voiced`` flagging each of its 20 ms frames as speech or not (for the
    latency figures); or a list of utterances, one per turn, each followed by silence
    until the agent's reply has played and ``pause_s`` passed (at most ``reply_timeout_s``).
    After that the phone stays on the line sending silence for ``linger_s`` seconds, then
    sends ``stop`` and waits up to ``hangup_timeout_s`` for the gateway to close the
    stream. ``clock`` must be the event loop's (frames are scheduled with
    :func:`anyio.sleep_until`).
    """

    def __init__(
        self,
        url: str,
        transport: Transport,
        audio: bytes | Sequence[bytes],
        media_format: AudioFormat,
        *,
        voiced: Sequence[bool] = (),
        headers: Mapping[str, str] | None = None,
        linger_s: float = 3.0,
        pause_s: float = 0.6,
        reply_timeout_s: float = 10.0,
        hangup_timeout_s: float = 5.0,
        dtmf: Mapping[float, str] | None = None,
        custom_parameters: Mapping[str, str] | None = None,
        clock: Callable[[], float] = anyio.current_time,
    ) -> None:
        self.url = url
        self.media_format = media_format
        self.side = CarrierSide(
            transport.new_protocol().wire, media_format, custom_parameters=custom_parameters
        )
        self.frame_bytes = media_format.bytes_per_frame(20)
        self.audio = audio
        self.voiced = list(voiced)
        self.headers = dict(headers or {})
        self.linger_s = linger_s
        self.pause_s = pause_s
        self.reply_timeout_s = reply_timeout_s
        self.hangup_timeout_s = hangup_timeout_s
        self._pending_dtmf = sorted((dtmf or {}).items())
        self.report = CallReport()
        self.heard = bytearray()
        """The audio the caller heard, in ``media_format``, from the start of the call."""
        self.spoken = bytearray()
        """The audio the caller sent, in ``media_format``, from the start of the call."""
        self._clock = clock
        self._silence = _SILENCE[media_format.encoding] * self.frame_bytes
        self._queue: deque[bytes | str] = deque()  # audio chunks and mark names, in order
        self._last_voiced_at: float | None = None
        self._last_voiced_frame = 0
        self._awaiting_reply = False
        self._sent_frames = 0
        self._start = 0.0
        self._replied = False
        """Agent audio arrived since the caller's last turn ended."""
        self._last_heard_at = 0.0

    async def run(self) -> CallReport:
        """Make the call; return its report once the phone hung up or the gateway did."""
        async with connect(self.url, headers=list(self.headers.items())) as ws:
            await ws.send(self.side.connected())
            await ws.send(self.side.start())
            self._start = self._clock()
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._play, ws, self._start)
                tasks.start_soon(self._talk_then_hang_up, ws, tasks.cancel_scope)
                await self._listen(ws)
                tasks.cancel_scope.cancel()
        return self.report

    async def _talk_then_hang_up(self, ws: WebSocket, call: anyio.CancelScope) -> None:
        try:
            await self._talk(ws)
        except ConnectionClosed:
            return  # the gateway ended the call first: the listener has its close
        await anyio.sleep(self.hangup_timeout_s)
        call.cancel()

    async def _talk(self, ws: WebSocket) -> None:
        """Say what the caller says, linger, then send ``stop``."""
        if isinstance(self.audio, bytes):
            for index, frame in enumerate(self._frames(self.audio)):
                await self._send(ws, frame, index < len(self.voiced) and self.voiced[index])
        else:
            for turn in self.audio:
                frames = self._frames(turn)
                for index, frame in enumerate(frames):
                    # The end of the utterance is the end of speech, for the latency.
                    await self._send(ws, frame, voiced=index == len(frames) - 1)
                self._replied = False
                deadline = self._clock() + self.reply_timeout_s
                while self._clock() < deadline and not self._reply_over():
                    await self._send(ws, self._silence, voiced=False)
        for _ in range(round(self.linger_s / _FRAME_S)):
            await self._send(ws, self._silence, voiced=False)
        await ws.send(self.side.stop())
        # The gateway closes the stream once the call is over: the caller gives it
        # hangup_timeout_s (above).

    def _frames(self, audio: bytes) -> list[bytes]:
        step = self.frame_bytes
        return [audio[i : i + step] for i in range(0, len(audio), step)]

    def _reply_over(self) -> bool:
        """The agent replied, everything it sent has played, and it has been quiet since."""
        return (
            self._replied
            and not any(isinstance(item, bytes) for item in self._queue)
            and self._clock() - self._last_heard_at >= self.pause_s
        )

    async def _send(self, ws: WebSocket, frame: bytes, voiced: bool) -> None:
        """Send the next 20 ms frame at its time on the line."""
        index = self._sent_frames
        await anyio.sleep_until(self._start + index * _FRAME_S)
        while self._pending_dtmf and self._pending_dtmf[0][0] <= index * _FRAME_S:
            await ws.send(self.side.dtmf(self._pending_dtmf.pop(0)[1]))
        await ws.send(self.side.media(frame, timestamp_ms=index * 20))
        self.spoken += frame
        self._sent_frames += 1
        self.report.frames_sent += 1
        if voiced:
            self._last_voiced_at = self._clock()
            self._last_voiced_frame = self._sent_frames
            self._awaiting_reply = True

    async def _listen(self, ws: WebSocket) -> None:
        try:
            while True:
                message = await ws.receive()
                try:
                    request = self.side.receive(message)
                except ValueError as exc:
                    self.report.bad_frames += 1
                    log.warning("phone: bad frame from the gateway: %s", exc)
                    continue
                if isinstance(request, PlayRequest):
                    self._on_audio(request.payload)
                elif isinstance(request, MarkRequest):
                    self.report.marks_received += 1
                    self.report.received.append(f"mark:{request.name}")
                    self._queue.append(request.name)
                elif isinstance(request, ClearRequest):
                    await self._on_clear(ws)
        except ConnectionClosed as closed:
            self.report.close_code, self.report.close_reason = closed.code, closed.reason

    def _on_audio(self, payload: bytes) -> None:
        self.report.frames_received += 1
        self.report.received.append(payload)
        now = self._clock()
        if (
            self._awaiting_reply
            and self._last_voiced_at is not None
            and now - self._last_voiced_at >= _PAUSE_S  # a reply, not audio over the caller
        ):
            self.report.latencies_ms.append(round((now - self._last_voiced_at) * 1000, 1))
            self.report.quiet_frames_before_reply.append(
                self._sent_frames - self._last_voiced_frame
            )
            self._awaiting_reply = False
        self._replied = True
        self._queue.append(payload)

    async def _on_clear(self, ws: WebSocket) -> None:
        self.report.clears += 1
        self.report.received.append("clear")
        marks = [item for item in self._queue if isinstance(item, str)]
        dropped = sum(len(item) for item in self._queue if isinstance(item, bytes))
        self.report.dropped_ms += self._ms(dropped)
        self._queue.clear()
        for name in marks:  # a clear returns the pending marks
            await self._acknowledge(ws, name)

    async def _play(self, ws: WebSocket, start: float) -> None:
        """Play 20 ms of queued agent audio (or silence) every 20 ms, like a handset."""
        tick = 0
        while True:
            await anyio.sleep_until(start + tick * _FRAME_S)
            tick += 1
            # Marks at the head: everything queued before them has finished playing.
            while self._queue and isinstance(self._queue[0], str):
                name = self._queue.popleft()
                assert isinstance(name, str)
                await self._acknowledge(ws, name)
            frame = self._take(self.frame_bytes)
            if frame:
                self._last_heard_at = self._clock()
            self.report.heard_ms += self._ms(len(frame))
            self.heard += frame + self._silence[len(frame) :]

    def _take(self, n_bytes: int) -> bytes:
        taken = bytearray()
        while len(taken) < n_bytes and self._queue and isinstance(self._queue[0], bytes):
            chunk = self._queue.popleft()
            assert isinstance(chunk, bytes)
            need = n_bytes - len(taken)
            taken += chunk[:need]
            if len(chunk) > need:
                self._queue.appendleft(chunk[need:])
        return bytes(taken)

    async def _acknowledge(self, ws: WebSocket, name: str) -> None:
        self.report.marks_acknowledged += 1
        self.report.acknowledged.append((name, self.report.heard_ms))
        await ws.send(self.side.mark(name))

    def _ms(self, n_bytes: int) -> int:
        return round(self.media_format.duration(n_bytes) * 1000)
