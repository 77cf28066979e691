"""KPIs from a scripted incident history on a real SQLite file, checked against hand arithmetic.

The history (t0 = T0, "now" = t0 + 24h, window from t0 - 1h; targets P1 15m/4h, P2 30m/8h):

  #  pri rule       team  opened   acked (how)      resolved   escalated       pages
  1  P1  cpu_high   tier1 t0       +10m (cli)       +1h        no              1
  2  P1  cpu_high   tier1 t0       +40m (sms)       +5h        step 2 at 15m   2
  3  P1  disk_full  dba   t0+2h    +15m (email)     +30m       no              1
  4  P2  disk_full  -     t0+1h    never            +20m       no              2
  5  P2  cpu_high   tier1 t0+3h    +20m (im)        +9h        resolve target  3
  6  P2  disk_full  dba   t0+4h    +5m (cli)        open       no              1
  7  P1  cpu_high   tier1 t0+20h   never            open       step 2 at 15m   2
  8  P1  cpu_high   tier1 t0-2d    +1m              +2m        no              5   (outside)

Times in the "acked"/"resolved" columns are from that incident's opening.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from alertd.cli import main
from alertd.config.channels import ChannelsFile, ResponseTarget
from alertd.incidents.kpi import NO_TEAM, GroupKpis, IncidentFacts, KpiReport, compute_kpis
from alertd.incidents.kpi_facts import FactsCache, ack_how, incident_facts
from alertd.model import Incident, IncidentState, Level, fingerprint, make_labels
from alertd.report import render_csv, render_json, render_table
from alertd.state.db import connect
from alertd.state.incidents import EscalationStore, IncidentStore

MIN, HOUR, DAY = 60.0, 3600.0, 86400.0
T0 = 1_800_000_000.0
NOW = T0 + 24 * HOUR
SINCE = T0 - HOUR

CHANNELS: dict[str, Any] = {
    "channels": {"pager": {"type": "log"}, "mail": {"type": "log"}},
    "teams": {
        "tier1": {"channels": ["pager"]},
        "tier2": {"channels": ["mail"]},
        "dba": {"channels": ["mail"]},
    },
    "priorities": {
        "targets": {
            "P1": {"respond_within": "15m", "resolve_within": "4h"},
            "P2": {"respond_within": "30m", "resolve_within": "8h"},
        }
    },
    "routes": [
        {
            "match": {"role": "db"},
            "escalate": [{"notify": ["dba"]}, {"after": "15m", "notify": ["tier2"]}],
        },
        {
            "match": {"role": "web"},
            "escalate": [{"notify": ["tier1"]}, {"after": "15m", "notify": ["tier2"]}],
        },
        # role=lb matches no route: its incidents have no team ("-")
    ],
}


def config(max_age: str = "1h") -> ChannelsFile:
    return ChannelsFile.model_validate({**CHANNELS, "delivery": {"max_age": max_age}})


def scripted(
    store: IncidentStore,
    opened: float,
    rule: str,
    priority: str,
    instance: str,
    role: str,
    *,
    ack: tuple[float, str, str] | None = None,  # (delay, who, how)
    resolved: float | None = None,  # delay
    escalated: str = "",  # "", "step" or "resolve"
    pages: int = 0,
) -> None:
    """Write one incident's history the way the daemon and the CLI would."""
    labels = make_labels({"instance": instance, "role": role})
    level = Level.CRITICAL if priority == "P1" else Level.MAJOR
    with store.transaction():
        incident = store.open(
            Incident(
                id=0,
                fingerprint=fingerprint(rule, labels),
                rule=rule,
                metric="cpu" if rule == "cpu_high" else "disk",
                labels=labels,
                level=level,
                priority=priority,
                state=IncidentState.OPEN,
                summary=f"{rule} on {instance}",
                value=99.0,
                opened_at=opened,
                updated_at=opened,
            )
        )
        store.add_timeline(incident.id, opened, "opened", f"{level.label} {priority}")
        for n in range(pages):
            # a failed attempt, a failover and a hold are not pages: only what was sent
            store.add_timeline(
                incident.id,
                opened + n,
                "notification",
                "opened via mail to a@example.com: attempt 1 failed (connect): refused; "
                "retrying in 2s",
                actor="mail",
            )
            store.add_timeline(
                incident.id,
                opened + n,
                "notification",
                "opened via mail failed for a@example.com: failing over to pager",
                actor="mail",
            )
            store.add_timeline(
                incident.id, opened + n, "notification", "opened via pager: sent", actor="pager"
            )
        escalations = EscalationStore(store.conn)
        if escalated == "step":
            escalations.arm(incident.id, 1, None, None)
            store.add_timeline(incident.id, opened + 15 * MIN, "escalated", "step 2: tier2 paged")
        elif escalated == "resolve":
            escalations.arm(incident.id, 0, None, None, resolve_escalated=True)
        store.add_timeline(incident.id, opened + 1, "comment", "looking", actor="someone")
        if ack is not None:
            delay, who, how = ack
            incident = store.acknowledge(incident, who, opened + delay)
            detail = f"acknowledged via {how}" + (": on it" if how == "cli" else "")
            store.add_timeline(incident.id, opened + delay, "acknowledged", detail, actor=who)
        if resolved is not None:
            store.resolve(incident, opened + resolved)
            store.add_timeline(incident.id, opened + resolved, "resolved", "back to normal")


