"""The error helpers every provider uses: a vendor's HTTP refusal, typed; its message."""

from __future__ import annotations

import attrs
import pytest

from omnivoice.errors import (
    AuthFailedError,
    ConnectionFailedError,
    ModelUnavailableError,
    RateLimitedError,
    error_message,
    refusal,
)
from omnivoice.realtime import ProcessConfig, with_extensions


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, AuthFailedError),
        (403, AuthFailedError),
        (404, ModelUnavailableError),
        (429, RateLimitedError),
        (500, ConnectionFailedError),
        (503, ConnectionFailedError),
    ],
)
def test_a_refusal_is_typed_by_its_status(status: int, kind: type[Exception]) -> None:
    error = refusal("Acme", status, "no", hints={401: "check ACME_KEY"})
    assert type(error) is kind
    assert str(error).startswith(f"Acme refused the connection: HTTP {status}: no")
    assert ("check ACME_KEY" in str(error)) is (status == 401)


def test_the_message_of_an_error_body() -> None:
    assert error_message('{"error": {"message": "Bad key.", "code": "x"}}') == "Bad key."
    assert error_message("  <html>\n  oops </html> ") == "<html> oops </html>"
    assert len(error_message("x" * 1000)) == 200


@attrs.frozen
class _Options:
    voice: str = "alloy"
    speed: float = 1.0


def test_a_calls_extensions_override_the_providers_options_by_name() -> None:
    options = _Options()
    config = ProcessConfig(extensions={"speed": 1.2, "not_an_option": 1})
    assert with_extensions(options, config) == _Options(speed=1.2)
    assert with_extensions(options, ProcessConfig()) is options
