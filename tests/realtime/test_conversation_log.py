"""ConversationLog: the conversation a session taking over a call is given."""

from __future__ import annotations

import pytest

from omnivoice.realtime import ConversationItem, ConversationLog, HeardResponse, Transcript


def user(text: str, final: bool = True) -> Transcript:
    return Transcript(text, is_input=True, is_final=final)


def agent(text: str, final: bool = False) -> Transcript:
    return Transcript(text, is_input=False, is_final=final)


def test_transcripts_become_utterances_in_the_order_they_were_said() -> None:
    log = ConversationLog()
    log.add(user("Hi", final=False))  # a partial: not kept
    log.add(user("Hi, are you open?"))
    log.add(agent("Yes,"))
    log.add(agent(" until six."))
    log.add(agent("Yes, until six.", final=True))  # the final text replaces the pieces
    assert log.history() == (
        ConversationItem("user", "Hi, are you open?"),
        ConversationItem("agent", "Yes, until six."),
    )


def test_a_late_transcript_of_the_caller_goes_before_the_reply_it_came_during() -> None:
    log = ConversationLog()
    log.add(agent("Let me"))  # the reply began before the caller's words were transcribed
    log.add(user("Where is my order?"))
    log.add(agent("Let me check.", final=True))
    assert [item.role for item in log.history()] == ["user", "agent"]


def test_an_interrupted_reply_keeps_only_what_was_heard() -> None:
    log = ConversationLog()
    log.add(user("Tell me the hours"))
    log.add(agent("We open at nine and close"))
    log.cut_short(heard_ms=1000, produced_ms=4000)
    # Its whole text may still come: it replaces the pieces, and what was heard stands.
    log.add(agent("We open at nine and close at six on weekdays", final=True))
    (_, reply) = log.history()
    assert reply == ConversationItem("agent", "We open at")
    log.add(agent("Anything else?", final=True))  # the next reply is one of its own
    assert log.history()[-1] == ConversationItem("agent", "Anything else?")


def test_each_reply_a_barge_in_cut_short_is_matched_to_its_figures() -> None:
    log = ConversationLog()
    log.add(user("Where is my order?"))
    log.add(agent("Let me check that for you.", final=True))
    log.add(agent("It shipped yesterday and arrives on Friday.", final=True))
    # The first was playing (half heard); the second was queued behind it (not heard).
    log.interrupted(
        [HeardResponse("r1", heard_ms=600, produced_ms=1200), HeardResponse("r2", 0, 2500)]
    )
    assert log.history() == (
        ConversationItem("user", "Where is my order?"),
        ConversationItem("agent", "Let me check"),
    )


def test_vendor_items_are_kept_by_their_ids() -> None:
    log = ConversationLog()
    log.utterance("user", "item-1").text = "Hello"
    reply = log.utterance("agent", "item-2")
    reply.text += "Hi "
    log.utterance("agent", "item-2").text += "there"
    log.cut_short(500, 500, key="item-2")  # heard whole
    assert log.get("item-2") is reply
    assert log.get("item-9") is None
    assert log.history() == (
        ConversationItem("user", "Hello"),
        ConversationItem("agent", "Hi there"),
    )


def test_history_is_the_newest_within_the_budget_and_the_log_is_bounded() -> None:
    log = ConversationLog(max_items=3, max_chars=15)
    for index in range(5):
        log.add(user(f"question {index}"))
    assert len(log) == 3
    assert log.history() == (ConversationItem("user", "question 4"),)
    assert log.history(max_chars=25) == (
        ConversationItem("user", "question 3"),
        ConversationItem("user", "question 4"),
    )
    # The newest alone is longer than the budget: its end is kept, the last words matter.
    assert log.history(max_chars=6) == (ConversationItem("user", "tion 4"),)


def test_the_given_history_seeds_the_log() -> None:
    log = ConversationLog([ConversationItem("user", "Hi"), ConversationItem("agent", " ")])
    assert log.history() == (ConversationItem("user", "Hi"),)
    with pytest.raises(ValueError, match="max_items"):
        ConversationLog(max_items=0)
