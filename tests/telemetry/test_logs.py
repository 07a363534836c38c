"""Log records: the call's ids from the context, JSON lines, secrets taken out; bounded labels."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from omnivoice.telemetry import redact
from omnivoice.telemetry.context import call_scope
from omnivoice.telemetry.logs import configure_logging
from omnivoice.telemetry.metrics import MAX_LABEL_VALUES, _Labels


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure_logging("debug", "json", stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


def records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_every_record_of_a_call_carries_its_ids_and_is_one_json_line(
    captured: io.StringIO,
) -> None:
    log = logging.getLogger("omnivoice.test")
    log.info("before the call")
    with call_scope("call-7", "twilio") as scope:
        log.info("accepted")
        scope.bind(carrier_call_id="CA123", stream_id="MZ456", provider="echo")
        log.warning("line one\nline two", extra={"reason": "test"})
    log.info("after the call")

    before, accepted, warned, after = records(captured)
    assert "call_id" not in before
    assert accepted["call_id"] == "call-7"
    assert "carrier_call_id" not in accepted  # not known yet
    assert warned["call_id"] == "call-7"
    assert warned["carrier_call_id"] == "CA123"
    assert warned["stream_id"] == "MZ456"
    assert warned["message"] == "line one\nline two"  # escaped inside its one line
    assert warned["reason"] == "test"
    assert warned["level"] == "WARNING"
    assert "call_id" not in after


def test_secrets_are_taken_out_of_messages_and_tracebacks(captured: io.StringIO) -> None:
    redact.reset(environ={"ACME_API_KEY": "acme-key-123456789"})
    try:
        log = logging.getLogger("omnivoice.test")
        redact.add_secret("given-in-code-secret")
        log.info("connecting with %s", "acme-key-123456789")
        log.info("headers {'Authorization': 'Bearer abcdefghijklmnop'}")
        log.info("url wss://vendor.example/ws?key=AIzaSyExample123456&model=m")
        log.info("key sk-abcdefghijklmnopqrstuvwxyz012345 in text")
        try:
            raise ValueError("refused given-in-code-secret")
        except ValueError:
            log.exception("failed")
    finally:
        redact.reset()
    text = captured.getvalue()
    for secret in (
        "acme-key-123456789",
        "abcdefghijklmnop",
        "AIzaSyExample123456",
        "sk-abcdefghijklmnopqrstuvwxyz012345",
        "given-in-code-secret",
    ):
        assert secret not in text
    lines = records(captured)
    assert lines[1]["message"] == "headers {'Authorization': 'Bearer [REDACTED]'}"
    assert lines[2]["message"] == "url wss://vendor.example/ws?key=[REDACTED]&model=m"
    assert "ValueError: refused [REDACTED]" in str(lines[4]["exception"])


def test_ordinary_text_is_left_alone() -> None:
    for text in ('{"input_tokens": 120, "output_tokens": 80}', "unknown key 'x'", "a monkey"):
        assert redact.redact(text) == text


def test_label_values_are_bounded() -> None:
    label = _Labels()
    values = {label("error", f"Error{i}") for i in range(MAX_LABEL_VALUES + 20)}
    assert len(values) == MAX_LABEL_VALUES + 1
    assert "other" in values
    assert label("error", "Error0") == "Error0"  # seen before the limit: kept
    assert label("reason", "x" * 500) == "x" * 64
    assert label("reason", "a b\nc") == "a_b_c"
