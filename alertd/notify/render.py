"""Message rendering: one ``Notification`` -> subject, text body, HTML body, log line.

Channels call these pure functions; nothing here does I/O. Bodies go through jinja2's
``SandboxedEnvironment`` (HTML with autoescape on, text with it off) from templates compiled
once at import. Label values, summaries and every other incident field are *data*: they are
passed to the templates as variables and never compiled or rendered as templates themselves,
so a label value ``{{ 7*7 }}`` shows up literally and ``<script>`` is escaped in HTML.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, field_validator

from alertd.ingest.external import EXTERNAL_METRIC
from alertd.model import AlertEntry, Incident, IncidentState, Level, Notification, Transition

log = logging.getLogger(__name__)

SUBJECT_MAX = 200
SHORT_MAX = 1000  # the short form (SMS, IM) before a channel cuts it to its provider's limit
DIGEST_MAX = 50  # held notifications listed in a digest body; the rest are counted
DIGEST_SHORT_MAX = 10  # held notifications listed in a digest's short form (SMS, IM)
ALERTS_MAX = 20  # member alerts of a grouped incident listed in a body; the rest are counted

_TEXT_ENV = SandboxedEnvironment(
    autoescape=False,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_HTML_ENV = SandboxedEnvironment(
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)

_TEXT_BODY = _TEXT_ENV.from_string(
    """\
{{ headline }}

Incident:     #{{ id }}
Priority:     {{ priority }}
State:        {{ state }}
Level:        {{ level }}
Rule:         {{ rule }}
Metric:       {{ metric }}
{% if shows_value %}
Value:        {{ value }}
{% endif %}
Summary:      {{ summary }}
{% if annotations %}
Annotations:
{% for name, text in annotations %}
  {{ name }}: {{ text }}
{% endfor %}
{% endif %}
{% if source %}
Source:       {{ source }}
{% endif %}
Labels:
{% for name, value in labels %}
  {{ name }}={{ value }}
{% else %}
  (none)
{% endfor %}
Opened at:    {{ opened_at }}
{% if acknowledged_by or acknowledged_at %}
Acknowledged: by {{ acknowledged_by or "unknown" }} at {{ acknowledged_at or "unknown" }}
{% endif %}
{% if resolved_at %}
Resolved at:  {{ resolved_at }}{% if resolved_by %} by hand, by {{ resolved_by }}{% endif %}

{% endif %}
{% if url %}
Incident page: {{ url }}
{% endif %}
{% if ack_url %}
Acknowledge:   {{ ack_url }}
{% endif %}
{% if alerts %}
Alerts ({{ alerts_total }}):
{% for line in alerts %}
  {{ line }}
{% endfor %}
{% if alerts_more %}
  and {{ alerts_more }} more
{% endif %}
{% endif %}
{% if members %}
What the alerts say:
{% for member in members %}
  {{ member.name }}
{% for name, text in member.annotations %}
    {{ name }}: {{ text }}
{% endfor %}
{% if member.source %}
    Source: {{ member.source }}
{% endif %}
{% endfor %}
{% endif %}
{% if digest %}
Held back by the rate limit ({{ digest_total }}; the latest is shown above):
{% for line in digest %}
  {{ line }}
{% endfor %}
{% if digest_more %}
  and {{ digest_more }} more
{% endif %}
{% endif %}
"""
)

_HTML_BODY = _HTML_ENV.from_string(
    """\
