"""Twilio request signatures: the ``X-Twilio-Signature`` header of webhooks and of the
media-stream WebSocket upgrade.

The signature is base64(HMAC-SHA1(key=auth token, message=full URL + each POST parameter
name and value, sorted by name)). A WebSocket upgrade is a GET: the URL alone is signed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

__all__ = ["Params", "compute_signature", "validate_signature"]

Params = Mapping[str, str | Iterable[str]] | Iterable[tuple[str, str]]
"""Form parameters: a mapping (a value may be a list of the values of a repeated name) or
``(name, value)`` pairs as :func:`urllib.parse.parse_qsl` returns them."""

_DEFAULT_PORTS = {"https": 443, "wss": 443, "http": 80, "ws": 80}


def _pairs(params: Params | None) -> list[tuple[str, str]]:
    if params is None:
        return []
    if isinstance(params, Mapping):
        pairs: list[tuple[str, str]] = []
        for name, value in params.items():
            if isinstance(value, str):
                pairs.append((name, value))
            else:
                pairs.extend((name, item) for item in value)
        return pairs
    return list(params)


def compute_signature(url: str, params: Params | None, auth_token: str) -> str:
    """The signature Twilio sends for a request to ``url`` with form ``params``.

    Parameters are sorted by name, and the values of a repeated name by value.
    """
    message = url + "".join(name + value for name, value in sorted(_pairs(params)))
    digest = hmac.new(auth_token.encode(), message.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _url_variants(url: str) -> list[str]:
    """The URL as given, plus the same URL with its port removed, or with the scheme's
    default port added: Twilio signs either form, depending on its configuration."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return [url]
    if port is not None:
        netloc = parts.netloc.removesuffix(f":{port}")
    elif parts.scheme in _DEFAULT_PORTS and parts.netloc:
        netloc = f"{parts.netloc}:{_DEFAULT_PORTS[parts.scheme]}"
    else:
        return [url]
    return [url, parts._replace(netloc=netloc).geturl()]


def validate_signature(url: str, params: Params | None, signature: str, auth_token: str) -> bool:
    """Whether ``signature`` is Twilio's for this request (constant-time comparison).

    ``url`` is the full URL Twilio requested (scheme, host, path and query, as configured
    in the TwiML or the console); ``params`` the parsed form body, or ``None`` for a GET
    such as the WebSocket upgrade. An empty signature or auth token never validates.
    """
    if not signature or not auth_token:
        return False
    pairs = _pairs(params)
    expected = signature.encode()
    valid = False
    for variant in _url_variants(url):
        # Evaluate every variant: the time taken must not reveal which one matched.
        computed = compute_signature(variant, pairs, auth_token).encode()
        valid |= hmac.compare_digest(computed, expected)
    return valid
