"""How Gemini Live says no, as omnivoice errors.

The service reports failures by closing the WebSocket with a code and a human reason (no
JSON error event), or by refusing the upgrade with an HTTP status. :func:`close_error` and
:func:`handshake_error` map both to the contract's classes: a bad or expired key to
:class:`~omnivoice.errors.AuthFailedError`, an unknown or unsupported model to
:class:`~omnivoice.errors.ModelUnavailableError`, an exhausted quota to
:class:`~omnivoice.errors.RateLimitedError`, anything else to
:class:`~omnivoice.errors.ConnectionFailedError`.
"""

from __future__ import annotations

from omnivoice.errors import (
    AuthFailedError,
    ConnectionFailedError,
    ModelUnavailableError,
    OmnivoiceError,
    RateLimitedError,
    error_message,
    refusal,
)

__all__ = [
    "FunctionCallCancelledError",
    "GeminiLiveError",
    "ResumptionRefusedError",
    "close_error",
    "handshake_error",
]


class GeminiLiveError(OmnivoiceError):
    """A problem with the Gemini Live session that has no more specific class (a malformed
    server message, a refused function answer)."""


class FunctionCallCancelledError(GeminiLiveError):
    """The server cancelled function calls (the caller interrupted): reported, not fatal.

    ``call_ids`` are the calls cancelled, ``names`` their functions; ``kept`` those that run
    on because they are ``must_complete``.
    """

    def __init__(
        self, message: str, *, call_ids: tuple[str, ...], names: tuple[str, ...], kept: int
    ) -> None:
        super().__init__(message)
        self.call_ids = call_ids
        self.names = names
        self.kept = kept


class ResumptionRefusedError(ConnectionFailedError):
    """The server closed a connection that asked to resume a session before it was set up
    (an expired or unknown handle): a fresh session is the way on."""


_AUTH_WORDS = ("api key", "api_key", "unauthenticated", "credential", "access token")
_MODEL_WORDS = ("not found", "not supported", "unsupported model", "is not available")
_QUOTA_WORDS = ("resource_exhausted", "resource exhausted", "quota", "rate limit")


def close_error(code: int, reason: str) -> ConnectionFailedError:
    """The error for a connection the server closed with ``code`` and ``reason``."""
    text = f"Gemini Live closed the connection: {code} {reason}".rstrip()
    lowered = reason.lower()
    if code == 1007 and any(word in lowered for word in _AUTH_WORDS):
        return AuthFailedError(text + " (check GEMINI_API_KEY)")
    if code == 1008:
        if any(word in lowered for word in _MODEL_WORDS):
            return ModelUnavailableError(text + " (check the model name and the API version)")
        if "permission" in lowered or any(word in lowered for word in _AUTH_WORDS):
            return AuthFailedError(text)
    if code == 1011 and any(word in lowered for word in _QUOTA_WORDS):
        return RateLimitedError(text)
    return ConnectionFailedError(text)


def handshake_error(status: int, body: str) -> ConnectionFailedError:
    """The error for an upgrade the server answered with HTTP ``status``."""
    hints = {
        401: "check the API key or the access token",
        403: "check the API key or the access token",
        404: "check the endpoint, the API version and the model",
    }
    return refusal("Gemini Live", status, error_message(body), hints=hints)