<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>{{ headline }}</title>
</head>
<body>
<h1>{{ headline }}</h1>
<table>
<tr><th align="left">Incident</th><td>#{{ id }}</td></tr>
<tr><th align="left">Priority</th><td>{{ priority }}</td></tr>
<tr><th align="left">State</th><td>{{ state }}</td></tr>
<tr><th align="left">Level</th><td>{{ level }}</td></tr>
<tr><th align="left">Rule</th><td>{{ rule }}</td></tr>
<tr><th align="left">Metric</th><td>{{ metric }}</td></tr>
{% if shows_value %}
<tr><th align="left">Value</th><td>{{ value }}</td></tr>
{% endif %}
<tr><th align="left">Summary</th><td>{{ summary }}</td></tr>
{% for name, text in annotations %}
<tr><th align="left">{{ name }}</th><td>{{ text }}</td></tr>
{% endfor %}
{% if source %}
<tr><th align="left">Source</th><td>{% if source.startswith(("http://", "https://")) %}\
<a href="{{ source }}">{{ source }}</a>{% else %}{{ source }}{% endif %}</td></tr>
{% endif %}
<tr><th align="left">Labels</th><td>
{% for name, value in labels %}
{{ name }}={{ value }}{% if not loop.last %}<br>{% endif %}

