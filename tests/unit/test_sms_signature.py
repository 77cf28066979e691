"""X-Twilio-Signature: published vectors, an independent implementation and twilio's own
``RequestValidator`` agree with ``alertd.notify.sms.hooks``."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from twilio.request_validator import RequestValidator

from alertd.notify.sms.hooks import (
    twilio_signature,
    url_variants,
    valid_json_signature,
    valid_signature,
)

TOKEN = "12345"
DOCS_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOCS_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675310",
    "Digits": "1234",
    "From": "+14158675310",
    "To": "+18005551212",
}
DOCS_SIGNATURE = "GvWf1cFY/Q7PnoempGyD5oXAezc="  # twilio.com/docs/usage/security example
STATUS = [
    ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
    ("MessageStatus", "delivered"),
    ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
    ("To", "+8613800001111"),
    ("From", "+15017122661"),
    ("ApiVersion", "2010-04-01"),
    ("Body", "ACK 42 — 好的 & <ok>"),
]


def reference(token: str, url: str, pairs: list[tuple[str, str]]) -> str:
    """The documented algorithm, written out: url, then name+value by sorted name, each
    name's values sorted; base64 HMAC-SHA1."""
    text = url
    for name in sorted({n for n, _ in pairs}):
        for value in sorted(v for n, v in pairs if n == name):
            text += name + value
    digest = hmac.new(token.encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def test_published_example() -> None:
    assert twilio_signature(TOKEN, DOCS_URL, DOCS_PARAMS) == DOCS_SIGNATURE
    assert valid_signature(TOKEN, DOCS_URL, DOCS_PARAMS, DOCS_SIGNATURE)


@pytest.mark.parametrize(
    "url",
    [
        "https://alertd.example/hooks/twilio/status",
        "https://alertd.example:8443/hooks/twilio/status?x=1&y=%2F",
        "http://127.0.0.1:8080/hooks/twilio/sms",
    ],
)
def test_matches_reference_and_twilio_library(url: str) -> None:
    ours = twilio_signature("tok-abc", url, STATUS)
    assert ours == reference("tok-abc", url, STATUS)
    library = RequestValidator("tok-abc")
    assert ours == library.compute_signature(url, dict(STATUS))
    assert library.validate(url, dict(STATUS), ours)


def test_multi_valued_parameters_sort_their_values() -> None:
    pairs = [("MediaUrl", "b"), ("Body", "x"), ("MediaUrl", "a"), ("MediaUrl", "c")]
    expected = reference(TOKEN, "https://h/p", pairs)
    assert twilio_signature(TOKEN, "https://h/p", pairs) == expected
    assert twilio_signature(TOKEN, "https://h/p", list(reversed(pairs))) == expected
    # the same text signed another way round is a different signature
    assert expected != reference(TOKEN, "https://h/p", [("MediaUrl", "bac"), ("Body", "x")])


def test_a_repeated_identical_pair_counts_once_like_the_library() -> None:
    class MultiDict(dict[str, list[str]]):
        def getall(self, name: str) -> list[str]:
            return self[name]

    pairs = [("A", "1"), ("A", "1"), ("B", "2")]
    library = RequestValidator(TOKEN).compute_signature(
        "https://h/p", MultiDict(A=["1", "1"], B=["2"])
    )
    assert twilio_signature(TOKEN, "https://h/p", pairs) == library


def test_tampering_invalidates() -> None:
    url = "https://alertd.example/hooks/twilio/status"
    good = twilio_signature(TOKEN, url, STATUS)
    assert valid_signature(TOKEN, url, STATUS, good)
    changed = [(n, "failed" if n == "MessageStatus" else v) for n, v in STATUS]
    assert not valid_signature(TOKEN, url, changed, good)
    assert not valid_signature(TOKEN, url, [*STATUS, ("Extra", "")], good)
    assert not valid_signature(TOKEN, url + "?x=1", STATUS, good)
    assert not valid_signature("other-token", url, STATUS, good)
    assert not valid_signature(TOKEN, url, STATUS, good[:-2] + "A=")


@pytest.mark.parametrize("header", [None, "", "   ", "not base64 at all ✓"])
def test_missing_or_garbage_header_is_invalid(header: str | None) -> None:
    assert not valid_signature(TOKEN, "https://h/p", STATUS, header)


def test_empty_token_never_validates() -> None:
    sig = twilio_signature("", "https://h/p", STATUS)
    assert not valid_signature("", "https://h/p", STATUS, sig)


@pytest.mark.parametrize(
    ("signed", "configured"),
    [
        ("https://alertd.example:443/hooks/twilio/sms", "https://alertd.example/hooks/twilio/sms"),
        ("https://alertd.example/hooks/twilio/sms", "https://alertd.example:443/hooks/twilio/sms"),
        (
            "http://alertd.example:80/hooks/twilio/sms?a=b",
            "http://alertd.example/hooks/twilio/sms?a=b",
        ),
        ("http://alertd.example/hooks/twilio/sms", "http://alertd.example:80/hooks/twilio/sms"),
    ],
)
def test_default_port_with_or_without(signed: str, configured: str) -> None:
    sig = reference(TOKEN, signed, STATUS)
    assert valid_signature(TOKEN, configured, STATUS, sig)
    assert RequestValidator(TOKEN).validate(configured, dict(STATUS), sig)


def test_other_ports_are_not_interchangeable() -> None:
    sig = reference(TOKEN, "https://alertd.example:8443/p", STATUS)
    assert not valid_signature(TOKEN, "https://alertd.example/p", STATUS, sig)
    assert not valid_signature(TOKEN, "https://alertd.example:443/p", STATUS, sig)
    # https's default port on plain http is not a default port
    sig = reference(TOKEN, "http://alertd.example:443/p", STATUS)
    assert not valid_signature(TOKEN, "http://alertd.example/p", STATUS, sig)


def test_url_variants() -> None:
    assert url_variants("https://u:p@h.example/x?q=1") == [
        "https://u:p@h.example/x?q=1",
        "https://u:p@h.example:443/x?q=1",
    ]
    assert url_variants("http://[::1]:80/x") == ["http://[::1]:80/x", "http://[::1]/x"]
    assert url_variants("http://h:8080/x") == ["http://h:8080/x"]
    assert url_variants("ftp://h/x") == ["ftp://h/x"]


# twilio.com/docs/usage/webhooks/webhooks-security: a JSON body's sha256 in the URL
JSON_BODY = b'{"CallSid":"CA1234567890ABCDE","Caller":"+12349013030"}'
JSON_URL = (
    "https://example.com/myapp"
    "?bodySHA256=5ccde7145dfb8f56479710896586cb9d5911809d83afbe34627818790db0aec9"
)


def test_json_body_variant() -> None:
    sig = reference(TOKEN, JSON_URL, [])
    assert valid_json_signature(TOKEN, JSON_URL, JSON_BODY, sig)
    assert RequestValidator(TOKEN).validate(JSON_URL, JSON_BODY.decode(), sig)
    # the body changed after signing: its hash no longer matches the signed URL
    assert not valid_json_signature(TOKEN, JSON_URL, JSON_BODY + b" ", sig)
    assert not valid_json_signature(TOKEN, JSON_URL, JSON_BODY, None)
    assert not valid_json_signature(TOKEN, JSON_URL, JSON_BODY, reference("x", JSON_URL, []))


def test_json_body_variant_needs_the_hash_parameter() -> None:
    url = "https://example.com/myapp"
    assert not valid_json_signature(TOKEN, url, JSON_BODY, reference(TOKEN, url, []))
