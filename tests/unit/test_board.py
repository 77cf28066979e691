"""The board's pure parts: signed sessions and CSRF tokens, form checks, target and age text."""

from __future__ import annotations

from pathlib import Path

import pytest

from alertd.board import session
from alertd.board.forms import WindowForm, parse_window, text_field
from alertd.board.read import Filters, Listed, human_duration, target_status
from alertd.config.channels import ResponseTarget
from alertd.model import Incident, IncidentState, Level

NOW = 1_787_220_000.0  # 2026-08-20T10:00:00Z
KEY = b"k" * 32
TARGETS = {"P1": ResponseTarget(respond_within=300, resolve_within=3600)}


def incident(state: IncidentState = IncidentState.OPEN, priority: str = "P1") -> Incident:
    labels = (("instance", "sw-core-01"), ("role", "Core"))
    return Incident(
        1, "fp", "CoreDown", "up", labels, Level.CRITICAL, priority, state, "core down", None,
        NOW - 17 * 60, NOW,
    )  # fmt: skip


# -- sessions ----------------------------------------------------------------------------------


def test_a_session_round_trips_and_carries_no_token() -> None:
    s = session.new_session("alice", frozenset({"read", "respond"}), NOW)
    cookie = session.encode(KEY, s, binding="ab" * 32)
    assert session.decode(KEY, cookie, "ab" * 32, NOW) == s
    assert s.expires_at == NOW + session.LIFETIME
    assert session.peek_name(cookie) == "alice"
    assert "ab" * 32 not in cookie  # the binding is signed, not stored


@pytest.mark.parametrize(
    ("key", "binding", "now"),
    [
        (b"another key" * 3, "ab" * 32, NOW),  # signed with another secret
        (KEY, "cd" * 32, NOW),  # the token was rotated
        (KEY, "ab" * 32, NOW + session.LIFETIME),  # expired
    ],
)
def test_a_session_is_refused_with_another_key_binding_or_after_expiry(
    key: bytes, binding: str, now: float
) -> None:
    cookie = session.encode(KEY, session.new_session("alice", frozenset({"read"}), NOW), "ab" * 32)
    assert session.decode(key, cookie, binding, now) is None


def test_a_tampered_session_is_refused() -> None:
    cookie = session.encode(KEY, session.new_session("alice", frozenset({"read"}), NOW))
    other = session.encode(KEY, session.new_session("root", frozenset({"admin"}), NOW))
    version, _, signature = cookie.split(".")
    assert session.decode(KEY, f"{version}.{other.split('.')[1]}.{signature}", "", NOW) is None
    for junk in ["", "v1..", "v2.x.y", "v1.!!!.sig", cookie + "x", "v1." + "A" * 2000 + ".s"]:
        assert session.decode(KEY, junk, "", NOW) is None
    assert session.peek_name("v1.e30.sig") is None  # {} : no name


def test_csrf_tokens_belong_to_one_session() -> None:
    a = session.new_session("alice", frozenset({"respond"}), NOW)
    b = session.new_session("alice", frozenset({"respond"}), NOW)
    token = session.csrf_token(KEY, a)
    assert session.csrf_ok(KEY, a, token)
    assert not session.csrf_ok(KEY, b, token)
    assert not session.csrf_ok(b"x" * 32, a, token)
    assert not session.csrf_ok(KEY, a, "")


def test_the_session_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "board-session.key"
    key = session.load_or_create_key(path)
    assert len(key) == 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert session.load_or_create_key(path) == key
    path.write_bytes(b"short")
    with pytest.raises(ValueError, match="needs 32 bytes"):
        session.load_or_create_key(path)


# -- what the list says ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (59, "59s"), (60, "1m"), (3599, "59m"), (3600, "1h"), (3900, "1h 5m"),
     (86400, "1d"), (100800, "1d 4h"), (-5, "0s")],
)  # fmt: skip
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_targets_count_respond_until_acked_then_resolve() -> None:
    overdue = target_status(incident(), TARGETS, NOW)
    assert overdue is not None
    assert (overdue.goal, overdue.text, overdue.overdue) == (
        "respond",
        "respond overdue by 12m",
        True,
    )
    acked = target_status(incident(IncidentState.ACKNOWLEDGED), TARGETS, NOW)
    assert acked is not None
    assert (acked.text, acked.overdue) == ("resolve within 43m", False)
    assert target_status(incident(IncidentState.RESOLVED), TARGETS, NOW) is None
    assert target_status(incident(priority="P4"), TARGETS, NOW) is None