def write_history(store: IncidentStore, t0: float) -> None:
    scripted(store, t0, "cpu_high", "P1", "web1", "web",
             ack=(10 * MIN, "alice", "cli"), resolved=1 * HOUR, pages=1)  # fmt: skip
    scripted(store, t0, "cpu_high", "P1", "web2", "web",
             ack=(40 * MIN, "bob", "sms"), resolved=5 * HOUR,
             escalated="step", pages=2)  # fmt: skip
    scripted(store, t0 + 2 * HOUR, "disk_full", "P1", "db1", "db",
             ack=(15 * MIN, "carol", "email"), resolved=30 * MIN, pages=1)  # fmt: skip
    scripted(store, t0 + 1 * HOUR, "disk_full", "P2", "lb1", "lb",
             resolved=20 * MIN, pages=2)  # fmt: skip
    scripted(store, t0 + 3 * HOUR, "cpu_high", "P2", "web3", "web",
             ack=(20 * MIN, "alice", "im"), resolved=9 * HOUR,
             escalated="resolve", pages=3)  # fmt: skip
    scripted(store, t0 + 4 * HOUR, "disk_full", "P2", "db2", "db",
             ack=(5 * MIN, "dave", "cli"), pages=1)  # fmt: skip
    scripted(store, t0 + 20 * HOUR, "cpu_high", "P1", "web4", "web",
             escalated="step", pages=2)  # fmt: skip
    scripted(store, t0 - 2 * DAY, "cpu_high", "P1", "web5", "web",
             ack=(1 * MIN, "alice", "cli"), resolved=2 * MIN, pages=5)  # fmt: skip


@pytest.fixture
def history(conn: sqlite3.Connection) -> sqlite3.Connection:
    write_history(IncidentStore(conn), T0)
    return conn


@pytest.fixture
def report(history: sqlite3.Connection) -> KpiReport:
    cfg = config()
    return compute_kpis(incident_facts(history, SINCE, cfg), cfg.priorities.targets, SINCE, NOW)


def by_key(groups: tuple[GroupKpis, ...]) -> dict[str, GroupKpis]:
    return {g.key: g for g in groups}


def test_facts_come_from_the_incident_row_and_its_timeline(history: sqlite3.Connection) -> None:
    facts = {f.id: f for f in incident_facts(history, SINCE, config())}

    assert sorted(facts) == [1, 2, 3, 4, 5, 6, 7]  # #8 was opened before the window
    assert {i: f.team for i, f in facts.items()} == {
        1: "tier1", 2: "tier1", 3: "dba", 4: NO_TEAM, 5: "tier1", 6: "dba", 7: "tier1"
    }  # fmt: skip
    assert {i: f.pages for i, f in facts.items()} == {1: 1, 2: 2, 3: 1, 4: 2, 5: 3, 6: 1, 7: 2}
    assert {i for i, f in facts.items() if f.escalated} == {2, 5, 7}
    assert facts[1] == IncidentFacts(
        id=1,
        priority="P1",
        rule="cpu_high",
        team="tier1",
        opened_at=T0,
        acknowledged_at=T0 + 10 * MIN,
        resolved_at=T0 + HOUR,
        escalated=False,
        acknowledged_by="alice",
        acknowledged_how="cli",
        pages=1,
    )
    assert (facts[2].acknowledged_by, facts[2].acknowledged_how) == ("bob", "sms")
    assert (facts[4].acknowledged_by, facts[4].acknowledged_how) == (None, None)
    assert facts[6].resolved_at is None


