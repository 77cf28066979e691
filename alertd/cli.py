"""The ``alertd`` command: run the daemon, check config, explain thresholds, handle incidents.

The incident commands work on the state database directly (SQLite WAL), so they work while
the daemon runs and record who did what on the incident's timeline.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass
import json
import math
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from alertd import event_loop
from alertd.errors import AlertdError, ConfigError
from alertd.model import Incident, IncidentState

if TYPE_CHECKING:
    from alertd.config.channels import ChannelsFile
    from alertd.state.incidents import IncidentStore


def _default_state_dir() -> Path:
    return Path(os.environ.get("ALERTD_STATE_DIR", "state"))


def _config_dir(args: argparse.Namespace) -> Path:
    """The daemon's config for a command on a state directory: ``--config-dir``, else
    ``$ALERTD_CONFIG_DIR``, else the config the daemon on that state directory runs on, else
    ``.``."""
    from alertd.state.daemon_lock import recorded_config_dir

    if args.config_dir is not None:
        return Path(args.config_dir)
    if "ALERTD_CONFIG_DIR" in os.environ:
        return Path(os.environ["ALERTD_CONFIG_DIR"])
    return recorded_config_dir(args.state_dir or _default_state_dir()) or Path(".")


def _state_dir_option() -> argparse.ArgumentParser:
    """``--state-dir`` for an action's own parser too, so it may follow the action
    (``alertd incidents list --state-dir DIR`` as well as ``incidents --state-dir DIR list``);
    given there, it wins; not given, it leaves the group's value alone (SUPPRESS)."""
    option = argparse.ArgumentParser(add_help=False)
    option.add_argument(
        "--state-dir", type=Path, default=argparse.SUPPRESS, help="default: $ALERTD_STATE_DIR"
    )
    return option


