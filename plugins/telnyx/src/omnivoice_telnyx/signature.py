"""Telnyx webhook signatures: Ed25519 over ``"{telnyx-timestamp}|{raw body}"``.

Telnyx signs every webhook with its account key; the ``telnyx-signature-ed25519`` header
holds the base64 signature and ``telnyx-timestamp`` the Unix time of sending. The public
key (base64, 32 bytes) is shown in the Telnyx portal and read from ``TELNYX_PUBLIC_KEY``.
"""

from __future__ import annotations

import binascii
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = ["DEFAULT_TOLERANCE", "load_public_key", "verify_signature"]

DEFAULT_TOLERANCE = 300.0
"""Seconds a signed timestamp may be away from now (older: a replay)."""


def load_public_key(value: str) -> Ed25519PublicKey:
    """The Ed25519 public key from its base64 text; :class:`ValueError` if it is not one.

    Load it once at start-up so a bad ``TELNYX_PUBLIC_KEY`` is reported there, not as a
    rejected webhook.
    """
    try:
        raw = binascii.a2b_base64(value.strip(), strict_mode=True)
    except ValueError:
        raise ValueError("the Telnyx public key is not valid base64") from None
    if len(raw) != 32:
        raise ValueError(f"the Telnyx public key has {len(raw)} bytes; Ed25519 keys have 32")
    return Ed25519PublicKey.from_public_bytes(raw)


def verify_signature(
    body: bytes | str,
    signature: str | None,
    timestamp: str | None,
    public_key: Ed25519PublicKey | str,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """Whether ``signature`` is Telnyx's for ``body`` sent at ``timestamp``.

    ``body`` is the raw request body, byte for byte (str is encoded as UTF-8); ``signature``
    and ``timestamp`` the two headers (``None`` if absent). The timestamp must be within
    ``tolerance`` seconds of ``now`` (default: the current time), either way. Never raises
    for bad input: a malformed key, signature or timestamp is simply not valid.
    """
    if not signature or not timestamp or not timestamp.isascii() or not timestamp.isdigit():
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance:
        return False
    try:
        key = load_public_key(public_key) if isinstance(public_key, str) else public_key
        raw_signature = binascii.a2b_base64(signature, strict_mode=True)
        if isinstance(body, str):
            body = body.encode()
        key.verify(raw_signature, timestamp.encode() + b"|" + body)
    except (ValueError, InvalidSignature):
        return False
    return True
