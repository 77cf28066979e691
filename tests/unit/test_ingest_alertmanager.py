"""Parsing Alertmanager API v2 ``postableAlerts`` bodies: AM's defaults, validation, limits."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alertd.ingest.alertmanager import (
    MAX_REPORTED_ERRORS,
    IngestError,
    IngestLimits,
    PostedAlert,
    describe_errors,
    parse_postable_alerts,
)
from alertd.ingest.rfc3339 import GO_ZERO_TIME, parse_time
from alertd.ingest.severity import MAX_SUMMARY_CHARS, level_from_severity, summary_for
from alertd.model import Level, fingerprint

NOW = 1_787_220_000.0  # 2026-08-20T10:00:00Z
LIMITS = IngestLimits()
ZERO = "0001-01-01T00:00:00Z"


def body(*alerts: Any) -> bytes:
    return json.dumps(list(alerts)).encode()


def parse(
    *alerts: Any, limits: IngestLimits = LIMITS, **kwargs: Any
) -> tuple[list[PostedAlert], list[str]]:
    return parse_postable_alerts(body(*alerts), NOW, limits, **kwargs)


def one(alert: dict[str, Any], **kwargs: Any) -> PostedAlert:
    alerts, errors = parse(alert, **kwargs)
    assert errors == []
    assert len(alerts) == 1
    return alerts[0]


def error_of(alert: Any, limits: IngestLimits = LIMITS) -> str:
    alerts, errors = parse(alert, limits=limits)
    assert alerts == []
    assert len(errors) == 1
    return errors[0]


def refused(raw: bytes, limits: IngestLimits = LIMITS) -> IngestError:
    with pytest.raises(IngestError) as info:
        parse_postable_alerts(raw, NOW, limits)
    return info.value


def test_a_prometheus_alert_keeps_its_times_labels_and_url() -> None:
    alert = one(
        {
            "labels": {"alertname": "HostCpuHigh", "instance": "sw1", "severity": "critical"},
            "annotations": {"summary": "CPU 92% on sw1", "runbook_url": "https://wiki/cpu"},
            "startsAt": "2026-08-20T09:58:00.123456789Z",
            "endsAt": "2026-08-20T10:04:00Z",
            "generatorURL": "http://prom:9090/graph?g0.expr=cpu",
        }
    )
    labels = (("alertname", "HostCpuHigh"), ("instance", "sw1"), ("severity", "critical"))
    assert alert.rule == "HostCpuHigh"
    assert alert.labels == labels
    assert alert.annotations == (("runbook_url", "https://wiki/cpu"), ("summary", "CPU 92% on sw1"))
    assert alert.starts_at == pytest.approx(NOW - 120 + 0.123456789)
    assert alert.ends_at == NOW + 240
    assert alert.refreshable is False
    assert alert.generator_url == "http://prom:9090/graph?g0.expr=cpu"
    assert alert.level is Level.CRITICAL
    assert alert.summary == "CPU 92% on sw1"
    assert alert.fingerprint == fingerprint("HostCpuHigh", labels)
    assert alert.firing(NOW)
    assert not alert.firing(NOW + 240)


@pytest.mark.parametrize(
    "times",
    [
        {"startsAt": ZERO, "endsAt": ZERO},  # amtool alert add
        {"startsAt": "0001-01-01T00:00:00.000Z", "endsAt": "0001-01-01T00:00:00.000Z"},
        {},
        {"startsAt": None, "endsAt": None},
        {"startsAt": "", "endsAt": ""},
        {"startsAt": "0001-01-01T01:00:00+01:00", "endsAt": "0001-01-01T00:00:00+00:00"},
    ],
)
def test_missing_or_zero_times_mean_now_and_now_plus_resolve_timeout(times: dict[str, Any]) -> None:
    alert = one({"labels": {"alertname": "A"}, **times}, resolve_timeout=120.0)
    assert alert.starts_at == NOW
    assert alert.ends_at == NOW + 120.0
    assert alert.refreshable is True


def test_the_default_resolve_timeout_is_five_minutes() -> None:
    assert one({"labels": {"alertname": "A"}}).ends_at == NOW + 300


def test_only_an_end_in_the_past_starts_the_alert_there() -> None:
    alert = one({"labels": {"alertname": "A"}, "endsAt": "2026-08-20T09:00:00Z"})
    assert alert.starts_at == alert.ends_at == NOW - 3600
    assert not alert.firing(NOW)
    assert alert.refreshable is False


def test_only_an_end_in_the_future_starts_the_alert_now() -> None:
    alert = one({"labels": {"alertname": "A"}, "endsAt": "2026-08-20T11:00:00Z"})
    assert (alert.starts_at, alert.ends_at) == (NOW, NOW + 3600)


@pytest.mark.parametrize(
    "text",
    [
        "2026-08-20T10:00:00Z",
        "2026-08-20T10:00:00z",
        "2026-08-20t10:00:00Z",
        "2026-08-20T10:00:00+00:00",
        "2026-08-20T12:00:00+02:00",
        "2026-08-20T05:30:00-04:30",
        "2026-08-20T15:45:00+0545",
        "2026-08-20T10:00Z",
        "2026-08-20T10:00:00",
        "2026-08-20T10:00:00.000000000Z",
    ],
)
def test_rfc3339_times_with_offsets(text: str) -> None:
    assert parse_time(text) == NOW


def test_fractional_seconds_down_to_nanoseconds() -> None:
    assert parse_time("2026-08-20T10:00:00.5Z") == NOW + 0.5
    assert parse_time("2026-08-20T10:00:00.000001Z") == pytest.approx(NOW + 1e-6, abs=1e-7)
    assert parse_time("2026-08-20T12:00:00.25+02:00") == NOW + 0.25


@pytest.mark.parametrize(
    "text", [ZERO, "0001-01-01T00:00:00.000Z", "0001-01-01T01:00:00+01:00", "0001-01-01T00:00:00"]
)
def test_go_zero_time_in_any_spelling_is_none(text: str) -> None:
    assert parse_time(text) is None


def test_a_time_just_after_go_zero_is_a_time() -> None:
    assert parse_time("0001-01-01T00:00:01Z") == GO_ZERO_TIME + 1


@pytest.mark.parametrize(
    "text",
    [
        "yesterday",
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-08-20T25:00:00Z",
        "2026-08-20T10:00:60Z",
        "2026-08-20T10:00:00+24:00",
        "2026-08-20",
        "2026-08-20T10:00:00.1234567890Z",
        "0000-01-01T00:00:00Z",
        "\uff12\uff10\uff12\uff16-08-20T10:00:00Z",  # fullwidth digits: \d in re, not in RFC 3339
        " 2026-08-20T10:00:00Z",
    ],
)
def test_bad_times_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_time(text)


@pytest.mark.parametrize(
    ("times", "message"),
    [
        ({"startsAt": "yesterday"}, 'startsAt: not an RFC 3339 time: "yesterday"'),
        ({"endsAt": 1787220000}, "endsAt: must be an RFC 3339 time string"),
        ({"startsAt": {"t": 1}}, "startsAt: must be an RFC 3339 time string"),
    ],
)
def test_a_bad_time_invalidates_the_alert(times: dict[str, Any], message: str) -> None:
    assert error_of({"labels": {"alertname": "A"}, **times}) == f"alerts[0]: {message}"


def test_end_before_start_is_invalid_but_equal_is_fine() -> None:
    alert = {"labels": {"alertname": "A"}, "startsAt": "2026-08-20T10:00:00Z"}
    before = {**alert, "endsAt": "2026-08-20T09:59:59Z"}
    assert error_of(before) == "alerts[0]: start time must be before end time"
    assert one({**alert, "endsAt": "2026-08-20T10:00:00Z"}).ends_at == NOW


def test_a_start_after_the_computed_end_is_invalid() -> None:
    # AM checks after defaulting: endsAt = now + resolve_timeout is before this startsAt
    alert = {"labels": {"alertname": "A"}, "startsAt": "2026-08-20T11:00:00Z"}
    assert error_of(alert) == "alerts[0]: start time must be before end time"


def test_a_future_start_within_the_timeout_is_fine() -> None:
    alert = one({"labels": {"alertname": "A"}, "startsAt": "2026-08-20T10:01:00Z"})
    assert alert.starts_at == NOW + 60


# -- labels and annotations --------------------------------------------------------------------


def test_empty_label_values_are_dropped_from_labels_and_identity() -> None:
    alert = one({"labels": {"alertname": "A", "job": "", "instance": "x"}})
    assert alert.labels == (("alertname", "A"), ("instance", "x"))
    assert alert.fingerprint == one({"labels": {"alertname": "A", "instance": "x"}}).fingerprint


def test_labels_that_are_all_empty_leave_none() -> None:
    assert error_of({"labels": {"x": ""}}) == "alerts[0]: at least one label pair required"
    assert error_of({"labels": {}}) == "alerts[0]: at least one label pair required"


@pytest.mark.parametrize(
    ("alert", "message"),
    [
        ({}, "labels: required"),
        ({"labels": None}, "labels: required"),
        ({"labels": ["alertname", "A"]}, "invalid label set: must be an object of strings"),
        ({"labels": "alertname=A"}, "invalid label set: must be an object of strings"),
        ({"labels": {"alertname": "A", "n": 1}}, 'invalid label set: value of "n" is not a string'),
        (
            {"labels": {"alertname": "A", "n": None}},
            'invalid label set: value of "n" is not a string',
        ),
        (
            {"labels": {"alertname": ["A"]}},
            'invalid label set: value of "alertname" is not a string',
        ),
        ({"labels": {"instance": "x"}}, "invalid label set: alertname missing"),
        ({"labels": {"alertname": ""}}, "at least one label pair required"),
        ({"labels": {"alertname": "A", "": "x"}}, 'invalid label set: invalid name ""'),
        (
            {"labels": {"alertname": "A", "\ud800": "x"}},
            'invalid label set: invalid name "\\ud800"',
        ),
        ({"labels": {"alertname": "A", "v": "\udfff"}}, 'invalid label set: invalid value of "v"'),
        ([{"labels": {"alertname": "A"}}], "must be a JSON object"),
        ("alert", "must be a JSON object"),
        (None, "must be a JSON object"),
        (
            {"labels": {"alertname": "A"}, "annotations": ["summary"]},
            "invalid annotations: must be an object of strings",
        ),
        (
            {"labels": {"alertname": "A"}, "annotations": {"summary": 5}},
            'invalid annotations: value of "summary" is not a string',
        ),
        (
            {"labels": {"alertname": "A"}, "annotations": {"": "x"}},
            'invalid annotations: invalid name ""',
        ),
        ({"labels": {"alertname": "A"}, "generatorURL": 5}, "generatorURL: must be a string"),
        (
            {"labels": {"alertname": "A"}, "generatorURL": "http://x/\r\nSet-Cookie: a"},
            "generatorURL: not a URL (control character)",
        ),
        (
            {"labels": {"alertname": "A"}, "generatorURL": "http://\ud800"},
            "generatorURL: not valid UTF-8",
        ),
    ],
)
def test_invalid_alerts_say_what_is_wrong(alert: Any, message: str) -> None:
    assert error_of(alert) == f"alerts[0]: {message}"


def test_utf8_label_names_are_accepted_by_default_as_in_alertmanager() -> None:
    alert = one({"labels": {"alertname": "A", "service.name": "api", "1x": "y", "名前": "z"}})
    assert dict(alert.labels) == {"alertname": "A", "service.name": "api", "1x": "y", "名前": "z"}


@pytest.mark.parametrize("name", ["1x", "service.name", "a-b", "名前", "a b"])
def test_classic_label_names_refuse_anything_outside_the_prometheus_charset(name: str) -> None:
    classic = IngestLimits(classic_label_names=True)
    message = error_of({"labels": {"alertname": "A", name: "v"}}, limits=classic)
    assert message == f"alerts[0]: invalid label set: invalid name {json.dumps(name)}"
    annotated = {"labels": {"alertname": "A"}, "annotations": {name: "v"}}
    assert "invalid annotations: invalid name" in error_of(annotated, limits=classic)


@pytest.mark.parametrize("name", ["alertname", "_x", "A_1", "__name__"])
def test_classic_label_names_accept_the_prometheus_charset(name: str) -> None:
    classic = IngestLimits(classic_label_names=True)
    alert = one({"labels": {"alertname": "A", name: "v"}}, limits=classic)
    assert dict(alert.labels)[name] == "v"


def test_annotations_are_optional_and_keep_empty_values() -> None:
    assert one({"labels": {"alertname": "A"}, "annotations": None}).annotations == ()
    kept = one({"labels": {"alertname": "A"}, "annotations": {"note": ""}})
    assert kept.annotations == (("note", ""),)


def test_unknown_keys_are_ignored_like_webhook_payload_fields() -> None:
    alert = one({"labels": {"alertname": "A"}, "status": "firing", "fingerprint": "abc"})
    assert alert.rule == "A"


def test_generator_url_is_optional() -> None:
    assert one({"labels": {"alertname": "A"}, "generatorURL": None}).generator_url == ""
    assert one({"labels": {"alertname": "A"}, "generatorURL": ""}).generator_url == ""


def test_unicode_values_are_kept() -> None:
    alert = one({"labels": {"alertname": "A", "site": "東京 🗼"}})
    assert dict(alert.labels)["site"] == "東京 🗼"


# -- per-alert limits -----------------------------------------------------------------------------


def test_a_huge_label_value_invalidates_only_its_alert() -> None:
    huge = {"labels": {"alertname": "A", "instance": "x" * 1_000_000}}
    alerts, errors = parse({"labels": {"alertname": "ok"}}, huge, {"labels": {"alertname": "ok2"}})
    assert [a.rule for a in alerts] == ["ok", "ok2"]
    assert errors == [
        'alerts[1]: invalid label set: value of "instance" too long (1000000 > 8192 bytes)'
    ]


def test_label_value_limit_counts_utf8_bytes() -> None:
    limits = IngestLimits(max_label_value_bytes=6)
    assert one({"labels": {"alertname": "A", "s": "éééé"[:3]}}, limits=limits)  # 6 bytes
    assert "too long (8 > 6 bytes)" in error_of(
        {"labels": {"alertname": "A", "s": "éééé"}}, limits=limits
    )


@pytest.mark.parametrize(
    ("limits", "alert", "message"),
    [
        (
            IngestLimits(max_labels=2),
            {"labels": {"alertname": "A", "a": "1", "b": "2"}},
            "invalid label set: too many (3 > 2)",
        ),
        (
            IngestLimits(max_label_name_bytes=4),
            {"labels": {"alertname": "A"}},
            'invalid label set: name "alertname" too long (9 > 4 bytes)',
        ),
        (
            IngestLimits(max_annotations=1),
            {"labels": {"alertname": "A"}, "annotations": {"a": "1", "b": "2"}},
            "invalid annotations: too many (2 > 1)",
        ),
        (
            IngestLimits(max_annotation_bytes=10),
            {"labels": {"alertname": "A"}, "annotations": {"summary": "x" * 11}},
            'invalid annotations: value of "summary" too long (11 > 10 bytes)',
        ),
        (
            IngestLimits(max_annotation_bytes=10),
            {"labels": {"alertname": "A"}, "generatorURL": "http://x/123"},
            "generatorURL: too long (12 > 10)",
        ),
    ],
)
def test_per_alert_limits(limits: IngestLimits, alert: dict[str, Any], message: str) -> None:
    assert error_of(alert, limits=limits) == f"alerts[0]: {message}"


def test_long_names_are_cut_in_error_messages() -> None:
    name = "n" * 10_000
    message = error_of({"labels": {"alertname": "A", name: "v"}})
    assert len(message) < 200
    assert message.endswith("too long (10000 > 256 bytes)")


def test_errors_name_each_invalid_alert_by_index_and_valid_ones_survive() -> None:
    alerts, errors = parse(
        {"labels": {"alertname": "A"}},
        {"labels": {"instance": "x"}},
        {"labels": {"alertname": "B"}},
        7,
        {"labels": {"alertname": "C"}, "startsAt": "never"},
    )
    assert [a.rule for a in alerts] == ["A", "B"]
    assert errors == [
        "alerts[1]: invalid label set: alertname missing",
        "alerts[3]: must be a JSON object",
        'alerts[4]: startsAt: not an RFC 3339 time: "never"',
    ]


def test_describe_errors_joins_like_alertmanager_and_caps_the_list() -> None:
    assert describe_errors(["a", "b"]) == "a; b"
    many = [f"alerts[{i}]: bad" for i in range(MAX_REPORTED_ERRORS + 5)]
    text = describe_errors(many)
    assert text.count("bad") == MAX_REPORTED_ERRORS
    assert text.endswith("; and 5 more invalid alerts")


# -- the whole body ----------------------------------------------------------------------------


def test_an_empty_array_is_nothing() -> None:
    assert parse_postable_alerts(b"[]", NOW, LIMITS) == ([], [])
    assert parse_postable_alerts(b" \r\n\t[ \n]\n", NOW, LIMITS) == ([], [])


def test_whitespace_between_elements_is_fine() -> None:
    raw = b'\n[ {"labels": {"alertname": "A"}} ,\n\t{"labels": {"alertname": "B"}} ]\n'
    alerts, errors = parse_postable_alerts(raw, NOW, LIMITS)
    assert [a.rule for a in alerts] == ["A", "B"]
    assert errors == []


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "must be a JSON array"),
        (b"not json", "must be a JSON array"),
        (b'{"labels": {"alertname": "A"}}', "must be a JSON array"),
        (b'"[]"', "must be a JSON array"),
        (b"null", "must be a JSON array"),
        (b"[", "not valid JSON"),
        (b'[{"labels": {"alertname": "A"}}', "not valid JSON: expected , or ]"),
        (b'[{"labels": {"alertname": "A"}},]', "not valid JSON"),
        (b'[{"labels": {"alertname": "A"}}] []', "extra data"),
        (b"[1 2]", "expected , or ]"),
        (b"\xef\xbb\xbf[]", "must be a JSON array"),  # a BOM is no JSON (Go refuses it too)
        (b'[{"labels": {"alertname": "\xff"}}]', "not valid UTF-8 (byte 27)"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'[{"labels": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_001 + b"]", "nested too deeply"),
        (b"[" + b"9" * 5000 + b"]", "not valid JSON"),  # int() digit limit
    ],
)
def test_bodies_that_are_no_json_array_are_refused_whole(raw: bytes, message: str) -> None:
    error = refused(raw)
    assert error.status == 400
    assert message in error.message


def test_a_body_over_the_size_cap_is_413() -> None:
    limits = IngestLimits(max_body_bytes=100)
    error = refused(b"[" + b" " * 99 + b"]", limits)
    assert error.status == 413
    assert error.message == "request body larger than 100 bytes"
    assert parse_postable_alerts(b"[" + b" " * 98 + b"]", NOW, limits) == ([], [])


def test_more_alerts_than_the_limit_refuse_the_request() -> None:
    raw = b"[" + b",".join([b'{"labels":{"alertname":"a"}}'] * 100_000) + b"]"
    error = refused(raw)
    assert error.status == 400
    assert error.message == "too many alerts in one request (more than 10000)"


def test_exactly_the_alert_limit_is_fine() -> None:
    limits = IngestLimits(max_alerts=3)
    alerts, _ = parse(*[{"labels": {"alertname": "a"}}] * 3, limits=limits)
    assert len(alerts) == 3
    assert refused(body(*[{"labels": {"alertname": "a"}}] * 4), limits).status == 400


def test_the_count_limit_holds_even_when_every_alert_is_invalid() -> None:
    raw = b"[" + b",".join([b"0"] * 11) + b"]"
    error = refused(raw, IngestLimits(max_alerts=10))
    assert "too many alerts" in error.message


# -- severity and summary ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "level"),
    [
        *[(s, Level.CRITICAL) for s in ("critical", "page", "emergency", "disaster", "fatal")],
        *[(s, Level.MAJOR) for s in ("major", "error", "high", "average")],
        *[(s, Level.MINOR) for s in ("minor", "warning", "warn", "low", "info", "informational")],
        ("CRITICAL", Level.CRITICAL),
        (" Warning ", Level.MINOR),
    ],
)
def test_severity_maps_to_a_level(severity: str, level: Level) -> None:
    assert level_from_severity(severity) is level
    assert one({"labels": {"alertname": "A", "severity": severity}}).level is level


@pytest.mark.parametrize("labels", [{"alertname": "A"}, {"alertname": "A", "severity": "p9"}])
def test_missing_or_unknown_severity_takes_the_default(labels: dict[str, str]) -> None:
    assert one({"labels": labels}).level is Level.MAJOR
    assert one({"labels": labels}, default_level=Level.MINOR).level is Level.MINOR
    assert level_from_severity(labels.get("severity"), Level.CRITICAL) is Level.CRITICAL


@pytest.mark.parametrize(
    ("annotations", "labels", "summary"),
    [
        ({"summary": "S", "description": "D", "message": "M"}, {}, "S"),
        ({"description": "D", "message": "M"}, {}, "D"),
        ({"message": "M"}, {}, "M"),
        ({"summary": "  ", "description": "D"}, {}, "D"),
        ({"summary": "line one\n  line two\t!"}, {}, "line one line two !"),
        ({}, {"instance": "sw1:161"}, "A on sw1:161"),
        ({"runbook_url": "http://x"}, {}, "A"),
    ],
)
def test_summary_from_annotations_else_name_and_instance(
    annotations: dict[str, str], labels: dict[str, str], summary: str
) -> None:
    assert summary_for("A", {"alertname": "A", **labels}, annotations) == summary


def test_summary_is_capped() -> None:
    alert = one({"labels": {"alertname": "A"}, "annotations": {"summary": "x" * 10_000}})
    assert alert.summary == "x" * MAX_SUMMARY_CHARS


# -- fuzz --------------------------------------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)
_alert_like = st.fixed_dictionaries(
    {},
    optional={
        "labels": st.dictionaries(
            st.sampled_from(["alertname", "severity", "instance", "", "1x"]),
            st.text(max_size=5) | st.integers(),
            max_size=4,
        )
        | _json_values,
        "annotations": st.dictionaries(st.text(max_size=5), st.text(max_size=5)) | _json_values,
        "startsAt": st.sampled_from([ZERO, "2026-08-20T10:00:00Z", "", "x"]) | _json_values,
        "endsAt": st.sampled_from([ZERO, "2026-08-20T09:00:00Z", "2027-01-01T00:00:00Z"])
        | _json_values,
        "generatorURL": st.text(max_size=10) | _json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_alert_like | _json_values, max_size=6))
def test_any_json_array_yields_one_verdict_per_element(items: list[Any]) -> None:
    alerts, errors = parse_postable_alerts(json.dumps(items).encode(), NOW, LIMITS)
    assert len(alerts) + len(errors) == len(items)
    for alert in alerts:
        assert alert.rule == dict(alert.labels)["alertname"]
        assert alert.starts_at <= alert.ends_at


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_arbitrary_bytes_parse_or_refuse_with_a_4xx(raw: bytes) -> None:
    status = 200
    try:
        alerts, errors = parse_postable_alerts(raw, NOW, LIMITS)
    except IngestError as exc:
        status = exc.status
    else:
        assert len(alerts) + len(errors) <= raw.count(b",") + 1
    assert status in (200, 400)