{% else %}
(none)
{% endfor %}
</td></tr>
<tr><th align="left">Opened at</th><td>{{ opened_at }}</td></tr>
{% if acknowledged_by or acknowledged_at %}
<tr><th align="left">Acknowledged</th><td>by {{ acknowledged_by or "unknown" }} \
at {{ acknowledged_at or "unknown" }}</td></tr>
{% endif %}
{% if resolved_at %}
<tr><th align="left">Resolved at</th><td>{{ resolved_at }}\
{% if resolved_by %} by hand, by {{ resolved_by }}{% endif %}</td></tr>
{% endif %}
</table>
{% if url %}
<p><a href="{{ url }}">Incident page</a></p>
{% endif %}
{% if ack_url %}
<p><a href="{{ ack_url }}">Acknowledge</a> (opens a page with a confirm button)</p>
{% endif %}
{% if alerts %}
<h2>Alerts ({{ alerts_total }})</h2>
<ul>
{% for line in alerts %}
<li>{{ line }}</li>
{% endfor %}
{% if alerts_more %}
<li>and {{ alerts_more }} more</li>
{% endif %}
</ul>
{% endif %}
{% if members %}
<h2>What the alerts say</h2>
{% for member in members %}
<h3>{{ member.name }}</h3>
<table>
{% for name, text in member.annotations %}
<tr><th align="left">{{ name }}</th><td>{{ text }}</td></tr>
{% endfor %}
{% if member.source %}
<tr><th align="left">Source</th><td>{% if member.source.startswith(("http://", "https://")) %}\
<a href="{{ member.source }}">{{ member.source }}</a>{% else %}{{ member.source }}{% endif %}\
</td></tr>
{% endif %}
</table>
{% endfor %}
{% endif %}
{% if digest %}
<h2>Held back by the rate limit ({{ digest_total }})</h2>
<ul>
{% for line in digest %}
<li>{{ line }}</li>
{% endfor %}
{% if digest_more %}
<li>and {{ digest_more }} more</li>
{% endif %}
</ul>
{% endif %}
</body>
</html>
"""
)

_VERBS = {
    Transition.OPENED: "OPENED",
    Transition.LEVEL_CHANGED: "LEVEL CHANGED",
    Transition.RESOLVED: "RESOLVED",
    Transition.REOPENED: "REOPENED",
    Transition.ESCALATED: "ESCALATED",
    Transition.FLAPPING_START: "FLAPPING",
    Transition.FLAPPING_STOP: "STOPPED FLAPPING",
    Transition.REPEAT: "STILL OPEN",
    Transition.GROUP_CHANGED: "UPDATED",
    Transition.TEST: "TEST",
}


class MessageTemplates(BaseModel):
    """A channel's own templates (``template:`` in its config); unset parts use the defaults.

    Each is a Jinja2 template rendered in the sandbox with the same variables as the defaults
    (``id``, ``priority``, ``level``, ``summary``, ``labels``, ``url``, ``ack_url``...). The
    variables are data: a label value is never compiled as a template.
    """

    model_config = ConfigDict(extra="forbid")

    subject: str | None = None
    short: str | None = None  # SMS and IM
    text: str | None = None
    html: str | None = None

    @field_validator("subject", "short", "text", "html")
    @classmethod
    def _compiles(cls, source: str | None, info: Any) -> str | None:
        """Refuse, at load (``check-config``, a reload keeps the last good config), a
        template that does not compile or names a variable there is not: at send time it
        would cost every page its own text. One failing on a sample notification is
        warned about."""
        if source is None:
            return source
        html = info.field_name == "html"
        try:
            template = _compiled(source, html)
        except TemplateSyntaxError as exc:
            msg = f"template syntax error on its line {exc.lineno}: {exc.message}"
            raise ValueError(msg) from None
        env = _HTML_ENV if html else _TEXT_ENV
        unknown = meta.find_undeclared_variables(env.parse(source)) - _variables()
        if unknown:
            raise ValueError(
                f"unknown template variable(s) {', '.join(sorted(unknown))}; "
                f"there are {', '.join(sorted(_variables()))}"
            )
        try:
            template.render(_context(_sample()))
        except Exception as exc:  # any error a page may hit at send time
            # not refused: it may work on real pages (data the sample lacks), and a page it
            # fails for goes out with the default text anyway
            log.warning(
                "template.%s fails on a sample notification (%s): pages it fails for are "
                "sent with the default text",
                info.field_name,
                exc,
            )
        return source


@lru_cache(maxsize=256)
def _compiled(source: str, html: bool) -> Template:
    return (_HTML_ENV if html else _TEXT_ENV).from_string(source)


def _override(
    source: str | None, n: Notification, html: bool = False, markdown: bool = False
) -> str | None:
    """``source`` rendered for ``n``; None (the default text is used) if there is none, or
    if it fails on this notification's data: a page goes out in the default words rather
    than not at all (load-time checks catch what fails on every page)."""
    if source is None:
        return None
    try:
        context = _context(n)
        return _compiled(source, html).render(_inert(context) if markdown else context)
    except Exception as exc:  # TemplateError, or e.g. ZeroDivisionError from {{ 1/0 }}
        log.warning(
            "incident #%d: channel %s: its template failed (%s); sent with the default text",
            n.incident.id,
            n.channel,
            exc,
        )
        return None


@lru_cache(maxsize=1)
def _sample() -> Notification:
    """A notification with every field set, for checking templates at load."""
    incident = Incident(
        id=42,
        fingerprint="0123456789abcdef",
        rule="cpu_high",
        metric="cpu_percent",
        labels=(("instance", "web1"), ("group", "web")),
        level=Level.MAJOR,
        priority="P2",
        state=IncidentState.ACKNOWLEDGED,
        summary="CPU 92% on web1",
        value=92.0,
        opened_at=1_700_000_000.0,
        updated_at=1_700_000_060.0,
        acknowledged_at=1_700_000_060.0,
        acknowledged_by="wang",
    )
    pushed = AlertEntry(  # as a pushed alert's: what a template may read from annotations
        "firing",
        incident.labels,
        incident.opened_at,
        annotations=(
            ("summary", incident.summary),
            ("description", "CPU has been over 90% for 5 minutes"),
            ("runbook_url", "https://runbooks.example/cpu"),
        ),
        generator_url="http://prometheus.example:9090/graph?g0.expr=cpu",
    )
    return Notification(
        incident,
        Transition.OPENED,
        "sample",
        recipients=("ops@example.com",),
        alerts=("firing major cpu_high instance=web1",),
        entries=(pushed,),
        url="https://alertd.example/incidents/42",
        ack_url="https://alertd.example/ack/42",
    )


@lru_cache(maxsize=1)
def _variables() -> frozenset[str]:
    """The variables every template has."""
    return frozenset(_context(_sample()))


def subject(
    n: Notification, templates: MessageTemplates | None = None, markdown: bool = False
) -> str:
    """Return a one-line subject such as ``[P2] OPENED #12 major: Memory used 87.5% on web1``.

    The level is omitted for RESOLVED; LEVEL_CHANGED shows ``major→critical``. The result has
    no control characters and is cut to ``SUBJECT_MAX`` characters with an ellipsis.
    """
    if templates is not None and templates.subject is not None:
        text = _override(templates.subject, n, markdown=markdown)
        if text is not None:
            if n.digest and not _lists_digest(templates.subject):
                text = f"[digest of {len(n.digest)}] {text}"
            return _cut(_single_line(text), SUBJECT_MAX)
    return inert(_default_subject(n)) if markdown else _default_subject(n)


def _default_subject(n: Notification) -> str:
    inc = n.incident
    verb = _VERBS[n.transition]
    head = f"[{inc.priority}] {verb} #{inc.id}"
    if n.transition is Transition.LEVEL_CHANGED and n.previous_level is not None:
        head += f" {n.previous_level.label}→{inc.level.label}"
    elif n.transition is not Transition.RESOLVED:
        head += f" {inc.level.label}"
    elif inc.resolved_by:  # closed by hand, not recovered: its source may still fail
        head += f" by hand ({_single_line(inc.resolved_by)})"
    text = f"{head}: {_single_line(inc.summary)}"
    if n.digest:  # a list, not one page (user test: it read as #1000's page alone)
        more = f" and {len(n.digest) - 1} more" if len(n.digest) > 1 else ""
        text = f"{_digest_head(n)} {_single_line(n.digest[0])}{more}"
    return _cut(text, SUBJECT_MAX)


def _digest_head(n: Notification) -> str:
    return f"[digest of {len(n.digest)}] held by a rate limit:"


def digest_list(n: Notification, limit: int = DIGEST_SHORT_MAX, counted: bool = True) -> str:
    """The digest's head and its first ``limit`` incidents, one a line, then (``counted``)
    ``digest_rest``."""
    shown = n.digest[:limit]
    text = _digest_head(n) + "".join(f"\n{_single_line(line)}" for line in shown)
    rest = digest_rest(n, limit) if counted else ""
    return f"{text}\n{rest}" if rest else text


def digest_rest(n: Notification, shown: int) -> str:
    """``... and 7 more`` for a digest of which ``shown`` are listed ("" if all are)."""
    more = len(n.digest) - min(shown, len(n.digest))
    return f"... and {more} more" if more else ""


_DIGEST_VARIABLES = frozenset({"digest", "digest_total", "digest_more"})


@lru_cache(maxsize=256)
def _lists_digest(source: str | None) -> bool:
    """Whether a channel's template says itself what a digest stands for: it reads one of
    the digest variables (the word in its text does not count)."""
    if source is None:
        return False
    return bool(_DIGEST_VARIABLES & meta.find_undeclared_variables(_TEXT_ENV.parse(source)))


def text_body(n: Notification, templates: MessageTemplates | None = None) -> str:
    """Return the plain-text body: every incident field, labels sorted one per line."""
    if templates is not None and (text := _override(templates.text, n)) is not None:
        if n.digest and not _lists_digest(templates.text):
            text += "\n\n" + digest_list(n, limit=len(n.digest))
        return text
    return _TEXT_BODY.render(_context(n))


def html_body(n: Notification, templates: MessageTemplates | None = None) -> str:
    """Return the body as an HTML document with a table; every value is escaped."""
    if templates is not None and (html := _override(templates.html, n, html=True)) is not None:
        return html
    return _HTML_BODY.render(_context(n))


def short_text(
    n: Notification, templates: MessageTemplates | None = None, markdown: bool = False
) -> str:
    """Return the short form for SMS and IM: one paragraph with the incident id, priority,
    level and summary, then the link if there is one, e.g.
    ``[P1] OPENED #42 critical: CPU 92% on sw-core-01 https://alertd.example/incidents/42``.

    A digest says how many it stands for and lists the first of them, one a line. At most
    ``SHORT_MAX`` characters; each channel cuts further to its provider's limit
    (``truncate``/``truncate_utf8``).

    ``markdown``: the channel renders it as markdown, so what comes from the data (labels,
    annotations, summaries) is made ``inert``; a channel's own template keeps its markup.
    """
    source = templates.short if templates is not None else None
    if (short := _override(source, n, markdown=markdown)) is not None:
        if n.digest and not _lists_digest(source):
            # the channel's own words first (a DingTalk keyword survives any cut), then what
            # the digest stands for: it went out as one incident's page (verification finding)
            listed = digest_list(n)
            short = f"{short}\n{inert(listed) if markdown else listed}"
        return _cut(short, SHORT_MAX)
    if n.digest:  # which incidents it stands for, one a line (cut to fit the channel)
        text = digest_list(n)
    else:
        text = _default_subject(n)
        if n.alerts:
            text += f" ({n.alert_count} alerts)"
        if n.url:
            text += f" {n.url}"
    return _cut(inert(text) if markdown else text, SHORT_MAX)


# what makes markdown of plain data: a link or an image (``[text](url)``), and a WeCom
# mention (``<@userid>``); a zero-width space keeps the text as it reads and breaks the syntax
_MARKUP = (("](", "]\u200b("), ("<@", "<\u200b@"))


def inert(text: str) -> str:
    """``text`` that a markdown channel shows as written: a label value ``[click](http://x)``
    must not become a link in an ops group (user test), nor ``<@all>`` mention everyone."""
    for markup, broken in _MARKUP:
        if markup in text:
            text = text.replace(markup, broken)
    return text


def _inert(context: dict[str, Any]) -> dict[str, Any]:
    """The template variables with every string from the data made ``inert``."""

    def each(value: Any) -> Any:
        if isinstance(value, str):
            return inert(value)
        if isinstance(value, Pairs):
            return Pairs((inert(k), inert(v)) for k, v in value)
        if isinstance(value, list):
            return [each(item) for item in value]
        if isinstance(value, dict):
            return {k: each(v) for k, v in value.items()}
        return value

    return {name: each(value) for name, value in context.items()}


def truncate(text: str, limit: int) -> str:
    """Return ``text`` cut to ``limit`` characters, ending with an ellipsis if it was cut."""
    return _cut(text, limit)


def truncate_utf8(text: str, limit: int) -> str:
    """Return ``text`` cut so its UTF-8 encoding fits ``limit`` bytes (WeCom counts bytes),
    on a character boundary, ending with an ellipsis if it was cut."""
    if len(text.encode()) <= limit:
        return text
    room = limit - len("…".encode())
    cut = text.encode()[: max(0, room)].decode(errors="ignore")
    return cut.rstrip() + "…"


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 1)].rstrip() + "…"


def one_line(n: Notification) -> str:
    """Return a compact single-line logfmt-like form for the log channel.

    Example: ``incident #12 opened P2 major rule=mem instance=web1 value=87.5 summary="..."``.
    Values with spaces, quotes, ``=`` or control characters are quoted and escaped, so the
    result never spans more than one line.
    """
    inc = n.incident
    parts = [
        f"incident #{inc.id}",
        n.transition.value,
        _quote_if_needed(inc.priority),
        inc.level.label,
        f"rule={_quote_if_needed(inc.rule)}",
    ]
    parts.extend(
        f"{_quote_if_needed(name)}={_quote_if_needed(value)}" for name, value in sorted(inc.labels)
    )
    if shows_value(inc):
        parts.append(f"value={format_value(inc.value)}")
    if n.alerts:
        parts.append(f"alerts={n.alert_count}")
    if n.digest:
        parts.append(f"digest_of={len(n.digest)}")
    if inc.acknowledged_by:
        parts.append(f"acknowledged_by={_quote_if_needed(inc.acknowledged_by)}")
    if inc.resolved_by:
        parts.append(f"resolved_by={_quote_if_needed(inc.resolved_by)}")
    parts.append(f"summary={_quote(inc.summary)}")
    return " ".join(parts)


def format_value(value: float | None) -> str:
    """Return a metric value for humans: ``87.5``, ``42``, ``unknown`` for ``None``."""
    if value is None:
        return "unknown"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return format(value, ".6g")


def format_ts(ts: float | None) -> str | None:
    """Return a Unix timestamp as UTC ISO-8601 (``2024-05-01T12:00:00Z``), ``None`` as is."""
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))  # 2.4x datetime's isoformat


def shows_value(inc: Incident) -> bool:
    """Whether a message shows the incident's value: a pushed alert has none by nature (no
    "Value: unknown"); a rule's missing value is worth saying."""
    return inc.value is not None or inc.metric != EXTERNAL_METRIC


