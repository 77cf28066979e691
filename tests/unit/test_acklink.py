"""Signed, expiring acknowledge tokens (alertd.notify.acklink): no sockets."""

from __future__ import annotations

import re

import pytest

from alertd.notify.acklink import AckTokenError, ack_url, make_ack_token, verify_ack_token

SECRET = b"0123456789abcdef0123456789abcdef"
EXPIRES = 1_800_003_600
NOW = 1_800_000_000.0


def test_round_trip() -> None:
    token = make_ack_token(SECRET, 42, EXPIRES)

    assert verify_ack_token(SECRET, token, NOW) == 42
    assert verify_ack_token(SECRET, token, EXPIRES - 0.5) == 42


def test_token_is_url_safe_compact_and_versioned() -> None:
    token = make_ack_token(SECRET, 123456, EXPIRES)

    assert re.fullmatch(r"[A-Za-z0-9._-]+", token)
    assert token.startswith(f"v1.123456.{EXPIRES}.")
    assert len(token) <= 50
    assert make_ack_token(SECRET, 123456, EXPIRES) == token  # deterministic
    assert make_ack_token(SECRET, 123457, EXPIRES) != token


@pytest.mark.parametrize("now", [EXPIRES, EXPIRES + 1, EXPIRES + 86400.0])
def test_expired(now: float) -> None:
    token = make_ack_token(SECRET, 42, EXPIRES)

    with pytest.raises(AckTokenError, match="expired") as info:
        verify_ack_token(SECRET, token, now)

    assert info.value.problem == "expired"


def _with_part(token: str, index: int, value: str) -> str:
    parts = token.split(".")
    parts[index] = value
    return ".".join(parts)


@pytest.mark.parametrize(
    ("index", "value"),
    [
        (1, "43"),  # another incident
        (2, str(EXPIRES + 86400)),  # a later expiry
    ],
)
def test_tampered_fields_fail_the_signature(index: int, value: str) -> None:
    token = _with_part(make_ack_token(SECRET, 42, EXPIRES), index, value)

    with pytest.raises(AckTokenError, match="bad signature") as info:
        verify_ack_token(SECRET, token, NOW)

    assert info.value.problem == "signature"


def test_tampered_signature() -> None:
    token = make_ack_token(SECRET, 42, EXPIRES)
    sig = token.rsplit(".", 1)[1]
    flipped = ("B" if sig[0] == "A" else "A") + sig[1:]

    with pytest.raises(AckTokenError) as info:
        verify_ack_token(SECRET, _with_part(token, 3, flipped), NOW)

    assert info.value.problem == "signature"


def test_wrong_secret() -> None:
    token = make_ack_token(SECRET, 42, EXPIRES)

    with pytest.raises(AckTokenError) as info:
        verify_ack_token(b"another secret", token, NOW)

    assert info.value.problem == "signature"


def test_an_expired_forgery_is_reported_as_a_bad_signature() -> None:
    token = make_ack_token(b"another secret", 42, EXPIRES)

    with pytest.raises(AckTokenError) as info:
        verify_ack_token(SECRET, token, EXPIRES + 1)

    assert info.value.problem == "signature"  # the signature is checked before the expiry


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("", "malformed"),
        ("garbage", "malformed"),
        ("v1.42.1800003600", "malformed"),
        ("v1.42.1800003600.sig.extra", "malformed"),
        ("v2.42.1800003600.AAAAAAAAAAAAAAAAAAAAAA", "version"),
        ("v1.-1.1800003600.AAAAAAAAAAAAAAAAAAAAAA", "malformed"),
        ("v1.042.1800003600.AAAAAAAAAAAAAAAAAAAAAA", "malformed"),
        ("v1.42.1800003600.AAAAAAAAAAAAAAAAAAAAA", "malformed"),  # short signature
        ("v1.42.1800003600.AAAAAAAAAAAAAAAAAAAAA=", "malformed"),
        ("v1.\uff14\uff12.1800003600.AAAAAAAAAAAAAAAAAAAAAA", "malformed"),  # fullwidth 42
        ("v1.42.1800003600.AAAAAAAAAAAAAAAAAAAAAé", "malformed"),
        ("v1." + "9" * 100 + ".1800003600.AAAAAAAAAAAAAAAAAAAAAA", "malformed"),
    ],
)
def test_garbage(token: str, problem: str) -> None:
    with pytest.raises(AckTokenError) as info:
        verify_ack_token(SECRET, token, NOW)

    assert info.value.problem == problem
    assert isinstance(info.value, ValueError)
    assert not token or token not in str(info.value)  # a token is never echoed


def test_non_canonical_spelling_of_a_genuine_token_is_refused() -> None:
    token = make_ack_token(SECRET, 42, EXPIRES)

    with pytest.raises(AckTokenError):
        verify_ack_token(SECRET, _with_part(token, 1, "042"), NOW)


@pytest.mark.parametrize(
    ("secret", "incident_id", "expires_at"),
    [(b"", 42, EXPIRES), (SECRET, -1, EXPIRES), (SECRET, 42, -5), (SECRET, True, EXPIRES)],
)
def test_make_refuses_bad_input(secret: bytes, incident_id: int, expires_at: int) -> None:
    with pytest.raises(ValueError, match=r"empty|non-negative integer"):
        make_ack_token(secret, incident_id, expires_at)


def test_verify_refuses_an_empty_secret() -> None:
    with pytest.raises(ValueError, match="empty") as info:
        verify_ack_token(b"", make_ack_token(SECRET, 42, EXPIRES), NOW)

    assert not isinstance(info.value, AckTokenError)


@pytest.mark.parametrize("public_url", ["https://alertd.example", "https://alertd.example/"])
def test_ack_url(public_url: str) -> None:
    assert ack_url(public_url, "v1.1.2.x") == "https://alertd.example/ack/v1.1.2.x"