def test_filters_parse_and_match_every_word_anywhere_in_labels_or_summary() -> None:
    listed = Listed(incident(), "netops", "17m", None, ("netops", "managers"))
    assert Filters.parse({"q": "SW-CORE role=core"}).accepts(listed)
    assert Filters.parse({"q": "down"}).accepts(listed)  # the summary
    assert not Filters.parse({"q": "sw-core edge"}).accepts(listed)
    assert Filters.parse({"team": "netops", "priority": "P1"}).accepts(listed)
    assert Filters.parse({"team": "managers"}).accepts(listed)  # a later tier counts too
    assert not Filters.parse({"team": "dba"}).accepts(listed)
    assert not Filters.parse({"team": "-"}).accepts(listed)
    assert Filters.parse({"team": "-"}).accepts(Listed(incident(), "-", "17m", None, ()))
    assert not Filters.parse({"priority": "P2"}).accepts(listed)
    odd = Filters.parse({"state": "deleted", "priority": "P9"})
    assert (odd.state, odd.priority) == ("active", "")  # unknown values are ignored


# -- forms -------------------------------------------------------------------------------------


def test_a_window_form_with_a_duration_or_an_end() -> None:
    form = {"matchers": "instance=a, instance=b\njob=snmp", "start": "2026-08-20T11:00",
            "duration": "90m", "reason": "optics"}  # fmt: skip
    assert parse_window(form, NOW) == WindowForm(
        {"instance": ["a", "b"], "job": ["snmp"]}, NOW + 3600, NOW + 3600 + 5400, "optics"
    )
    by_end = {"matchers": "a=1", "end": "2026-08-20T12:00:00+02:00", "reason": "r"}
    assert parse_window(by_end, NOW) == ["the window must end after it starts"]  # 10:00Z
    later = {"matchers": "a=1", "end": "2026-08-20T12:00Z", "reason": "r"}
    assert parse_window(later, NOW) == WindowForm({"a": ["1"]}, NOW, NOW + 7200, "r")


@pytest.mark.parametrize(
    ("form", "problem"),
    [
        ({"matchers": "", "duration": "1h", "reason": "r"}, "give at least one matcher"),
        ({"matchers": "=x", "duration": "1h", "reason": "r"}, "matcher '=x': expected"),
        ({"matchers": "a=1", "reason": "r"}, "either a duration or an end"),
        ({"matchers": "a=1", "duration": "soon", "reason": "r"}, "duration 'soon'"),
        ({"matchers": "a=1", "start": "tomorrow", "duration": "1h", "reason": "r"}, "start"),
        ({"matchers": "a=1", "duration": "0s", "reason": "r"}, "end after it starts"),
        ({"matchers": "a=1", "duration": "400d", "reason": "r"}, "at most 366 days"),
        ({"matchers": "a=1", "end": "2026-08-20T09:00Z", "reason": "r"}, "end after it starts"),
        ({"matchers": "a=1", "start": "2026-08-19T00:00", "duration": "1h", "reason": "r"},
         "already over"),
        ({"matchers": "a=1", "duration": "1h", "reason": " "}, "give a reason"),
    ],
)  # fmt: skip
def test_a_bad_window_form_says_what_is_wrong(form: dict[str, str], problem: str) -> None:
    result = parse_window(form, NOW)
    assert isinstance(result, list)
    assert any(problem in p for p in result), result


def test_text_fields_are_stripped_and_bounded() -> None:
    assert text_field({"comment": "  on it  "}, "comment") == "on it"
    assert text_field({"comment": "   "}, "comment") is None
    assert text_field({}, "comment") is None
    with pytest.raises(ValueError, match="too long"):
        text_field({"comment": "x" * 2001}, "comment")