class Pairs(dict[str, str]):
    """Labels or annotations for a template: ``{% for name, value in labels %}`` walks the
    pairs in order, and ``{{ labels.instance }}`` reads one, as in a rule's summary."""

    def __iter__(self) -> Iterator[tuple[str, str]]:  # type: ignore[override]
        return iter(self.items())


def _context(n: Notification) -> dict[str, Any]:
    """Return the template variables; free text is made single-line so it cannot fake a field."""
    inc = n.incident
    # a pushed alert's own annotations (description, runbook_url, ...) and its source
    (entry,) = n.entries if len(n.entries) == 1 and not n.digest else (None,)
    return {
        "headline": subject(n),
        "annotations": Pairs(
            (_single_line(k), _single_line(v))
            for k, v in (entry.annotations if entry else ())
            if k != "summary"
        ),
        "source": entry.generator_url if entry else "",
        "id": inc.id,
        "priority": inc.priority,
        "state": inc.state.value,
        "level": inc.level.label,
        "rule": inc.rule,
        "metric": inc.metric,
        "value": format_value(inc.value),
        "shows_value": shows_value(inc),
        "summary": _single_line(inc.summary),
        "labels": Pairs((_single_line(k), _single_line(v)) for k, v in sorted(inc.labels)),
        "opened_at": format_ts(inc.opened_at),
        "acknowledged_by": inc.acknowledged_by,
        "acknowledged_at": format_ts(inc.acknowledged_at),
        "resolved_at": format_ts(inc.resolved_at),
        "resolved_by": inc.resolved_by,
        "alerts": [_single_line(line) for line in n.alerts[:ALERTS_MAX]],
        "alerts_total": n.alert_count,
        "alerts_more": max(0, n.alert_count - ALERTS_MAX),
        "members": [] if entry or n.digest else _members(n.entries),
        "digest": [_single_line(line) for line in n.digest[:DIGEST_MAX]],
        "digest_total": len(n.digest),
        "digest_more": max(0, len(n.digest) - DIGEST_MAX),
        "transition": n.transition.value,
        "url": n.url,
        "ack_url": n.ack_url,
    }