def _who() -> str:
    return os.environ.get("SUDO_USER") or getpass.getuser()


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="alertd", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    state_dir = _state_dir_option()

    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--config-dir", type=Path, default=Path("."))
    run.add_argument(
        "--state-dir", type=Path, default=None, help="default: $ALERTD_STATE_DIR or ./state"
    )
    run.add_argument("--listen", type=_listen, default=("127.0.0.1", 9095), metavar="HOST:PORT")
    run.add_argument("--log-level", default=os.environ.get("ALERTD_LOG_LEVEL", "INFO"))

    check = sub.add_parser("check-config", help="validate a config directory")
    check.add_argument("config_dir", nargs="?", type=Path, default=Path("."))

    exp = sub.add_parser("explain", help="show the effective thresholds for a series")
    exp.add_argument("instance")
    exp.add_argument("metric")
    exp.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra series label, e.g. mountpoint=/var",
    )
    exp.add_argument("--config-dir", type=Path, default=Path("."))

    for kind, text in (
        ("maintenance", "approved change windows: alerts inside are recorded but don't page"),
        ("silence", "ad-hoc, expiring silences: the same, for unplanned work"),
    ):
        window = sub.add_parser(kind, help=text)
        window.add_argument("--state-dir", type=Path, default=None)
        wsub = window.add_subparsers(dest="action", required=True)
        add = wsub.add_parser("add", parents=[state_dir])
        add.add_argument(
            "--match",
            action="append",
            default=[],
            metavar="LABEL=VALUE",
            help="repeatable; all must match (none: everything)",
        )
        add.add_argument("--start", default=None, help="ISO 8601 time (default: now)")
        length = add.add_mutually_exclusive_group(required=True)
        length.add_argument("--for", dest="duration", default=None, help="e.g. 2h, 30m")
        length.add_argument("--until", default=None, help="ISO 8601 time")
        add.add_argument("--reason", required=True, help="e.g. the change ticket, CHG-1234")
        add.add_argument("--owner", default=None, help="who (default: your user name)")
        lst = wsub.add_parser("list", parents=[state_dir])
        lst.add_argument("--all", action="store_true", help="include expired and removed")
        rm = wsub.add_parser("remove", parents=[state_dir])
        rm.add_argument("id", type=int)

    events = sub.add_parser("events", help="device events: restarts, unmapped SNMP traps")
    events.add_argument("--state-dir", type=Path, default=None)
    events.add_argument("--limit", type=int, default=50)
    events.add_argument("--json", action="store_true")

    inc = sub.add_parser("incidents", help="list, show, acknowledge or resolve incidents")
    inc.add_argument("--state-dir", type=Path, default=None)
    isub = inc.add_subparsers(dest="action", required=True)
    lst = isub.add_parser("list", parents=[state_dir])
    lst.add_argument(
        "--state", choices=["active", "open", "acknowledged", "resolved", "all"], default="active"
    )
    lst.add_argument("--json", action="store_true")
    lst.add_argument("--limit", type=int, default=200, help="newest first (0: all)")
    show = isub.add_parser("show", parents=[state_dir])
    show.add_argument("id", type=int)
    show.add_argument("--json", action="store_true")
    for viewer in (lst, show):  # the JSON is the API's: teams and targets come from the config
        viewer.add_argument(
            "--config-dir",
            type=Path,
            default=None,
            help="with --json: the daemon's config, for teams and respond_by "
            "(default: $ALERTD_CONFIG_DIR, else the running daemon's, else .)",
        )
    for name in ("ack", "resolve", "comment"):
        cmd = isub.add_parser(name, parents=[state_dir])
        cmd.add_argument("id", type=int)
        if name == "comment":
            cmd.add_argument("text")
        else:
            cmd.add_argument("--comment", default=None)
        cmd.add_argument("--by", default=None, help="who (default: your user name)")
        if name == "resolve":
            cmd.add_argument(
                "--config-dir",
                type=Path,
                default=None,
                help="the daemon's config, whose routes say who is told "
                "(default: $ALERTD_CONFIG_DIR, else the running daemon's, else .)",
            )
            cmd.add_argument(
                "--no-notify", action="store_true", help="resolve without telling anyone"
            )

    notify = sub.add_parser("notify", help="try a notification channel")
    nsub = notify.add_subparsers(dest="action", required=True)
    ntest = nsub.add_parser("test", help="send a test message through the real delivery path")
    ntest.add_argument("channel", help="a channel name from channels.yaml")
    ntest.add_argument(
        "--to",
        action="append",
        default=[],
        help="a recipient (repeatable); default: the members of teams using the channel",
    )
    ntest.add_argument("--config-dir", type=Path, default=Path("."))
    ntest.add_argument(
        "--timeout", type=_seconds, default=30.0, help="give up after (seconds, more than 0)"
    )

    rep = sub.add_parser("report", help="incident KPIs: MTTA, MTTR, SLA breaches, noise")
    rep.add_argument(
        "--since", type=_duration, default=30 * 86400.0, help="window, e.g. 7d (default: 30d)"
    )
    rep.add_argument("--format", choices=["table", "json", "csv"], default="table")
    rep.add_argument("--state-dir", type=Path, default=None)
    rep.add_argument(
        "--config-dir",
        type=Path,
        default=None,
        help="for priority targets and routes "
        "(default: $ALERTD_CONFIG_DIR, else the running daemon's, else .)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "check-config":
            return _check_config(args.config_dir)
        if args.command == "explain":
            return _explain(args)
        if args.command == "events":
            return _events(args)
        if args.command in ("maintenance", "silence"):
            return _windows(args)
        if args.command == "report":
            return _report(args)
        if args.command == "notify":
            return _notify_test(args)
        return _incidents(args)
    except AlertdError as exc:
        print(f"alertd: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # the reader went away (``alertd incidents list | head``): nothing more to say, and
        # Python's own flush at exit must not fail on the closed pipe either
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _run(args: argparse.Namespace) -> int:
    from alertd.app import App
    from alertd.log import setup_logging

    setup_logging(args.log_level)
    host, port = args.listen
    app = App(
        args.config_dir,
        args.state_dir or _default_state_dir(),
        host,
        port,
        log_level=args.log_level,
    )
    return event_loop.run(app.run())


def _notify_test(args: argparse.Namespace) -> int:
    from alertd.config.load import load_config
    from alertd.log import setup_logging
    from alertd.notifytest import send_test

    setup_logging("WARNING")
    config = load_config(args.config_dir)
    if args.channel not in config.channels.channels:
        known = ", ".join(sorted(config.channels.channels)) or "none"
        print(f"alertd: no channel {args.channel!r} (channels: {known})", file=sys.stderr)
        return 2
    outcome, lines = asyncio.run(send_test(config, args.channel, args.to, args.timeout))
    print("\n".join(lines))
    print(outcome.upper())
    return 0 if outcome == "delivered" else 1


def _check_config(config_dir: Path) -> int:
    from alertd.config.load import load_config

    try:
        config = load_config(config_dir)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem)
        print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)
        return 1
    print(config.summary())
    return 0


