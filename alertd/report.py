"""``alertd report``: a KpiReport as an aligned text table, JSON or CSV.

Formatting only; the numbers come from ``incidents/kpi.py``. JSON and CSV carry durations in
seconds (unrounded) for spreadsheets and scripts; the table shows them the way people read
them (``12m30s``, ``1h05m``).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

from alertd.incidents.kpi import GroupKpis, KpiReport

Format = Literal["table", "json", "csv"]
FORMATS: tuple[Format, ...] = ("table", "json", "csv")

_GROUP_FIELDS = tuple(f.name for f in dataclasses.fields(GroupKpis) if f.name != "key")
_CSV_HEADER = ("section", "key", *_GROUP_FIELDS)
_TABLE_HEADER = (
    "INCIDENTS",
    "PAGES",
    "ACKED",
    "MTTA",
    "MTTA p50",
    "RESOLVED",
    "MTTR",
    "MTTR p50",
    "RESPOND BREACHES",
    "RESOLVE BREACHES",
    "ESCALATED",
    "TIER-1 RATE",
)


def render(report: KpiReport, fmt: Format) -> str:
    """Render ``report`` in ``fmt``."""
    if fmt == "json":
        return render_json(report)
    if fmt == "csv":
        return render_csv(report)
    return render_table(report)


def render_json(report: KpiReport) -> str:
    """Render ``report`` as a JSON object: durations in seconds, rates as fractions."""
    return json.dumps(dataclasses.asdict(report), indent=2)


def render_csv(report: KpiReport) -> str:
    """Render ``report`` as CSV with one header row; ``section`` is total, priority, team or
    rule (rule rows fill only incidents and pages)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_CSV_HEADER)
    sections = (
        ("total", (report.total,)),
        ("priority", report.by_priority),
        ("team", report.by_team),
    )
    for section, groups in sections:
        for g in groups:
            writer.writerow([section, g.key, *(_csv_value(getattr(g, f)) for f in _GROUP_FIELDS)])
    for r in report.noise:
        row = dict.fromkeys(_GROUP_FIELDS, "") | {"incidents": r.incidents, "pages": r.pages}
        writer.writerow(["rule", r.rule, *row.values()])
    return out.getvalue().rstrip("\n")  # like the other formats: the caller ends the line


def render_table(report: KpiReport) -> str:
    """Render ``report`` as aligned text tables: by priority, by team, then noise per rule."""
    span = _dur(report.now - report.since)
    lines = [f"incidents opened {_when(report.since)} .. {_when(report.now)} ({span})", ""]
    lines += _table(("PRIORITY", *_TABLE_HEADER), [*report.by_priority, report.total])
    lines.append("")
    lines += _table(("TEAM", *_TABLE_HEADER), report.by_team)
    lines.append("")
    noise = [(r.rule, str(r.incidents), str(r.pages)) for r in report.noise]
    lines += _align(("RULE", "INCIDENTS", "PAGES"), noise)
    return "\n".join(lines)


def _table(header: Sequence[str], groups: Sequence[GroupKpis]) -> list[str]:
    rows = [
        (
            g.key,
            str(g.incidents),
            str(g.pages),
            str(g.acknowledged),
            _dur(g.mtta),
            _dur(g.mtta_median),
            str(g.resolved),
            _dur(g.mttr),
            _dur(g.mttr_median),
            _opt(g.respond_breaches),
            _opt(g.resolve_breaches),
            str(g.escalated),
            "-" if g.tier1_rate is None else f"{g.tier1_rate:.1%}",
        )
        for g in groups
    ]
    return _align(header, rows)


def _align(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-align the first column, right-align the others (they are numbers)."""
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    out = []
    for r in (header, *rows):
        cells = [r[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)
        ]
        out.append("  ".join(cells).rstrip())
    if not rows:
        out.append("(none)")
    return out


def _dur(seconds: float | None) -> str:
    """Render a duration compactly: ``45s``, ``12m30s``, ``1h05m``, ``2d03h``."""
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m" + (f"{s % 60:02d}s" if s % 60 else "")
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d" + (f"{s % 86400 // 3600:02d}h" if s % 86400 // 3600 else "")


def _opt(value: int | None) -> str:
    return "-" if value is None else str(value)


def _csv_value(value: object) -> object:
    return "" if value is None else value


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
