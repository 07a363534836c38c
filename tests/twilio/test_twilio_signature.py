"""X-Twilio-Signature: the test vectors of Twilio's own request validator."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from omnivoice_twilio import compute_signature, validate_signature
from omnivoice_twilio.signature import Params

TOKEN = "12345"
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
    "Caller": "+14158675309",
}
EXPECTED = "RSOYDt4T1cUTdK1PDd93/VVr8B8="  # published with Twilio's SDK tests


def test_published_vector() -> None:
    assert compute_signature(URL, PARAMS, TOKEN) == EXPECTED
    assert validate_signature(URL, PARAMS, EXPECTED, TOKEN)


def test_parameter_order_does_not_matter() -> None:
    reordered = dict(reversed(list(PARAMS.items())))
    assert validate_signature(URL, reordered, EXPECTED, TOKEN)
    assert validate_signature(URL, list(reordered.items()), EXPECTED, TOKEN)


@pytest.mark.parametrize(
    "params",
    [
        [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")],
        {"Sid": "CA123", "SidAccount": "AC123", "Digits": ["5678", "1234"]},
    ],
)
def test_repeated_names_sign_each_value_in_sorted_order(params: Params) -> None:
    expected = "IK+Dwps556ElfBT0I3Rgjkr1wJU="  # published with Twilio's SDK tests
    assert compute_signature(URL, params, TOKEN) == expected


def test_get_request_signs_the_url_alone() -> None:
    url = "wss://gw.example.com/twilio/media"
    expected = base64.b64encode(
        hmac.new(TOKEN.encode(), url.encode(), hashlib.sha1).digest()
    ).decode()
    assert compute_signature(url, None, TOKEN) == expected
    assert validate_signature(url, None, expected, TOKEN)
    assert validate_signature(url, {}, expected, TOKEN)


@pytest.mark.parametrize(
    ("url", "signature"),
    [
        # The URL we see has a port, Twilio signed it without.
        (URL.replace(".com", ".com:1234"), EXPECTED),
        # Twilio signed with the default port, the URL we see has none.
        (URL, "kvajT1Ptam85bY51eRf/AJRuM3w="),
        (URL.replace("https", "http"), "0ZXoZLH/DfblKGATFgpif+LLRf4="),
        # http with a port, signed with that port.
        (URL.replace(".com", ".com:1234").replace("https", "http"), "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
    ],
)
def test_urls_with_and_without_port(url: str, signature: str) -> None:
    assert validate_signature(url, PARAMS, signature, TOKEN)


def test_wss_default_port_is_443() -> None:
    url = "wss://gw.example.com/twilio/media"
    signed_with_port = compute_signature("wss://gw.example.com:443/twilio/media", None, TOKEN)
    assert validate_signature(url, None, signed_with_port, TOKEN)
    assert not validate_signature(
        url, None, compute_signature("wss://gw.example.com:80/twilio/media", None, TOKEN), TOKEN
    )


@pytest.mark.parametrize(
    ("url", "params", "signature", "token"),
    [
        (URL, PARAMS, EXPECTED, "54321"),  # wrong token
        (URL, {**PARAMS, "Digits": "9"}, EXPECTED, TOKEN),  # tampered parameter
        (URL, {**PARAMS, "Extra": "1"}, EXPECTED, TOKEN),  # added parameter
        (URL.replace("foo=1", "foo=2"), PARAMS, EXPECTED, TOKEN),  # tampered query
        (URL.replace("https", "http"), PARAMS, EXPECTED, TOKEN),  # other scheme
        (URL, PARAMS, EXPECTED.lower(), TOKEN),
        (URL, PARAMS, "", TOKEN),
        (URL, PARAMS, EXPECTED, ""),
        (URL, PARAMS, "non-ascii \u00e9", TOKEN),
        ("https://host:notaport/x", PARAMS, EXPECTED, TOKEN),
    ],
)
def test_invalid_signatures_are_rejected(
    url: str, params: dict[str, str], signature: str, token: str
) -> None:
    assert validate_signature(url, params, signature, token) is False