def test_kpis_per_priority_match_hand_computed_values(report: KpiReport) -> None:
    p = by_key(report.by_priority)
    assert list(p) == ["P1", "P2"]

    # P1: #1 #2 #3 #7
    assert p["P1"].incidents == 4
    assert p["P1"].pages == 6  # 1 + 2 + 1 + 2
    assert p["P1"].acknowledged == 3  # #1 10m, #2 40m, #3 15m
    assert p["P1"].mtta == 1300.0  # (600 + 2400 + 900) / 3
    assert p["P1"].mtta_median == 900.0  # 600, [900], 2400
    assert p["P1"].resolved == 3  # #1 1h, #2 5h, #3 30m
    assert p["P1"].mttr == 7800.0  # (3600 + 18000 + 1800) / 3
    assert p["P1"].mttr_median == 3600.0  # 1800, [3600], 18000
    # #2 acked at 40m > 15m; #7 unacked for 4h at now > 15m; #3 acked at exactly 15m: on time
    assert p["P1"].respond_breaches == 2
    # #2 resolved at 5h > 4h; #7 open exactly 4h at now: not yet late
    assert p["P1"].resolve_breaches == 1
    assert p["P1"].escalated == 2  # #2, #7
    assert p["P1"].tier1_resolved == 2  # #1, #3 (#2 escalated)
    assert p["P1"].tier1_rate == pytest.approx(2 / 3)

    # P2: #4 #5 #6
    assert p["P2"].incidents == 3
    assert p["P2"].pages == 6  # 2 + 3 + 1
    assert p["P2"].acknowledged == 2  # #5 20m, #6 5m
    assert p["P2"].mtta == 750.0  # (1200 + 300) / 2
    assert p["P2"].mtta_median == 750.0  # median of two is their mean
    assert p["P2"].resolved == 2  # #4 20m, #5 9h
    assert p["P2"].mttr == 16800.0  # (1200 + 32400) / 2
    assert p["P2"].mttr_median == 16800.0
    # #4 never acked but resolved at 20m <= 30m; #5 20m; #6 5m: none late
    assert p["P2"].respond_breaches == 0
    # #5 resolved at 9h > 8h; #6 open for 20h at now > 8h
    assert p["P2"].resolve_breaches == 2
    assert p["P2"].escalated == 1  # #5 (missed its resolve target)
    assert p["P2"].tier1_resolved == 1  # #4
    assert p["P2"].tier1_rate == 0.5  # 1 / 2


def test_kpis_per_team_match_hand_computed_values(report: KpiReport) -> None:
    assert [g.key for g in report.by_team] == ["dba", "tier1", NO_TEAM]  # no team last
    t = by_key(report.by_team)

    # dba: #3 #6
    assert t["dba"] == GroupKpis(
        key="dba",
        incidents=2,
        pages=2,  # 1 + 1
        acknowledged=2,
        mtta=600.0,  # (900 + 300) / 2
        mtta_median=600.0,
        resolved=1,
        mttr=1800.0,  # #3 only
        mttr_median=1800.0,
        respond_breaches=0,  # #3 exactly 15m, #6 5m of 30m
        resolve_breaches=1,  # #6 open 20h > 8h
        escalated=0,
        tier1_resolved=1,
        tier1_rate=1.0,
    )
    # tier1: #1 #2 #5 #7
    assert t["tier1"].incidents == 4
    assert t["tier1"].pages == 8  # 1 + 2 + 3 + 2
    assert t["tier1"].mtta == 1400.0  # (600 + 2400 + 1200) / 3
    assert t["tier1"].mtta_median == 1200.0  # 600, [1200], 2400
    assert t["tier1"].mttr == 18000.0  # (3600 + 18000 + 32400) / 3
    assert t["tier1"].mttr_median == 18000.0
    assert t["tier1"].respond_breaches == 2  # #2, #7
    assert t["tier1"].resolve_breaches == 2  # #2, #5
    assert t["tier1"].escalated == 3  # #2, #5, #7
    assert t["tier1"].tier1_rate == pytest.approx(1 / 3)  # #1 of #1 #2 #5
    # no team: #4, never acknowledged
    assert t[NO_TEAM].incidents == 1
    assert (t[NO_TEAM].mtta, t[NO_TEAM].mtta_median) == (None, None)
    assert t[NO_TEAM].mttr == 1200.0
    assert (t[NO_TEAM].respond_breaches, t[NO_TEAM].resolve_breaches) == (0, 0)


