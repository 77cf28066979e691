"""The lean HTTP client's request bytes and URL handling (no sockets; see the integration
tests in ``tests/integration/test_http_wire.py`` for the wire itself)."""

from __future__ import annotations

import base64

import pytest

from alertd.notify import http_wire as wire
from alertd.notify.http import JSON_HEADERS

SIGNED = "https://oapi.dingtalk.com/robot/send?access_token=a%2Fb&timestamp=1&sign=x%2By%3D"


def head_lines(request: bytes) -> list[str]:
    head, _, _ = request.partition(b"\r\n\r\n")
    return head.decode().split("\r\n")


def test_a_post_names_host_agent_and_length() -> None:
    target = wire.Target.parse("http://127.0.0.1:8080/hook/ops")
    request = wire.encode_request(target, JSON_HEADERS, b'{"a":1}')
    assert head_lines(request) == [
        "POST /hook/ops HTTP/1.1",
        "Host: 127.0.0.1:8080",
        "Content-Type: application/json; charset=utf-8",
        "User-Agent: alertd",
        "Content-Length: 7",
    ]
    assert request.endswith(b'\r\n\r\n{"a":1}')


def test_the_query_is_sent_byte_for_byte() -> None:
    target = wire.Target.parse(SIGNED)
    assert target.path == "/robot/send?access_token=a%2Fb&timestamp=1&sign=x%2By%3D"
    assert target.authority == "oapi.dingtalk.com"  # the default port is not shown
    assert target.origin == ("https", "oapi.dingtalk.com", 443)
    assert head_lines(wire.encode_request(target, {}, b""))[0] == f"POST {target.path} HTTP/1.1"


@pytest.mark.parametrize(
    ("url", "origin", "authority", "path"),
    [
        ("http://[::1]:9000/x", ("http", "::1", 9000), "[::1]:9000", "/x"),
        ("https://[fe80::1]/", ("https", "fe80::1", 443), "[fe80::1]", "/"),
        ("HTTPS://Example.COM:443", ("https", "example.com", 443), "example.com", "/"),
        ("http://h:8443/a/b?", ("http", "h", 8443), "h:8443", "/a/b"),
        ("http://h/p#frag", ("http", "h", 80), "h", "/p"),
    ],
)
def test_targets(url: str, origin: tuple[str, str, int], authority: str, path: str) -> None:
    target = wire.Target.parse(url)
    assert (target.origin, target.authority, target.path) == (origin, authority, path)


@pytest.mark.parametrize(
    "url", ["ftp://h/x", "http:///x", "http://h:99999/x", "http://h:port/x", "mailto:a@b"]
)
def test_urls_that_cannot_be_posted_to(url: str) -> None:
    with pytest.raises(wire.InvalidUrl) as info:
        wire.Target.parse(url)
    assert not info.value.sent
    assert url not in str(info.value)  # a URL holds a token: never quoted


def test_user_info_becomes_basic_auth_unless_the_caller_sets_authorization() -> None:
    target = wire.Target.parse("http://us%40er:p%3Ass@h/x")
    expected = "Basic " + base64.b64encode(b"us@er:p:ss").decode()
    assert f"Authorization: {expected}" in head_lines(wire.encode_request(target, {}, b""))
    mine = wire.encode_request(target, {"authorization": "Bearer t"}, b"")
    assert [line for line in head_lines(mine) if "uthorization" in line] == [
        "authorization: Bearer t"
    ]


def test_the_callers_user_agent_replaces_ours() -> None:
    target = wire.Target.parse("http://h/x")
    lines = head_lines(wire.encode_request(target, {"user-agent": "probe/1"}, b""))
    assert [line for line in lines if line.lower().startswith("user-agent")] == [
        "user-agent: probe/1"
    ]


@pytest.mark.parametrize(
    "headers",
    [
        {"X-A": "ok\r\nInjected: yes"},
        {"X-A": "bare\nline feed"},
        {"X-A\r\nInjected": "yes"},
        {"Content-Length": "0"},
        {"transfer-encoding": "chunked"},
        {"HOST": "elsewhere"},
        {"Connection": "close"},
    ],
)
def test_headers_that_would_reframe_the_request_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(wire.InvalidRequest) as info:
        wire.encode_request(wire.Target.parse("http://h/x"), headers, b"")
    assert not info.value.sent


def test_which_failures_may_have_reached_the_server() -> None:
    unsent = [wire.ResolveError, wire.ConnectError, wire.CertificateError, wire.ConnectTimeout]
    maybe = [wire.AnswerTimeout, wire.Disconnected, wire.ConnectionFailed, wire.CutShort]
    assert [cls.sent for cls in unsent] == [False] * len(unsent)
    assert [cls.sent for cls in maybe] == [True] * len(maybe)
    assert issubclass(wire.ConnectTimeout, TimeoutError)
    assert issubclass(wire.AnswerTimeout, TimeoutError)


def test_user_info_beyond_latin_1_is_sent_as_utf_8_not_an_error() -> None:
    target = wire.Target.parse("https://bot:p%E2%82%ACss@example.com/hook")
    assert target.authorization == "Basic " + base64.b64encode("bot:p€ss".encode()).decode()