def _explain(args: argparse.Namespace) -> int:
    from alertd.config.load import load_config
    from alertd.explain import explain

    extra = {}
    for item in args.label:
        name, sep, value = item.partition("=")
        if not sep:
            print(f"alertd: --label expects NAME=VALUE, got {item!r}", file=sys.stderr)
            return 2
        extra[name] = value
    print(explain(load_config(args.config_dir), args.instance, args.metric, extra))
    return 0


def _when_arg(text: str) -> float:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise AlertdError(f"{text!r}: give a time zone, e.g. 2026-12-01T22:00:00Z")
    return moment.timestamp()


def _windows(args: argparse.Namespace) -> int:
    from alertd.config.types import parse_duration
    from alertd.incidents.maintenance import from_rows
    from alertd.state.db import connect
    from alertd.state.maintenance import add_window, remove_window, stored_windows

    kind = args.command
    conn = connect(args.state_dir or _default_state_dir())
    now = datetime.now(UTC).timestamp()
    if args.action == "add":
        matchers: dict[str, list[str]] = {}
        for item in args.match:
            name, sep, value = item.partition("=")
            if not sep or not name:
                print(f"alertd: --match expects LABEL=VALUE, got {item!r}", file=sys.stderr)
                return 2
            matchers.setdefault(name, []).append(value)
        start = _when_arg(args.start) if args.start else now
        try:
            end = start + parse_duration(args.duration) if args.duration else _when_arg(args.until)
        except ValueError as exc:
            raise AlertdError(str(exc)) from exc
        if end <= start:
            raise AlertdError("the window must end after it starts")
        window_id = add_window(
            conn,
            kind=kind,
            matchers=matchers,
            start=start,
            end=end,
            reason=args.reason,
            owner=args.owner or _who(),
            now=now,
        )
        print(f"{kind} #{window_id} added: until {_when(end)}")
        return 0
    if args.action == "remove":
        if not remove_window(conn, args.id, kind, now):
            print(f"alertd: no {kind} #{args.id} in force", file=sys.stderr)
            return 1
        print(f"{kind} #{args.id} removed")
        return 0
    windows = [w for w in from_rows(stored_windows(conn, now, expired=args.all)) if w.kind == kind]
    for w in windows:
        print(w.describe())
    if not windows:
        print(f"no {kind} windows in force" if kind == "maintenance" else "no silences in force")
    return 0


def _events(args: argparse.Namespace) -> int:
    from alertd.state.db import connect
    from alertd.state.events import recent_device_events

    state_dir = args.state_dir or _default_state_dir()
    if not (state_dir / "alertd.sqlite3").exists():
        print(f"alertd: no state database in {state_dir} (is --state-dir right?)", file=sys.stderr)
        return 1
    events = recent_device_events(connect(state_dir), args.limit)
    if args.json:
        print(json.dumps([dataclasses.asdict(e) for e in events], indent=2, default=str))
        return 0
    if not events:
        print("no device events")
    for e in events:
        print(f"{_when(e.ts)}  {e.instance:<16} {e.kind:<14} {e.trap_oid or '-'}  {e.detail}")
    return 0