def test_totals_and_noise_match_hand_computed_values(report: KpiReport) -> None:
    total = report.total
    assert (total.incidents, total.pages) == (7, 12)  # 6 + 6
    assert total.acknowledged == 5
    assert total.mtta == 1080.0  # (600 + 2400 + 900 + 1200 + 300) / 5
    assert total.mtta_median == 900.0  # 300, 600, [900], 1200, 2400
    assert total.resolved == 5
    assert total.mttr == 11400.0  # (3600 + 18000 + 1800 + 1200 + 32400) / 5
    assert total.mttr_median == 3600.0  # 1200, 1800, [3600], 18000, 32400
    assert (total.respond_breaches, total.resolve_breaches) == (2, 3)  # 2 + 0, 1 + 2
    assert total.escalated == 3
    assert total.tier1_rate == 0.6  # #1 #3 #4 of #1 #2 #3 #4 #5

    # cpu_high: #1 #2 #5 #7, pages 1 + 2 + 3 + 2; disk_full: #3 #4 #6, pages 1 + 2 + 1
    # (#8's 5 pages are outside the window)
    assert [(r.rule, r.incidents, r.pages) for r in report.noise] == [
        ("cpu_high", 4, 8),
        ("disk_full", 3, 4),
    ]


def test_breach_edges_and_priorities_without_targets() -> None:
    targets = {"P1": ResponseTarget(respond_within=15 * MIN, resolve_within=4 * HOUR)}

    def facts(
        i: int, priority: str, ack: float | None, res: float | None, opened: float = T0
    ) -> IncidentFacts:
        return IncidentFacts(
            id=i,
            priority=priority,
            rule="r",
            team="t",
            opened_at=opened,
            acknowledged_at=None if ack is None else opened + ack,
            resolved_at=None if res is None else opened + res,
            escalated=False,
        )

    history = [
        facts(1, "P1", None, 20 * MIN),  # resolved unacknowledged after 20m: respond breach
        facts(2, "P1", 15 * MIN + 1, None),  # acked one second late
        facts(3, "P3", None, None),  # no target for P3: never a breach
        facts(4, "P1", None, None, opened=T0 + HOUR),  # opened after `now`: outside the window
        facts(5, "P1", 1, 4 * HOUR + 1, opened=T0 - DAY),  # resolved one second late; before
    ]
    report = compute_kpis(history, targets, since=T0 - DAY, now=T0 + 30 * MIN)
    p = by_key(report.by_priority)
    assert (p["P1"].incidents, p["P1"].respond_breaches) == (3, 2)  # #1, #2
    # #1 resolved at 20m; #2 still open at now (30m) of 4h; #5 at 4h + 1s
    assert p["P1"].resolve_breaches == 1
    assert (p["P3"].respond_breaches, p["P3"].resolve_breaches) == (None, None)
    assert (report.total.respond_breaches, report.total.incidents) == (2, 4)
    window = compute_kpis(history, targets, since=T0, now=T0 + 30 * MIN)  # without #5
    assert (window.total.incidents, window.total.resolve_breaches) == (3, 0)


def test_empty_window_still_lists_priorities_with_targets() -> None:
    report = compute_kpis([], config().priorities.targets, since=T0, now=NOW)
    assert [g.key for g in report.by_priority] == ["P1", "P2"]
    assert report.total.incidents == 0
    assert (report.total.mtta, report.total.mttr, report.total.tier1_rate) == (None, None, None)
    assert report.total.respond_breaches is None
    assert (report.by_team, report.noise) == ((), ())
    assert "(none)" in render_table(report)


def test_ack_how_is_read_from_the_timeline_detail() -> None:
    assert ack_how("acknowledged via cli: on it") == "cli"
    assert ack_how("acknowledged via sms") == "sms"
    assert ack_how("acked somehow") is None
    assert ack_how(None) is None


