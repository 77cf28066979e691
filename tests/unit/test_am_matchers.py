"""Alertmanager matchers: the text form (``filter=``, amtool's arguments), how silences store
them, how windows match with them, and the ids and fingerprints the v2 API shows."""

from __future__ import annotations

import json

import pytest

from alertd.api.am_alerts import am_fingerprint, am_time, parse_silence_id, silence_uuid
from alertd.api.am_config import go_duration
from alertd.api.am_matchers import filter_matches, matchers_from_json, parse_matcher
from alertd.evaluate.thresholds import matches
from alertd.incidents.maintenance import (
    MatcherError,
    Window,
    compile_matcher_regex,
    from_rows,
    matcher_matches,
)
from alertd.state.maintenance import (
    LabelMatcher,
    WindowRow,
    as_label_matchers,
    decode_matchers,
    encode_matchers,
)

EQ, NE = LabelMatcher("a", "b"), LabelMatcher("a", "b", is_equal=False)
RE, NRE = LabelMatcher("a", "b.*", is_regex=True), LabelMatcher("a", "b.*", True, False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("foo=bar", LabelMatcher("foo", "bar")),
        ('foo="bar"', LabelMatcher("foo", "bar")),
        ("  foo = bar  ", LabelMatcher("foo", "bar")),
        ('{foo="bar"}', LabelMatcher("foo", "bar")),
        ("foo!=bar", LabelMatcher("foo", "bar", is_equal=False)),
        ('foo=~"b.*"', LabelMatcher("foo", "b.*", is_regex=True)),
        ("foo!~b.*", LabelMatcher("foo", "b.*", is_regex=True, is_equal=False)),
        ("foo=", LabelMatcher("foo", "")),
        ('foo=""', LabelMatcher("foo", "")),
        ('foo="say \\"hi\\""', LabelMatcher("foo", 'say "hi"')),
        ('foo="a\\nb"', LabelMatcher("foo", "a\nb")),
        ('foo="a\\\\b"', LabelMatcher("foo", "a\\b")),
        ('foo="a\\db"', LabelMatcher("foo", "a\\db")),  # a spurious escape stays
        ("foo=a,b", LabelMatcher("foo", "a,b")),
        ('"host name"="x"', LabelMatcher("host name", "x")),
        ("a:b_c=1", LabelMatcher("a:b_c", "1")),
    ],
)
def test_parse_matcher(text: str, expected: LabelMatcher) -> None:
    assert parse_matcher(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("foo", "bad matcher format"),
        ("1foo=bar", "bad matcher format"),
        ("foo~bar", "bad matcher format"),
        ('foo="bar', "unescaped double quote"),
        ('foo=bar"', "unescaped double quote"),
        ('foo="a"b"', "unescaped double quote"),
        ('foo=~"(a"', "invalid regex"),
    ],
)
def test_parse_matcher_errors(text: str, message: str) -> None:
    with pytest.raises(MatcherError, match=message):
        parse_matcher(text)


def test_matcher_text_form_round_trips() -> None:
    for m in (EQ, NE, RE, NRE, LabelMatcher("x", 'q"\n\\')):
        assert parse_matcher(str(m)) == m
    assert [str(m) for m in (EQ, NE, RE, NRE)] == ['a="b"', 'a!="b"', 'a=~"b.*"', 'a!~"b.*"']


@pytest.mark.parametrize(
    ("matcher", "value", "expected"),
    [
        (EQ, "b", True),
        (EQ, "bb", False),
        (NE, "b", False),
        (NE, "", True),
        (RE, "b", True),
        (RE, "bcd", True),
        (RE, "ab", False),  # anchored at the start ...
        (LabelMatcher("a", "b", is_regex=True), "bc", False),  # ... and at the end
        (LabelMatcher("a", "b|c", is_regex=True), "c", True),  # the alternation is grouped
        (LabelMatcher("a", "b", is_regex=True), "b\n", False),  # $ is the end of the text
        (LabelMatcher("a", "(?i)B", is_regex=True), "b", True),
        (LabelMatcher("a", "\\d+", is_regex=True), "42", True),
        (NRE, "bcd", False),
        (NRE, "x", True),
    ],
)
def test_matcher_semantics(matcher: LabelMatcher, value: str, expected: bool) -> None:
    assert matcher_matches(matcher, value) is expected


@pytest.mark.parametrize("pattern", ["(?=a)", "(?!a)", "(?<=a)b", "(a)\\1", "(", "a{2,1}"])
def test_regexes_re2_refuses_are_refused(pattern: str) -> None:
    with pytest.raises(MatcherError, match="invalid regex"):
        compile_matcher_regex(pattern)


def test_filters_treat_empty_values_as_alertmanager_does() -> None:
    labels = {"job": "node"}
    assert filter_matches([parse_matcher('team=""')], labels)
    assert not filter_matches([parse_matcher('job=""')], labels)
    assert filter_matches([parse_matcher('job!=""')], labels)
    assert not filter_matches([parse_matcher('team!=""')], labels)  # "" != "" fails
    assert filter_matches([parse_matcher("team!~x")], labels)


