"""Secrets out of logs, records and error messages.

Two nets, both applied by :func:`redact`:

- the known secrets: the values of environment variables whose names say they hold one
  (``*_API_KEY``, ``*_TOKEN``, ``*_SECRET``, ``*_PASSWORD``, ``*_KEY``...), read when first
  needed, and every value given to :func:`add_secret` (the gateway adds the ``api_key``
  options of its configuration);
- the shapes of secrets, whoever wrote them: ``Bearer`` credentials, OpenAI-style
  ``sk-...`` keys, and the value after a secret-looking name (``api_key=``,
  ``"authorization": "..."``, ``X-Twilio-Signature: ...``, ``?key=...``).

Each is replaced by ``[REDACTED]``. Values shorter than 8 characters are never treated as
secrets (they would blank out ordinary words).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Mapping

__all__ = ["REDACTED", "add_secret", "redact", "secret_values"]

REDACTED = "[REDACTED]"
_MIN_LENGTH = 8

_SECRET_NAME = re.compile(
    r"(?:^|_)(?:API_?KEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD|AUTH|CREDENTIALS?|SIGNING_KEY)$",
    re.IGNORECASE,
)
_NAMED_VALUE = re.compile(
    r"""(?ix)
    (
      (?:authorization|proxy-authorization|x-api-key|xi-api-key|api[_-]?key|apikey|
         auth[_-]?token|access[_-]?token|refresh[_-]?token|client[_-]?secret|secret|
         password|passwd|token|key|signature|
         x-twilio-signature|telnyx-signature-ed25519|x-telnyx-streaming-auth-token)
      \b["']?\s*[:=]\s*["']?
    )
    (?!(?:(?:bearer|basic|token)\s+)?\[REDACTED\])
    ((?:bearer|basic|token)\s+)?
    [^\s"',&;}\]]+
    """
)
_SHAPES = (
    re.compile(r"(?i)\b(bearer|basic)\s+(?!\[REDACTED\])[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"),
)

_lock = threading.Lock()
_added: set[str] = set()
_from_environment: frozenset[str] | None = None


def secret_values(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """The values of the environment variables that hold secrets, by their names."""
    environ = os.environ if environ is None else environ
    return frozenset(
        value
        for name, value in environ.items()
        if _SECRET_NAME.search(name) and len(value) >= _MIN_LENGTH
    )


def add_secret(*values: str | None) -> None:
    """Treat each of ``values`` as a secret from now on (``None`` and short ones are ignored)."""
    with _lock:
        _added.update(v for v in values if isinstance(v, str) and len(v) >= _MIN_LENGTH)


def add_secrets_of(options: Mapping[str, object]) -> None:
    """Add the values of secret-looking keys (``api_key``, ``token``...) of ``options``."""
    add_secret(*(v for k, v in options.items() if _SECRET_NAME.search(k) and isinstance(v, str)))


def _known() -> Iterable[str]:
    global _from_environment
    if _from_environment is None:
        _from_environment = secret_values()
    # Longest first: a secret that contains another is replaced whole.
    return sorted(_from_environment | _added, key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` with every secret it holds replaced by ``[REDACTED]``."""
    for secret in _known():
        if secret in text:
            text = text.replace(secret, REDACTED)
    for shape in _SHAPES:
        text = shape.sub(lambda m: f"{m.group(1)} {REDACTED}" if m.lastindex else REDACTED, text)
    return _NAMED_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2) or ''}{REDACTED}", text)


def reset(environ: Mapping[str, str] | None = None) -> None:
    """Forget the added secrets and read the environment again (for tests)."""
    global _from_environment
    with _lock:
        _added.clear()
        _from_environment = secret_values(environ) if environ is not None else None