def _seconds(text: str) -> float:
    """A positive number of seconds (user test: 0 and -3 were taken, then nothing was sent)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {text}")
    return value


def _duration(text: str) -> float:
    from alertd.config.types import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _report(args: argparse.Namespace) -> int:
    from alertd.config.load import load_config
    from alertd.incidents.kpi import compute_kpis
    from alertd.incidents.kpi_facts import incident_facts
    from alertd.report import render
    from alertd.state.db import connect

    state_dir = args.state_dir or _default_state_dir()
    if not (state_dir / "alertd.sqlite3").exists():
        print(f"alertd: no state database in {state_dir} (is --state-dir right?)", file=sys.stderr)
        return 1
    config_dir = _config_dir(args)
    try:
        channels = load_config(config_dir).channels
    except ConfigError as exc:  # the targets and routes the KPIs are measured against
        print(f"alertd: {config_dir}: {exc}", file=sys.stderr)
        print("alertd: the report needs the daemon's config: pass --config-dir", file=sys.stderr)
        return 1
    now = datetime.now(UTC).timestamp()
    since = now - args.since
    conn = connect(state_dir)
    try:
        facts = incident_facts(conn, since, channels)
    finally:
        conn.close()
    print(render(compute_kpis(facts, channels.priorities.targets, since, now), args.format))
    return 0


def _view_channels(args: argparse.Namespace) -> ChannelsFile:
    """The channels the JSON views read teams and response targets from: the daemon's
    config; without one they are left empty, and stderr says so (stdout stays JSON)."""
    from alertd.config.channels import ChannelsFile
    from alertd.config.load import load_config

    config_dir = _config_dir(args)
    try:
        return load_config(config_dir).channels
    except ConfigError as exc:
        print(f"alertd: {config_dir}: {exc}", file=sys.stderr)
        print(
            "alertd: teams, respond_by and resolve_by left empty: pass the daemon's --config-dir",
            file=sys.stderr,
        )
        return ChannelsFile()


def _incidents(args: argparse.Namespace) -> int:
    from alertd.api.views import incident_detail_json, incident_json
    from alertd.config.load import load_config
    from alertd.incidents.actions import acknowledge_within, add_comment
    from alertd.state.db import connect
    from alertd.state.incidents import IncidentStore

    state_dir = args.state_dir or _default_state_dir()
    if not (state_dir / "alertd.sqlite3").exists():
        print(f"alertd: no state database in {state_dir} (is --state-dir right?)", file=sys.stderr)
        return 1
    store = IncidentStore(connect(state_dir))
    now = datetime.now(UTC).timestamp()
    if args.action == "list":
        if args.state == "active":
            states = [IncidentState.OPEN, IncidentState.ACKNOWLEDGED]
        else:
            states = [] if args.state == "all" else [IncidentState(args.state)]
        if args.limit <= 0:  # no limit (SQLite's LIMIT -1)
            incidents, more = store.find(states, limit=-1), False
        else:
            incidents = store.find(states, limit=args.limit + 1)  # one more: are there more?
            more = len(incidents) > args.limit
            incidents = incidents[: args.limit]
        if args.json:
            viewed = _view_channels(args)
            print(json.dumps([incident_json(i, viewed) for i in incidents], indent=2))
        else:
            _print_table(incidents)
        if more:  # on stderr: the table (or JSON) stays what a script reads
            print(
                f"alertd: more incidents than the {args.limit} shown: --limit N for more",
                file=sys.stderr,
            )
        return 0
    incident = store.get(args.id)
    if incident is None:
        print(f"alertd: no incident #{args.id}", file=sys.stderr)
        return 1
    if args.action == "show":
        timeline = store.timeline(incident.id)
        members = store.members([incident.id]).get(incident.id, [])
        if args.json:
            data = incident_detail_json(store.conn, incident, _view_channels(args))
            print(json.dumps(data, indent=2))
            return 0
        _print_incident(incident)
        if members:
            print(f"alerts ({sum(m.state == 'firing' for m in members)} of {len(members)} firing):")
            for m in members:
                labels = ",".join(f"{k}={v}" for k, v in m.labels)
                print(f"  {m.state:<8} {m.level.label:<8} {m.rule}  {labels}")
        print("timeline:")
        for t in timeline:
            print(f"  {_when(t.ts)}  {t.kind:<14} {t.actor:<12} {t.detail}")
        return 0
    who = args.by or _who()
    changed = True
    if args.action == "ack":
        with store.transaction():
            result, changed = acknowledge_within(store, incident, who, args.comment, now, "cli")
    elif args.action == "resolve":
        if incident.state is IncidentState.RESOLVED:  # before asking for the config
            print(f"alertd: incident #{incident.id} is already resolved", file=sys.stderr)
            return 1
        channels = None
        if not args.no_notify:
            config_dir = _config_dir(args)
            try:
                channels = load_config(config_dir).channels
            except ConfigError as exc:
                print(f"alertd: not resolved: {config_dir}: {exc}", file=sys.stderr)
                print(
                    "alertd: the config says who is told of a resolve: pass the daemon's "
                    "--config-dir, or --no-notify to tell nobody",
                    file=sys.stderr,
                )
                return 1
        result, changed = _resolve_and_queue(store, incident, who, args.comment, now, channels)
    else:
        result = add_comment(store, incident, who, args.text, now)
    if not changed:
        # nothing to do is an error, as the API's 409: a script sees that it changed nothing.
        # Decided under the write lock, so a change by someone else a moment before counts
        print(f"alertd: {result}", file=sys.stderr)
        return 1
    print(result)
    return 0


def _resolve_and_queue(
    store: IncidentStore,
    incident: Incident,
    who: str,
    comment: str | None,
    now: float,
    channels: ChannelsFile | None,
) -> tuple[str, bool]:
    """Resolve by hand and queue the "resolved" notifications that ``channels`` routes in the
    same transaction: the daemon's delivery picks them up from the outbox (within a second
    while it runs). ``channels`` None (``--no-notify``): nobody is told, and the timeline says
    so. Also return whether it resolved (False: resolved already, read under the write
    lock)."""
    from alertd.incidents.actions import resolve_within
    from alertd.incidents.escalation import resolved_by_hand_news
    from alertd.notify.outbox import OutboxStore

    if channels is None:
        comment = f"{comment}; nobody notified" if comment else "nobody notified"
    with store.transaction():
        text, resolved = resolve_within(store, incident, who, comment, now, "cli")
        queued = 0
        if resolved is not None and channels is not None:
            notes = resolved_by_hand_news(store.conn, resolved, channels, now)
            queued = OutboxStore(store.conn).enqueue(notes, now, supersede=True)
    return text + (f"; {queued} notification(s) queued" if queued else ""), resolved is not None


SUMMARY_COLUMN = 100  # characters of a summary in `incidents list`


def _print_table(incidents: Sequence[Incident]) -> None:
    if not incidents:
        print("no incidents")
        return
    print(f"{'ID':>5}  {'PRI':<3}  {'LEVEL':<8}  {'STATE':<12}  {'OPENED':<20}  SUMMARY")
    held = False
    for i in incidents:
        # held back by a window or a down parent: it pages nobody (user test: it read as a
        # plain "open"); one line a row, however long its summary (`show` has it all)
        state = i.state.value
        if i.suppressed_by and i.state is not IncidentState.RESOLVED:
            state, held = state + "*", True
        summary = " ".join(i.summary.split())
        if len(summary) > SUMMARY_COLUMN:
            summary = summary[: SUMMARY_COLUMN - 1] + "…"
        print(
            f"{i.id:>5}  {i.priority:<3}  {i.level.label:<8}  {state:<12}  "
            f"{_when(i.opened_at):<20}  {summary}"
        )
    if held:
        print("* held back (a maintenance window, a silence, a parent down): it pages nobody")


def _print_incident(i: Incident) -> None:
    from alertd.notify.render import shows_value

    print(f"incident #{i.id}  {i.priority} {i.level.label}  {i.state.value}")
    print(f"  summary:   {i.summary}")
    value = "unknown" if i.value is None else f"{i.value:g}"
    # a pushed alert has no value by nature: no "value unknown" (as in mail and the log)
    shown = f", value {value}" if shows_value(i) else ""
    print(f"  rule:      {i.rule} ({i.metric}){shown}")
    print(f"  labels:    {', '.join(f'{k}={v}' for k, v in i.labels)}")
    print(f"  opened:    {_when(i.opened_at)}")
    if i.acknowledged_at:
        # open again with an acknowledgement on record: it lapsed (ack_expires_after)
        lapsed = " (lapsed)" if i.state is IncidentState.OPEN else ""
        print(f"  acked:     {_when(i.acknowledged_at)} by {i.acknowledged_by}{lapsed}")
    if i.resolved_at:
        by_hand = f" by hand, by {i.resolved_by}" if i.resolved_by else ""
        print(f"  resolved:  {_when(i.resolved_at)}{by_hand}")