def _members(entries: Sequence[AlertEntry]) -> list[dict[str, Any]]:
    """A grouped incident's member alerts that say more than their labels (annotations such
    as a runbook, a source), for its mail (user test: the runbook links were lost exactly
    when many things failed at once)."""
    out: list[dict[str, Any]] = []
    for e in entries:
        notes = [(_single_line(k), _single_line(v)) for k, v in e.annotations]
        if (notes or e.generator_url) and len(out) < ALERTS_MAX:
            name = " ".join(f"{_single_line(k)}={_single_line(v)}" for k, v in e.labels)
            out.append({"name": name, "annotations": notes, "source": e.generator_url})
    return out


# Unicode category Cc is exactly U+0000-U+001F and U+007F-U+009F: a table, not a lookup per
# character (this runs for every message sent)
_CONTROL_TO_SPACE = str.maketrans(dict.fromkeys((*range(0x20), *range(0x7F, 0xA0)), " "))


def _single_line(text: str) -> str:
    """Collapse all whitespace (CR, LF, U+2028, ...) to single spaces; drop control chars."""
    return " ".join(text.translate(_CONTROL_TO_SPACE).split())


# Characters str.splitlines() breaks on that json.dumps(ensure_ascii=False) leaves as is.
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).translate(_LINE_BREAKS)


def _quote_if_needed(text: str) -> str:
    if text and all(c.isprintable() and not c.isspace() and c not in '"=\\' for c in text):
        return text
    return _quote(text)