def test_renderers_carry_the_same_numbers(report: KpiReport) -> None:
    data = json.loads(render_json(report))
    assert data["by_priority"][0]["mtta"] == 1300.0
    assert data["noise"][0] == {"rule": "cpu_high", "incidents": 4, "pages": 8}

    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    p1 = next(r for r in rows if (r["section"], r["key"]) == ("priority", "P1"))
    assert (p1["mtta"], p1["respond_breaches"], p1["tier1_rate"]) == ("1300.0", "2", str(2 / 3))
    none_team = next(r for r in rows if (r["section"], r["key"]) == ("team", NO_TEAM))
    assert none_team["mtta"] == ""  # None
    rule = next(r for r in rows if r["section"] == "rule")
    assert (rule["key"], rule["incidents"], rule["pages"], rule["mtta"]) == (
        "cpu_high",
        "4",
        "8",
        "",
    )

    table = render_table(report).splitlines()
    assert table[0] == "incidents opened 2027-01-15 07:00:00Z .. 2027-01-16 08:00:00Z (1d01h)"
    header = table[2].split()
    assert header[:3] == ["PRIORITY", "INCIDENTS", "PAGES"]
    p1_line = next(line for line in table if line.startswith("P1 "))
    # 21m40s = 1300s, 15m = 900s, 2h10m = 7800s, 1h00m = 3600s
    assert p1_line.split() == [
        "P1", "4", "6", "3", "21m40s", "15m", "3", "2h10m", "1h00m", "2", "1", "2", "66.7%"
    ]  # fmt: skip
    assert any(line.split() == ["disk_full", "3", "4"] for line in table)


# -- the command line -------------------------------------------------------------------------
@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    """A state dir with the history opened two days ago, and a config dir for it."""
    state, conf = tmp_path / "state", tmp_path / "conf"
    conf.mkdir()
    (conf / "thresholds.yaml").write_text("rules: []\n")
    (conf / "channels.yaml").write_text(yaml.safe_dump(CHANNELS))
    conn = connect(state)
    # the CLI reads the wall clock: put t0 two days back, so #8 (t0 - 2d) is outside a 3d window
    write_history(IncidentStore(conn), time.time() - 2 * DAY)
    conn.close()
    return state, conf


