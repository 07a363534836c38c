"""Telnyx webhook signatures: Ed25519 over "timestamp|body", with a key pair made here."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from omnivoice_telnyx import load_public_key, verify_signature

NOW = 1_700_000_000.0
TIMESTAMP = str(int(NOW))
BODY = b'{"data":{"event_type":"call.initiated","payload":{"call_control_id":"v3:abc"}}}'


@pytest.fixture(scope="module")
def private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def public_key(private_key: Ed25519PrivateKey) -> str:
    raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def sign(private_key: Ed25519PrivateKey, timestamp: str, body: bytes) -> str:
    return base64.b64encode(private_key.sign(timestamp.encode() + b"|" + body)).decode()


def test_valid_signature(private_key: Ed25519PrivateKey, public_key: str) -> None:
    signature = sign(private_key, TIMESTAMP, BODY)
    assert verify_signature(BODY, signature, TIMESTAMP, public_key, now=NOW)
    assert verify_signature(BODY.decode(), signature, TIMESTAMP, public_key, now=NOW)
    assert verify_signature(BODY, signature, TIMESTAMP, load_public_key(public_key), now=NOW)


def test_timestamp_tolerance(private_key: Ed25519PrivateKey, public_key: str) -> None:
    signature = sign(private_key, TIMESTAMP, BODY)
    assert verify_signature(BODY, signature, TIMESTAMP, public_key, now=NOW + 300)
    assert not verify_signature(BODY, signature, TIMESTAMP, public_key, now=NOW + 301)
    assert not verify_signature(BODY, signature, TIMESTAMP, public_key, now=NOW - 301)
    assert verify_signature(BODY, signature, TIMESTAMP, public_key, now=NOW + 900, tolerance=900)


def test_uses_the_clock_by_default(private_key: Ed25519PrivateKey, public_key: str) -> None:
    # Signed in 2023: stale against the real clock.
    assert not verify_signature(BODY, sign(private_key, TIMESTAMP, BODY), TIMESTAMP, public_key)


def test_rejections(private_key: Ed25519PrivateKey, public_key: str) -> None:
    signature = sign(private_key, TIMESTAMP, BODY)
    other_key = base64.b64encode(
        Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    ).decode()
    later = str(int(NOW) + 1)
    cases = [
        (BODY + b" ", signature, TIMESTAMP, public_key),  # tampered body
        (BODY, signature, later, public_key),  # timestamp not the signed one
        (BODY, signature, TIMESTAMP, other_key),  # another account's key
        (BODY, sign(private_key, TIMESTAMP, BODY + b"x"), TIMESTAMP, public_key),
        (BODY, signature[:-4] + "AAA=", TIMESTAMP, public_key),  # altered signature
        (BODY, "not base64!", TIMESTAMP, public_key),
        (BODY, base64.b64encode(b"short").decode(), TIMESTAMP, public_key),
        (BODY, "", TIMESTAMP, public_key),
        (BODY, None, TIMESTAMP, public_key),
        (BODY, signature, None, public_key),
        (BODY, signature, "", public_key),
        (BODY, signature, "17e8", public_key),
        (BODY, signature, "-1700000000", public_key),
        (BODY, signature, "\u0661\u0667", public_key),  # digits, but not ASCII ones
        (BODY, signature, TIMESTAMP, "not a key"),
        (BODY, signature, TIMESTAMP, base64.b64encode(b"\x01" * 31).decode()),
        (BODY, signature, TIMESTAMP, ""),
    ]
    for body, sig, timestamp, key in cases:
        assert verify_signature(body, sig, timestamp, key, now=NOW) is False, (sig, timestamp, key)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("%%%", "not valid base64"),
        (base64.b64encode(b"\x00" * 33).decode(), "has 33 bytes"),
        ("", "has 0 bytes"),
    ],
)
def test_load_public_key_says_what_is_wrong(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_public_key(value)


def test_load_public_key_accepts_surrounding_whitespace(
    private_key: Ed25519PrivateKey, public_key: str
) -> None:
    key = load_public_key(f"  {public_key}\n")
    signature = sign(private_key, TIMESTAMP, BODY)
    assert verify_signature(BODY, signature, TIMESTAMP, key, now=NOW)
