"""The exceptions omnivoice raises.

Every error derives from :class:`OmnivoiceError`, so ``except OmnivoiceError`` catches
anything the framework raises on purpose. The realtime family is re-exported from
:mod:`omnivoice.realtime`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

__all__ = [
    "AuthFailedError",
    "CarrierAPIError",
    "ConfigurationError",
    "ConnectionFailedError",
    "ModelUnavailableError",
    "OmnivoiceError",
    "PluginConflictError",
    "PluginNotFoundError",
    "RateLimitedError",
    "SessionClosedError",
    "UnsupportedFormatError",
    "describe_error",
    "error_message",
    "refusal",
    "unwrap_error",
]


class OmnivoiceError(Exception):
    """Base class of every error omnivoice raises on purpose."""


# --- plugins -------------------------------------------------------------------------


class PluginNotFoundError(OmnivoiceError, LookupError):
    """No installed plugin registers the requested name.

    The message lists what is installed for that kind and, for the names this project
    publishes, the ``pip install`` command that provides the missing one.
    """


class PluginConflictError(OmnivoiceError):
    """Two plugins register the same name with the same priority.

    omnivoice never picks one silently: uninstall one, limit loading with
    ``OMNIVOICE_PLUGINS``, or give the preferred registration a higher ``priority``.
    """


# --- audio ---------------------------------------------------------------------------


class UnsupportedFormatError(OmnivoiceError, ValueError):
    """A conversion between two audio formats that no codec supports."""


# --- telephony -----------------------------------------------------------------------


class CarrierAPIError(OmnivoiceError):
    """A carrier's REST API refused a request (for example a hang-up) or was unreachable."""


# --- realtime ------------------------------------------------------------------------


class SessionClosedError(OmnivoiceError):
    """The provider session is closed; no more audio can be sent or received."""


class ConnectionFailedError(OmnivoiceError):
    """The provider could not be reached (network failure, refused or dropped handshake)."""


class AuthFailedError(ConnectionFailedError):
    """The provider refused the credentials (a bad or missing API key)."""


class RateLimitedError(ConnectionFailedError):
    """The provider refused the session because a rate or concurrency limit was hit."""


class ModelUnavailableError(ConnectionFailedError):
    """The requested model does not exist or is not available to this account."""


class ConfigurationError(ConnectionFailedError):
    """The provider refused the session's settings (a parameter it does not accept).

    ``parameter`` names the setting it refused, when it said which (else ``None``). Trying
    again with the same settings cannot help; the fallback client still moves on.
    """

    def __init__(self, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter


# --- helpers ---------------------------------------------------------------------------


def unwrap_error(error: BaseException) -> BaseException:
    """The one exception inside nested single-exception groups (what a task group raises
    for one failed task), else ``error`` itself."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def describe_error(error: BaseException) -> str:
    """``Class: message`` of an error (of the one error inside nested exception groups)."""
    error = unwrap_error(error)
    message = str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


_REFUSALS: Mapping[int, type[ConnectionFailedError]] = {
    401: AuthFailedError,
    403: AuthFailedError,
    404: ModelUnavailableError,
    429: RateLimitedError,
}


def refusal(
    vendor: str, status: int, detail: str = "", *, hints: Mapping[int, str] | None = None
) -> ConnectionFailedError:
    """The typed error for a vendor that answered a connection with HTTP ``status``:
    401 or 403 :class:`AuthFailedError`, 404 :class:`ModelUnavailableError`, 429
    :class:`RateLimitedError`, anything else :class:`ConnectionFailedError`. ``detail`` is
    what the vendor said; ``hints`` adds advice for a status (``{401: "check ACME_KEY"}``)."""
    text = f"{vendor} refused the connection: HTTP {status}"
    if detail:
        text += f": {detail}"
    hint = (hints or {}).get(status)
    if hint:
        text += f" ({hint})"
    return _REFUSALS.get(status, ConnectionFailedError)(text)


def error_message(body: str) -> str:
    """The message of a JSON error body (``{"error": {"message": ...}}``, as OpenAI and
    Google send it), else the body's first 200 characters, on one line."""
    try:
        message = json.loads(body)["error"]["message"]
        if isinstance(message, str):
            return message
    except (ValueError, KeyError, TypeError):
        pass
    return " ".join(body.split())[:200]