def test_matchers_from_json() -> None:
    body = [
        {"name": "a", "value": "b", "isRegex": False},
        {"name": "c", "value": "d.*", "isRegex": True, "isEqual": False},
    ]
    assert matchers_from_json(body) == [EQ, LabelMatcher("c", "d.*", True, False)]
    with pytest.raises(MatcherError, match="must not match the empty string"):
        matchers_from_json([{"name": "a", "value": "", "isRegex": False}])
    with pytest.raises(MatcherError, match="invalid label value"):
        matchers_from_json([{"name": "a", "value": "\ud800", "isRegex": False}])


def test_storage_keeps_equality_silences_in_the_cli_form() -> None:
    assert json.loads(encode_matchers([EQ, LabelMatcher("c", "d")])) == {"a": ["b"], "c": ["d"]}
    assert json.loads(encode_matchers({"a": ["b", "c"]})) == {"a": ["b", "c"]}
    twice = [EQ, LabelMatcher("a", "c")]  # both must hold: not "any of"
    for ms in ([NE], [RE], [NRE], twice):
        text = encode_matchers(ms)
        assert set(json.loads(text)) == {"$am"}
        assert decode_matchers(text) == ({}, tuple(ms))
        # an alertd without Alertmanager matchers reads a label "$am" that nothing has
        assert not matches(json.loads(text), {"a": "b", "$am": ""})
    assert decode_matchers('{"$am": ["x"]}') == ({"$am": ["x"]}, ())  # a label named $am


def test_cli_matchers_in_alertmanager_form() -> None:
    assert as_label_matchers({"a": ["b"], "i": ["web.1", "x(2)", "c|d"]}) == (
        EQ,
        LabelMatcher("i", "web\\.1|x\\(2\\)|c\\|d", is_regex=True),
    )
    (m,) = as_label_matchers({"i": ["web.1", "x(2)"]})
    assert matcher_matches(m, "x(2)")
    assert not matcher_matches(m, "webx1")


def test_windows_with_alertmanager_matchers() -> None:
    row = WindowRow(
        7, "silence", {}, 0.0, 100.0, "r", "o", am=(RE, LabelMatcher("j", "x", False, False))
    )
    (w,) = from_rows([row])
    assert (w.id, w.label()) == (7, "silence #7 (r)")
    assert w.covers({"a": "bz", "j": "y"}, 50.0)
    assert w.covers({"a": "b"}, 50.0)  # j is missing: "" != "x"
    assert not w.covers({"a": "bz", "j": "x"}, 50.0)
    assert not w.covers({"a": "bz"}, 100.0)
    assert 'a=~"b.*", j!="x"' in w.describe()
    legacy = Window("#1", "silence", {"a": ["b", "c"]}, "r", "o", 0.0, 100.0)
    assert legacy.covers({"a": "c"}, 1.0)
    assert not legacy.covers({"a": "d"}, 1.0)


def test_a_window_removed_early_ends_then() -> None:
    removed = WindowRow(1, "silence", {"a": ["b"]}, 10.0, 100.0, "r", "o", removed_at=40.0)
    pending = WindowRow(2, "silence", {"a": ["b"]}, 10.0, 100.0, "r", "o", removed_at=5.0)
    a, b = from_rows([removed, pending])
    assert a.covers({"a": "b"}, 39.0)
    assert not a.covers({"a": "b"}, 40.0)
    assert not any(b.covers({"a": "b"}, t) for t in (5.0, 10.0, 50.0))


def test_silence_ids() -> None:
    assert silence_uuid(42) == "a1e7d000-0000-4000-8000-000000000042"
    for text in (silence_uuid(42), silence_uuid(42).upper(), "42", "#42"):
        assert parse_silence_id(text) == 42
    for text in (
        "0",
        "x",
        "a1e7d000-0000-4000-8000-00000000004",
        "8a4e4fb4-ca21-414c-9a9c-dbe336c907d3",
        "1" * 13,
        "٤٢",
    ):
        assert parse_silence_id(text) is None


def test_fingerprints_and_times_as_alertmanager() -> None:
    # Alertmanager 0.25 answered these for the same label sets
    labels = {"alertname": "DiskFull", "instance": "web1", "severity": "critical"}
    assert am_fingerprint(labels) == "b24ed1c59cc0e2bc"
    assert am_fingerprint({}) == "cbf29ce484222325"  # FNV-1a's offset basis
    assert am_time(1_787_220_000.25) == "2026-08-20T10:00:00.250Z"
    assert am_time(None) == "0001-01-01T00:00:00.000Z"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (30, "30s"), (300, "5m"), (5400, "1h30m"), (90061.5, "1d1h1m1s500ms")],
)
def test_go_durations(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_a_stored_regex_that_does_not_compile_covers_nothing() -> None:
    for matcher in (LabelMatcher("a", "(", True, True), LabelMatcher("a", "(", True, False)):
        (w,) = from_rows([WindowRow(1, "silence", {}, 0.0, 100.0, "r", "o", am=(matcher,))])
        assert not w.covers({"a": "("}, 1.0)
        assert not w.covers({}, 1.0)