def test_cli_report_json(dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    state, conf = dirs
    args = ["report", "--since", "3d", "--state-dir", str(state), "--config-dir", str(conf)]
    assert main([*args, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)

    assert data["now"] - data["since"] == pytest.approx(3 * DAY)
    assert data["total"]["incidents"] == 7
    assert (data["total"]["mtta"], data["total"]["mttr"]) == (1080.0, 11400.0)
    p1, p2 = data["by_priority"]
    assert (p1["key"], p1["mtta"], p1["mttr"], p1["respond_breaches"]) == ("P1", 1300.0, 7800.0, 2)
    # now is ~2 days after t0: #7 has been open ~28h, past its 4h target too (1 + 1)
    assert p1["resolve_breaches"] == 2
    assert (p2["key"], p2["mtta"], p2["mttr"], p2["resolve_breaches"]) == ("P2", 750.0, 16800.0, 2)
    assert [g["key"] for g in data["by_team"]] == ["dba", "tier1", "-"]
    assert data["noise"] == [
        {"rule": "cpu_high", "incidents": 4, "pages": 8},
        {"rule": "disk_full", "incidents": 3, "pages": 4},
    ]


def test_cli_report_csv_and_table(
    dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    state, conf = dirs
    args = ["report", "--since", "3d", "--state-dir", str(state), "--config-dir", str(conf)]
    assert main([*args, "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("section,key,incidents,pages,acknowledged,resolved,mtta,")
    assert lines[1].startswith("total,all,7,12,5,5,1080.0,900.0,11400.0,3600.0,2,4,3,3,0.6")
    assert lines[-2:] == ["rule,cpu_high,4,8" + "," * 11, "rule,disk_full,3,4" + "," * 11]

    assert main(args) == 0  # table by default
    out = capsys.readouterr().out
    assert out.splitlines()[2].split()[:2] == ["PRIORITY", "INCIDENTS"]
    assert "cpu_high" in out


def test_cli_report_errors(
    tmp_path: Path, dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    state, conf = dirs
    assert main(["report", "--state-dir", str(tmp_path / "nowhere")]) == 1
    assert "no state database" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["report", "--since", "soon", "--state-dir", str(state)])
    assert exc.value.code == 2
    assert "invalid duration" in capsys.readouterr().err
    (conf / "channels.yaml").write_text("teams: 3\n")
    assert main(["report", "--state-dir", str(state), "--config-dir", str(conf)]) == 1
    assert "channels.yaml" in capsys.readouterr().err


def test_the_facts_cache_gives_what_a_full_read_gives_as_incidents_change(
    history: sqlite3.Connection,
) -> None:
    cfg = config()
    cache = FactsCache(settle=2 * HOUR)
    store = IncidentStore(history)

    def both(now: float) -> list[IncidentFacts]:
        cached = cache.facts(history, SINCE, cfg, now)
        assert cached == incident_facts(history, SINCE, cfg)
        return cached

    assert len(both(NOW)) == 7
    # #1-#5 resolved long ago and are kept; now #6 resolves and a new incident opens
    with store.transaction():
        store.resolve(store.get(6), NOW + MIN)  # type: ignore[arg-type]
    scripted(store, NOW + 2 * MIN, "cpu_high", "P2", "web9", "web", pages=1)
    assert len(both(NOW + 3 * MIN)) == 8
    # #1 reopens after it was kept: read fresh, its new state wins
    with store.transaction():
        store.reopen(store.get(1), NOW + 4 * MIN)  # type: ignore[arg-type]
    facts = {f.id: f for f in both(NOW + 5 * MIN)}
    assert facts[1].resolved_at is None
    assert facts[1].acknowledged_at is None
    # the window moves past #1-#2's opening: they drop out of the cached answer too
    later = cache.facts(history, T0 + MIN, cfg, NOW + 6 * MIN)
    assert later == incident_facts(history, T0 + MIN, cfg)
    assert {f.id for f in later} == {3, 4, 5, 6, 7, 9}


def test_the_facts_cache_does_not_read_a_settled_incident_again(
    history: sqlite3.Connection,
) -> None:
    cfg = config()
    cache = FactsCache(settle=2 * HOUR)
    first = {f.id: f for f in cache.facts(history, SINCE, cfg, NOW)}
    # behind alertd's back (no such write happens): a settled incident (#1, resolved at
    # T0 + 1 h) and an open one (#6) change priority; only the open one is read again
    history.execute("UPDATE incidents SET priority = 'P4' WHERE id IN (1, 6)")
    again = {f.id: f for f in cache.facts(history, SINCE, cfg, NOW + MIN)}
    assert again[1] == first[1]
    assert again[1].priority == "P1"
    assert again[6].priority == "P4"
    # a reload (a new channels object) starts over: everything is read again
    reloaded = {f.id: f for f in cache.facts(history, SINCE, config(), NOW + 2 * MIN)}
    assert reloaded[1].priority == "P4"


@pytest.mark.parametrize(("max_age", "read_again"), [("1h", False), ("12h", True)])
def test_by_default_a_resolve_settles_after_twice_the_outboxs_max_age(
    history: sqlite3.Connection, max_age: str, read_again: bool
) -> None:
    # #1 resolved at T0 + 1 h, 23 h before NOW: settled when retries last 1 h (2 h 10 min),
    # not when they last 12 h (24 h 10 min): its resolve may still be paged
    cfg = config(max_age)
    cache = FactsCache()
    cache.facts(history, SINCE, cfg, NOW)
    history.execute("UPDATE incidents SET priority = 'P4' WHERE id = 1")  # behind its back
    again = {f.id: f for f in cache.facts(history, SINCE, cfg, NOW + MIN)}
    assert (again[1].priority == "P4") is read_again


def test_a_reopened_incident_is_measured_from_its_reopening(conn: sqlite3.Connection) -> None:
    # fired, resolved 10m later; fired again 5h after opening, acked 5m and resolved 20m after
    # that. Its targets (P1 15m / 4h) count from the reopening, as escalation's do.
    store = IncidentStore(conn)
    scripted(store, T0, "cpu_high", "P1", "web1", "web", resolved=10 * MIN)
    with store.transaction():
        incident = store.get(1)
        assert incident is not None
        incident = store.reopen(incident, T0 + 5 * HOUR)
        incident = store.acknowledge(incident, "alice", T0 + 5 * HOUR + 5 * MIN)
        store.resolve(incident, T0 + 5 * HOUR + 20 * MIN)
    cfg = config()

    facts = incident_facts(conn, SINCE, cfg)
    assert [f.reopened_at for f in facts] == [T0 + 5 * HOUR]
    p1 = by_key(compute_kpis(facts, cfg.priorities.targets, SINCE, NOW).by_priority)["P1"]

    assert (p1.mtta, p1.mttr) == (5 * MIN, 20 * MIN)  # not 5h05m and 5h20m
    assert (p1.respond_breaches, p1.resolve_breaches) == (0, 0)
