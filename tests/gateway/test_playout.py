"""Playout: pacing, marks, playback position, clear."""

from __future__ import annotations

import math

import pytest

from omnivoice.audio import TWILIO
from omnivoice.gateway.playout import Playout, SegmentPlayed, SendAudio, SendMark

FRAME = 160  # 20 ms of mu-law 8 kHz


def drain(playout: Playout, now: float) -> list[SendAudio | SendMark]:
    """Everything due at ``now``."""
    out: list[SendAudio | SendMark] = []
    while not isinstance(item := playout.poll(now), float):
        out.append(item)
    return out


def test_idle_playout_waits_forever() -> None:
    assert Playout(TWILIO).poll(0.0) == math.inf


def test_frames_are_paced_with_at_most_the_lead_ahead() -> None:
    playout = Playout(TWILIO, lead_ms=100, mark_every=1000)
    playout.push(bytes(FRAME * 50))  # one second of audio arrives at once
    first = drain(playout, 0.0)
    # 100 ms of lead: frames whose playback starts within 100 ms of now go out at once.
    assert [len(i.payload) for i in first if isinstance(i, SendAudio)] == [FRAME] * 6
    wait = playout.poll(0.0)
    assert wait == pytest.approx(0.02)
    # Then one frame per 20 ms.
    assert [type(i) for i in drain(playout, 0.02)] == [SendAudio]
    assert [type(i) for i in drain(playout, 0.04)] == [SendAudio]


def test_partial_frames_are_carried_and_the_tail_goes_out_at_the_end() -> None:
    playout = Playout(TWILIO, lead_ms=10_000, mark_every=1000)
    playout.push(bytes(100))
    assert drain(playout, 0.0) == []  # not a whole frame yet
    playout.push(bytes(100))
    playout.push(bytes(30), final=True)
    items = drain(playout, 0.0)
    assert [len(i.payload) for i in items if isinstance(i, SendAudio)] == [FRAME, 70]
    assert isinstance(items[-1], SendMark)
    assert items[-1].name.endswith(".end")


def test_marks_follow_every_n_frames_and_the_segment_end() -> None:
    playout = Playout(TWILIO, lead_ms=10_000, mark_every=2)
    playout.push(bytes(FRAME * 5), final=True)
    kinds = ["A" if isinstance(i, SendAudio) else "M" for i in drain(playout, 0.0)]
    assert "".join(kinds) == "AAMAAMAM"


def test_acknowledged_marks_give_the_exact_position() -> None:
    playout = Playout(TWILIO, lead_ms=10_000, mark_every=1)
    playout.push(bytes(FRAME * 10), final=True)
    marks = [i.name for i in drain(playout, 0.0) if isinstance(i, SendMark)]
    assert len(marks) == 10
    playout.acknowledge(marks[2], now=0.06)
    # Exact at the acknowledgement, bounded by the next unacknowledged mark afterwards.
    assert playout.heard_ms(0.06) == 60
    assert playout.heard_ms(0.07) == 70
    assert playout.heard_ms(5.0) == 80
    played = playout.acknowledge(marks[-1], now=0.2)
    assert played == SegmentPlayed(segment=1, heard_ms=200)
    assert not playout.busy


def test_position_without_any_ack_follows_the_clock() -> None:
    playout = Playout(TWILIO, lead_ms=100, mark_every=1000)
    playout.push(bytes(FRAME * 50), final=True)
    drain(playout, 1.0)
    assert playout.heard_ms(1.0) == 0
    assert playout.heard_ms(1.05) == 50
    # Never beyond what was sent.
    assert playout.heard_ms(9.0) == 120


def test_clear_drops_every_queued_frame_and_reports_what_was_heard() -> None:
    playout = Playout(TWILIO, lead_ms=100, mark_every=5)
    playout.push(bytes(FRAME * 50), final=True)
    sent = drain(playout, 0.0)
    marks = [i.name for i in sent if isinstance(i, SendMark)]
    playout.acknowledge(marks[0], now=0.1)
    interrupted = playout.clear(now=0.1)
    assert interrupted == SegmentPlayed(segment=1, heard_ms=100, interrupted=True)
    assert playout.poll(0.1) == math.inf
    assert not playout.busy
    # Acknowledgements of marks cancelled by the clear are counted, not trusted.
    assert playout.acknowledge(marks[-1], now=0.2) is None
    assert playout.unknown_marks == 1


def test_clear_when_nothing_plays_reports_nothing() -> None:
    assert Playout(TWILIO).clear(now=0.0) is None


def test_next_segment_after_clear_starts_at_once() -> None:
    playout = Playout(TWILIO, lead_ms=40, mark_every=1000)
    playout.push(bytes(FRAME * 20), final=True)
    drain(playout, 0.0)
    playout.clear(now=0.01)
    playout.push(bytes(FRAME), final=True)
    items = drain(playout, 0.01)
    assert isinstance(items[0], SendAudio)
    assert playout.current_segment(0.01) == 2


def test_segments_are_tracked_separately() -> None:
    playout = Playout(TWILIO, lead_ms=10_000, mark_every=1000)
    first = playout.push(bytes(FRAME * 2), final=True)
    second = playout.push(bytes(FRAME * 3), final=True)
    assert (first, second) == (1, 2)
    ends = [i.name for i in drain(playout, 0.0) if isinstance(i, SendMark)]
    assert len(ends) == 2
    assert playout.acknowledge(ends[0], now=0.04) == SegmentPlayed(1, 40)
    assert playout.current_segment(0.04) == 2
    assert playout.acknowledge(ends[1], now=0.1) == SegmentPlayed(2, 60)


def test_empty_final_push_still_closes_the_segment() -> None:
    playout = Playout(TWILIO, lead_ms=10_000)
    playout.push(bytes(FRAME))
    playout.push(b"", final=True)
    items = drain(playout, 0.0)
    assert isinstance(items[-1], SendMark)
    assert playout.acknowledge(items[-1].name, now=0.02) == SegmentPlayed(1, 20)


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="lead_ms"):
        Playout(TWILIO, lead_ms=10)
    with pytest.raises(ValueError, match="mark_every"):
        Playout(TWILIO, mark_every=0)
