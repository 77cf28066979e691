"""Unit tests of ``alertd.notify.render``: subjects, bodies, escaping, the log line."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from alertd.ingest.external import EXTERNAL_METRIC
from alertd.model import (
    AlertEntry,
    Incident,
    IncidentState,
    Level,
    Notification,
    Transition,
    make_labels,
)
from alertd.notify import render

OPENED_AT = 1714564800.0  # 2024-05-01T12:00:00Z


def make_notification(
    transition: Transition = Transition.OPENED,
    *,
    labels: Mapping[str, str] | None = None,
    summary: str = "Memory used 87.5% on web1",
    **incident_fields: Any,
) -> Notification:
    incident = Incident(
        id=12,
        fingerprint="0123456789abcdef",
        rule="mem",
        metric="mem.used_percent",
        labels=make_labels(labels if labels is not None else {"instance": "web1", "job": "host"}),
        level=Level.MAJOR,
        priority="P2",
        state=IncidentState.OPEN,
        summary=summary,
        value=87.5,
        opened_at=OPENED_AT,
        updated_at=OPENED_AT,
    )
    incident = dataclasses.replace(incident, **incident_fields)
    return Notification(incident=incident, transition=transition, channel="ops-mail")


@pytest.mark.parametrize(
    ("transition", "fields", "expected"),
    [
        (Transition.OPENED, {}, "[P2] OPENED #12 major: Memory used 87.5% on web1"),
        (
            Transition.LEVEL_CHANGED,
            {"level": Level.CRITICAL, "priority": "P1"},
            "[P1] LEVEL CHANGED #12 critical: Memory used 87.5% on web1",
        ),
        (
            Transition.RESOLVED,
            {"state": IncidentState.RESOLVED, "resolved_at": OPENED_AT + 60},
            "[P2] RESOLVED #12: Memory used 87.5% on web1",
        ),
        (Transition.TEST, {}, "[P2] TEST #12 major: Memory used 87.5% on web1"),
    ],
)
def test_subject_per_transition(
    transition: Transition, fields: dict[str, Any], expected: str
) -> None:
    assert render.subject(make_notification(transition, **fields)) == expected


def test_subject_is_one_line_and_bounded() -> None:
    n = make_notification(summary="line one\r\nline two\u2028three\x00" + "x" * 500)
    subject = render.subject(n)
    assert subject.startswith("[P2] OPENED #12 major: line one line two three")
    assert len(subject.splitlines()) == 1
    assert "\x00" not in subject
    assert len(subject) <= render.SUBJECT_MAX
    assert subject.endswith("…")


def test_html_escapes_label_value_and_summary() -> None:
    n = make_notification(
        labels={"instance": "<script>alert(1)</script>"}, summary="disk <script> & more"
    )
    html = render.html_body(n)
    assert "<script>" not in html
    assert "instance=&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "disk &lt;script&gt; &amp; more" in html
    assert html.startswith("<!DOCTYPE html>")
    assert "<table>" in html


def test_text_body_does_not_escape() -> None:
    n = make_notification(labels={"instance": "<b>web1</b>"})
    assert "instance=<b>web1</b>" in render.text_body(n)


@pytest.mark.parametrize("body", [render.text_body, render.html_body, render.one_line])
def test_label_value_is_data_not_template(body: Callable[[Notification], str]) -> None:
    n = make_notification(
        labels={"instance": "{{ 7*7 }}", "job": "{% for x in range(3) %}x{% endfor %}"},
        summary="{{ 6*7 }}",
    )
    out = body(n)
    assert "{{ 7*7 }}" in out
    assert "{% for x in range(3) %}x{% endfor %}" in out
    assert "{{ 6*7 }}" in out
    assert "49" not in out
    assert "42" not in out


def test_text_body_has_every_field() -> None:
    n = make_notification(
        Transition.RESOLVED,
        labels={"job": "host", "instance": "web1", "dc": "ams"},
        state=IncidentState.RESOLVED,
        acknowledged_at=OPENED_AT + 30,
        acknowledged_by="alice",
        resolved_at=OPENED_AT + 60,
    )
    text = render.text_body(n)
    for expected in [
        "#12",
        "P2",
        "resolved",
        "major",
        "mem.used_percent",
        "87.5",
        "Memory used 87.5% on web1",
        "Opened at:    2024-05-01T12:00:00Z",
        "by alice at 2024-05-01T12:00:30Z",
        "Resolved at:  2024-05-01T12:01:00Z",
    ]:
        assert expected in text
    label_lines = [line.strip() for line in text.splitlines() if line.startswith("  ")]
    assert label_lines == ["dc=ams", "instance=web1", "job=host"]


def test_text_body_omits_ack_and_resolve_when_absent() -> None:
    text = render.text_body(make_notification())
    assert "Acknowledged" not in text
    assert "Resolved at" not in text


def test_label_value_cannot_fake_a_field_line() -> None:
    text = render.text_body(make_notification(labels={"x": "a\nResolved at:  never"}))
    assert not any(line.startswith("Resolved at") for line in text.splitlines())


def test_one_line_format() -> None:
    line = render.one_line(make_notification())
    assert line == (
        "incident #12 opened P2 major rule=mem instance=web1 job=host value=87.5"
        ' summary="Memory used 87.5% on web1"'
    )
    n = make_notification()
    pushed = dataclasses.replace(
        n, incident=dataclasses.replace(n.incident, value=None, metric=EXTERNAL_METRIC)
    )
    assert "value=" not in render.one_line(pushed)  # a pushed alert has none: not "unknown"
    missing = dataclasses.replace(n, incident=dataclasses.replace(n.incident, value=None))
    assert "value=unknown" in render.one_line(missing)  # a rule's missing value is news


def test_one_line_stays_one_line() -> None:
    n = make_notification(
        labels={"instance": "web 1\nfake", "job": 'a"b'},
        summary='first\nsecond\r\nthird\u2028fourth\x85 "quoted"',
    )
    line = render.one_line(n)
    assert len(line.splitlines()) == 1
    assert 'instance="web 1\\nfake"' in line
    assert 'job="a\\"b"' in line
    assert 'summary="first\\nsecond\\r\\nthird\\u2028fourth\\u0085 \\"quoted\\""' in line


@pytest.mark.parametrize(
    ("value", "expected"),
    [(87.5, "87.5"), (42.0, "42"), (None, "unknown"), (0.000123456789, "0.000123457")],
)
def test_format_value(value: float | None, expected: str) -> None:
    assert render.format_value(value) == expected


def test_level_changed_subject_names_both_levels() -> None:
    n = dataclasses.replace(
        make_notification(Transition.LEVEL_CHANGED, level=Level.CRITICAL, priority="P1"),
        previous_level=Level.MAJOR,
    )
    assert render.subject(n) == "[P1] LEVEL CHANGED #12 major→critical: Memory used 87.5% on web1"


def test_a_template_reads_one_label_by_name_and_still_walks_them_all() -> None:
    # verification finding: labels were a list of pairs, so {{ labels.instance }} (as in a
    # rule's summary) failed on every page and only a warning said so
    templates = render.MessageTemplates(
        short="{{ labels.instance }}: {{ summary }}",
        text="{% for name, value in labels %}{{ name }}={{ value }};{% endfor %}",
    )
    n = make_notification()
    assert render.short_text(n, templates) == "web1: Memory used 87.5% on web1"
    assert render.text_body(n, templates) == "instance=web1;job=host;"


def test_a_channels_own_template_still_says_what_a_digest_stands_for() -> None:
    # verification finding: with template.short set (the usual way to carry a DingTalk
    # keyword), a digest of 10 went out as the newest incident's page alone
    lines = tuple(f"#{i} [P2] opened major: disk {i} full" for i in range(21, 31))
    digest = dataclasses.replace(make_notification(), digest=lines)
    own = render.MessageTemplates(
        subject="ALERTKW {{ summary }}", short="ALERTKW [{{ priority }}] {{ summary }} (#{{ id }})"
    )
    short = render.short_text(digest, own).splitlines()
    assert short[:3] == [
        "ALERTKW [P2] Memory used 87.5% on web1 (#12)",  # its keyword first: it survives a cut
        "[digest of 10] held by a rate limit:",
        "#21 [P2] opened major: disk 21 full",
    ]
    assert render.subject(digest, own) == "[digest of 10] ALERTKW Memory used 87.5% on web1"
    text = render.text_body(digest, render.MessageTemplates(text="ALERTKW {{ summary }}"))
    assert text.splitlines()[2:4] == [
        "[digest of 10] held by a rate limit:",
        "#21 [P2] opened major: disk 21 full",
    ]
    # a template that lists the digest itself is left as it is
    listing = render.MessageTemplates(short="{{ digest_total }}: {{ digest | join(', ') }}")
    assert render.short_text(digest, listing).startswith("10: #21 [P2] opened major")
    # and a plain page is the template alone
    assert render.short_text(make_notification(), own) == (
        "ALERTKW [P2] Memory used 87.5% on web1 (#12)"
    )


def test_a_grouped_mail_says_what_each_member_alert_says() -> None:
    """On-call user test: a group's mail listed its members' labels only, and the runbook
    links and sources the single alert's mail shows were lost."""
    from alertd.model import AlertEntry

    def member(name: str, **annotations: str) -> AlertEntry:
        return AlertEntry(
            "firing",
            make_labels({"alertname": "If2Down", "instance": "sw9", "ifName": name}),
            OPENED_AT,
            annotations=make_labels(annotations),
            generator_url=f"http://prom:9090/graph?g0.expr={name}" if annotations else "",
        )

    entries = (
        member("ge-0/0/1", description="uplink down", runbook_url="https://runbooks/if2"),
        member("ge-0/0/2"),  # says nothing more than its labels: not repeated
        member("ge-0/0/3", description="<b>access</b> port down"),
    )
    n = dataclasses.replace(make_notification(), entries=entries, alerts=("a", "b", "c"))
    text = render.text_body(n)
    assert "What the alerts say:" in text
    assert "  alertname=If2Down ifName=ge-0/0/1 instance=sw9\n" in text
    assert "    runbook_url: https://runbooks/if2\n" in text
    assert "    Source: http://prom:9090/graph?g0.expr=ge-0/0/1\n" in text
    assert "ifName=ge-0/0/2" not in text
    html = render.html_body(n)
    assert '<a href="http://prom:9090/graph?g0.expr=ge-0/0/3">' in html
    assert "&lt;b&gt;access&lt;/b&gt; port down" in html  # data, escaped
    single = dataclasses.replace(make_notification(), entries=entries[:1])
    assert "What the alerts say" not in render.text_body(single)  # its own fields say it
    assert "runbook_url: https://runbooks/if2" in render.text_body(single)
