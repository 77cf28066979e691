"""The durable outbox: notification intents and every delivery attempt, in SQLite.

An intent is committed in the same transaction as the incident change that caused it, before
any provider is called; the delivery workers (``notify/delivery.py``) drive it from here. An
intent moves ``pending -> sending -> delivered | failed`` (``sending`` again after a crash,
with an ``ambiguous`` attempt recorded), or ``pending -> held -> digested`` when a rate limit
folds it into a digest intent. Each attempt's outcome is a row in ``outbox_attempts`` and a
line on the incident's timeline, written in one transaction per batch (group commit).

Newer news wins: when an incident change commits a notification (``enqueue(...,
supersede=True)``), the incident's older intents for the same channel and team that have
not gone out yet become ``superseded`` and are never sent: a provider that was down while an
incident opened and resolved gets "resolved", not a stale "opened" after it. One in flight
then is let finish; if it fails, it is not tried again (``Delivery.flush``) nor failed over
(``has_newer_news``).
Digests stand for several incidents and are never superseded.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Literal, NamedTuple

from alertd import compact_json
from alertd.errors import AttemptOutcome
from alertd.incidents.routing import Told
from alertd.model import (
    AlertEntry,
    Incident,
    IncidentState,
    Labels,
    Level,
    Notification,
    Transition,
)
from alertd.state.db import write_transaction

FINAL_STATES = ("delivered", "failed", "digested", "superseded")
DIGEST_KEY_PREFIX = "digest."  # a digest intent's key: it stands for several incidents
# transitions that cannot follow an earlier notification of the same incident (a new one)
# or are not about the incident (a test message): they supersede nothing
_NOTHING_BEFORE = (Transition.OPENED, Transition.TEST)


def _news_after_news(n: Notification) -> bool:
    """Whether ``n`` may supersede older notifications of its incident."""
    return n.transition not in _NOTHING_BEFORE and not n.digest


# the payload from outbox_body, or (an intent from before migration 12) from its own row
_COLUMNS = (
    "id, key, state, attempts, created_at, team, failover_of, "
    "COALESCE((SELECT payload FROM outbox_body b WHERE b.id = outbox.id), payload), "
    "provider_status"
)


@dataclass(frozen=True, slots=True)
class Intent:
    """One committed notification intent as the workers see it."""

    id: int
    notification: Notification
    state: str
    attempts: int
    created_at: float
    failover_of: int | None = None
    provider_status: str | None = None


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one delivery attempt of one intent came to, and what happens next."""

    intent: Intent
    outcome: AttemptOutcome
    detail: str  # for the attempt row and the timeline
    state: Literal["pending", "delivered", "failed", "superseded"]
    next_at: float | None = None  # when a pending intent is due again
    provider_id: str = ""
    quiet: bool = False  # recorded as an attempt, not on the timeline (it said so already)


# -- (de)serialising a notification as committed ---------------------------------------------
def _incident_json(i: Incident) -> dict[str, Any]:
    return {
        "id": i.id,
        "fingerprint": i.fingerprint,
        "rule": i.rule,
        "metric": i.metric,
        "labels": list(i.labels),
        "level": int(i.level),
        "priority": i.priority,
        "state": i.state.value,
        "summary": i.summary,
        "value": i.value,
        "opened_at": i.opened_at,
        "updated_at": i.updated_at,
        "acknowledged_at": i.acknowledged_at,
        "acknowledged_by": i.acknowledged_by,
        "resolved_at": i.resolved_at,
        "suppressed_by": i.suppressed_by,
        "resolved_by": i.resolved_by,
    }


def _entry_json(e: AlertEntry, incident_labels: Labels) -> list[Any]:
    # a pushed alert's labels are its incident's: not stored twice (None)
    labels = None if e.labels == incident_labels else list(e.labels)
    annotations = list(e.annotations)
    return [e.status, labels, e.starts_at, e.ends_at, e.fingerprint, annotations, e.generator_url]


def _entry(row: list[Any], incident_labels: Labels) -> AlertEntry:
    status, labels, starts_at, ends_at, fingerprint, annotations, *rest = row
    generator_url = rest[0] if rest else ""  # (6 fields: written before generatorURL was)
    return AlertEntry(
        status,
        incident_labels if labels is None else tuple(map(tuple, labels)),
        starts_at,
        ends_at,
        fingerprint,
        tuple(map(tuple, annotations)),
        generator_url,
    )


def dump_notification(n: Notification) -> str:
    """Return ``n`` as JSON: everything a send needs, frozen at commit time."""
    return compact_json.dumps(
        {
            "incident": _incident_json(n.incident),
            "transition": n.transition.value,
            "channel": n.channel,
            "recipients": list(n.recipients),
            "key": n.key,
            "previous_level": int(n.previous_level) if n.previous_level else None,
            "digest": list(n.digest),
            "alerts": list(n.alerts),
            **(
                {"entries": [_entry_json(e, n.incident.labels) for e in n.entries]}
                if n.entries
                else {}
            ),
            **({"more_alerts": n.more_alerts} if n.more_alerts else {}),
            "team": n.team,
            "url": n.url,
            "ack_url": n.ack_url,
        }
    )


# an attempt row for an intent given up without a send (it counts against no rate limit)
NOT_SENT = "not sent"

# pages ask someone to act: moot once someone acknowledged (``drop_pages``)
_PAGES = tuple(
    t.value
    for t in (Transition.OPENED, Transition.REOPENED, Transition.ESCALATED, Transition.REPEAT)
)

# pending intents; the IN lets SQLite use the partial index outbox_due (pending or sending)
_PENDING = "state IN ('pending', 'sending') AND state = 'pending'"
# every state an intent can be in (alertd_outbox_intents shows each, 0 included)
STATES = ("pending", "sending", "held", "digested", "delivered", "failed", "superseded")

# by stored value: a dict lookup is a third of an Enum(value) call, three per notification
_LEVELS = {int(level): level for level in Level}
_STATES = {state.value: state for state in IncidentState}
_TRANSITIONS = {t.value: t for t in Transition}


def load_notification(text: str) -> Notification:
    """Return the notification ``dump_notification`` stored."""
    d = compact_json.loads(text)
    i = d["incident"]
    incident = Incident(
        id=i["id"],
        fingerprint=i["fingerprint"],
        rule=i["rule"],
        metric=i["metric"],
        labels=tuple(map(tuple, i["labels"])),
        level=_LEVELS[i["level"]],
        priority=i["priority"],
        state=_STATES[i["state"]],
        summary=i["summary"],
        value=i["value"],
        opened_at=i["opened_at"],
        updated_at=i["updated_at"],
        acknowledged_at=i["acknowledged_at"],
        acknowledged_by=i["acknowledged_by"],
        resolved_at=i["resolved_at"],
        suppressed_by=i["suppressed_by"],
        resolved_by=i.get("resolved_by"),
    )
    return Notification(
        incident=incident,
        transition=_TRANSITIONS[d["transition"]],
        channel=d["channel"],
        recipients=tuple(d["recipients"]),
        key=d["key"],
        previous_level=_LEVELS[d["previous_level"]] if d["previous_level"] else None,
        digest=tuple(d["digest"]),
        alerts=tuple(d["alerts"]),
        entries=tuple(_entry(e, incident.labels) for e in d.get("entries", ())),
        more_alerts=d.get("more_alerts", 0),
        team=d["team"],
        url=d["url"],
        ack_url=d["ack_url"],
    )


class FailedOver(NamedTuple):
    """A page that failed on ``channel`` for ``recipients`` and that a failover delivered on
    ``to`` for ``to_recipients`` ("" stands for a channel without addresses)."""

    channel: str
    recipients: tuple[str, ...]
    to: str
    to_recipients: tuple[str, ...]
    team: str


def _addresses(recipients: str) -> tuple[str, ...]:
    """An intent's recipients column as addresses; ("",) for a channel without any."""
    return tuple(json.loads(recipients)) or ("",)


class _SentRow(NamedTuple):
    """An intent as ``OutboxStore.told`` reads it."""

    id: int
    key: str
    channel: str
    recipients: str  # JSON list
    team: str
    state: str
    created_at: float
    transition: str
    failover_of: int | None


def _intent(row: tuple[Any, ...]) -> Intent:
    id_, _key, state, attempts, created_at, _team, failover_of, payload, pstatus = row
    return Intent(
        id_, load_notification(payload), state, attempts, created_at, failover_of, pstatus
    )


def _teams(team: str) -> frozenset[str]:
    """The teams of an intent's ``team`` column ("tier1,tier2"; "" for a channel routed to
    itself)."""
    return frozenset(team.split(","))


def _copy_of(key: str, original: str) -> bool:
    """Whether ``key`` is ``original``'s or a copy's: a failover (``>``), a recipient split
    off or retried alone (``~``)."""
    return key == original or key.startswith((original + ">", original + "~"))


def _message(n: Notification) -> str:
    """What the intent says, in one short line (for people reading the table)."""
    i = n.incident
    return f"{n.transition.value} #{i.id} [{i.priority}] {i.level.label}: {i.summary}"[:300]


def _via(transition: str, channel: str, recipients: Sequence[str]) -> str:
    """``opened via ops-mail to a@example.com``, or ``opened via hook`` for a channel with
    its own destination (a robot, a webhook, the log; user test: it read "to -")."""
    to = f" to {', '.join(recipients)}" if recipients else ""
    return f"{transition} via {channel}{to}"


def forget_intents(conn: sqlite3.Connection, which: str, params: Sequence[Any] = ()) -> int:
    """Delete the intents ``which`` selects (``SELECT id FROM outbox ...`` with ``params``),
    their attempts and bodies, within the caller's transaction; return how many. A digest or
    a failover that another intent points at is unlinked first (foreign keys)."""
    conn.execute(f"DELETE FROM outbox_attempts WHERE outbox_id IN ({which})", params)
    conn.execute(f"DELETE FROM outbox_body WHERE id IN ({which})", params)
    conn.execute(
        f"UPDATE outbox SET digest_id = NULL, failover_of = NULL "
        f"WHERE digest_id IN ({which}) OR failover_of IN ({which})",
        (*params, *params),
    )
    return conn.execute(f"DELETE FROM outbox WHERE id IN ({which})", params).rowcount


class OutboxStore:
    """The outbox tables behind one connection (the caller owns transactions)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        prepare: Callable[[Notification], Notification] | None = None,
    ) -> None:
        self.conn = conn
        # applied to each notification as it is committed (the daemon adds its links)
        self.prepare = prepare

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic write (the connection is in autocommit mode otherwise)."""
        with write_transaction(self.conn):
            yield

    # -- intents ----------------------------------------------------------------------------
    def enqueue(
        self,
        notifications: Sequence[Notification],
        now: float,
        failover_of: int | None = None,
        due_at: float | None = None,
        supersede: bool = False,
    ) -> int:
        """Commit (within the caller's transaction) one intent per notification, due at once
        or at ``due_at``; an intent whose idempotency key is already stored is not added
        twice. Return how many were added. ``supersede``: the notifications are news of an
        incident change, which supersede what is still unsent of the incident's older ones
        (module docstring); not for copies of one (failover, digests, split recipients)."""
        if self.prepare is not None:
            notifications = [self.prepare(n) for n in notifications]
        if supersede:
            self._supersede([n for n in notifications if _news_after_news(n)], now)
        rows = [
            (
                n.key,
                n.incident.id,
                n.transition.value,
                n.channel,
                n.team,
                compact_json.dumps(n.recipients),
                now,
                now if due_at is None else due_at,
                now,
                failover_of,
            )
            for n in notifications
        ]
        bodies = [(_message(n), dump_notification(n)) for n in notifications]
        last = self.conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        before = self.conn.total_changes
        self.conn.executemany(
            "INSERT OR IGNORE INTO outbox (key, incident_id, transition, channel, team, "
            "recipients, message, payload, state, created_at, next_at, updated_at, failover_of) "
            "VALUES (?, ?, ?, ?, ?, ?, '', '', 'pending', ?, ?, ?, ?)",
            rows,
        )
        added = self.conn.total_changes - before
        if added == len(rows):  # all new: AUTOINCREMENT gave them the next ids, in order
            first = (last[0] if last else 0) + 1
            self.conn.executemany(
                "INSERT INTO outbox_body (id, message, payload) VALUES (?, ?, ?)",
                [(first + k, message, payload) for k, (message, payload) in enumerate(bodies)],
            )
        elif added:  # some were committed before (the same key): theirs are stored
            self.conn.executemany(
                "INSERT OR IGNORE INTO outbox_body (id, message, payload) "
                "SELECT id, ?, ? FROM outbox WHERE key = ?",
                [(m, p, n.key) for (m, p), n in zip(bodies, notifications, strict=True)],
            )
        return added

    def due(self, now: float, limit: int, room: Callable[[str], int] | None = None) -> list[Intent]:
        """Return pending intents that are due, oldest first, at most ``limit``; with
        ``room``, at most ``room(channel)`` of each channel (the others are not even read)."""
        rows = self.conn.execute(
            f"SELECT channel, {_COLUMNS} FROM outbox WHERE {_PENDING} AND next_at <= ? "
            "ORDER BY next_at LIMIT ?",
            (now, limit),
        )
        if room is None:
            return [_intent(r[1:]) for r in rows]
        taken: Counter[str] = Counter()
        out = []
        for row in rows:
            channel = row[0]
            if taken[channel] < room(channel):
                taken[channel] += 1
                out.append(_intent(row[1:]))
        return out

    def due_on(self, channel: str, now: float, limit: int) -> list[Intent]:
        """Return ``channel``'s pending intents that are due, oldest first, at most ``limit``
        (through its own index: other channels' backlogs are not scanned)."""
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE channel = ? AND {_PENDING} AND next_at <= ? "
            "ORDER BY next_at LIMIT ?",
            (channel, now, limit),
        ).fetchall()
        return [_intent(r) for r in rows]

    def channels_with_intents(self) -> list[str]:
        """Return each channel with intents pending or in flight, in name order: one seek per
        channel through ``outbox_channel_due``, however long a channel's backlog is."""
        out: list[str] = []
        after = ""
        while True:
            row = self.conn.execute(
                "SELECT channel FROM outbox WHERE channel > ? "
                "AND state IN ('pending', 'sending') ORDER BY channel LIMIT 1",
                (after,),
            ).fetchone()
            if row is None:
                return out
            after = row[0]
            out.append(after)

    def backlog(self, now: float, cap: int) -> int:
        """Return how many pending intents are due, counting no further than ``cap``."""
        row = self.conn.execute(
            f"SELECT COUNT(*) FROM (SELECT 1 FROM outbox WHERE {_PENDING} AND next_at <= ? "
            "LIMIT ?)",
            (now, cap),
        ).fetchone()
        return int(row[0])

    def next_due_at(self, channel: str | None = None) -> float | None:
        """Return when the earliest pending intent (of ``channel``) is due, or None."""
        if channel is None:
            row = self.conn.execute(f"SELECT MIN(next_at) FROM outbox WHERE {_PENDING}").fetchone()
        else:
            row = self.conn.execute(
                f"SELECT MIN(next_at) FROM outbox WHERE channel = ? AND {_PENDING}", (channel,)
            ).fetchone()
        return row[0] if row else None

    def oldest_unsent(self) -> float | None:
        """Return when the oldest intent not yet finished (pending, retrying, in flight or
        held by a rate limit) was committed, or None (each read through a partial index)."""
        times = [
            self.conn.execute(f"SELECT MIN(created_at) FROM outbox WHERE {where}").fetchone()[0]
            for where in ("state IN ('pending', 'sending')", "state = 'held'")
        ]
        return min((t for t in times if t is not None), default=None)

    def in_state(self, ids: Sequence[int], state: str) -> set[int]:
        """Which of ``ids`` are in ``state`` now (the daemon may have superseded some since
        the worker read them)."""
        if not ids:
            return set()
        marks = ",".join("?" * len(ids))
        rows = self.conn.execute(
            f"SELECT id FROM outbox WHERE id IN ({marks}) AND state = ?", (*ids, state)
        )
        return {row[0] for row in rows}

    def mark_sending(self, intents: Iterable[Intent], now: float) -> None:
        """Record that an attempt of each intent starts now (committed before the call, so a
        crash mid-send is known as ambiguous on restart)."""
        self.conn.executemany(
            "UPDATE outbox SET state = 'sending', attempts = attempts + 1, updated_at = ? "
            "WHERE id = ?",
            [(now, i.id) for i in intents],
        )

    def hold(self, intents: Iterable[Intent], now: float, held_for: str = "") -> None:
        """Hold intents a rate limit refused; they go out in the next digest of their channel
        (``held_for`` ''), or of the one recipient whose limit was used up."""
        intents = list(intents)
        self.conn.executemany(
            "UPDATE outbox SET state = 'held', held_for = ?, updated_at = ? WHERE id = ?",
            [(held_for, now, i.id) for i in intents],
        )
        self.conn.executemany(
            "INSERT INTO timeline (incident_id, ts, kind, actor, detail) VALUES (?, ?, ?, ?, ?)",
            [
                (
                    n.incident.id,
                    now,
                    "notification",
                    n.channel,
                    f"{_via(n.transition.value, n.channel, n.recipients)}: held by the rate "
                    "limit: it goes out in the next digest",
                )
                for n in (i.notification for i in intents)
            ],
        )

    def held(self, channel: str, held_for: str | None = "") -> list[Intent]:
        """Return the intents held on ``channel`` for ``held_for`` (None: for anyone),
        oldest first."""
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE state = 'held' AND channel = ? "
            "AND (? IS NULL OR held_for = ?) ORDER BY id",
            (channel, held_for, held_for),
        ).fetchall()
        return [_intent(r) for r in rows]

    def holding(self) -> set[tuple[str, str]]:
        """Return (channel, held_for) of everything held."""
        rows = self.conn.execute(
            "SELECT DISTINCT channel, held_for FROM outbox WHERE state = 'held'"
        )
        return {(r[0], r[1]) for r in rows}

    def still_held(self, holding: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of ``holding`` (channel, held_for) still hold anything: one index probe
        each, not a scan of every held intent as ``holding`` does."""
        return {
            (channel, held_for)
            for channel, held_for in holding
            if self.conn.execute(
                "SELECT 1 FROM outbox WHERE channel = ? AND held_for = ? AND state = 'held' "
                "LIMIT 1",
                (channel, held_for),
            ).fetchone()
        }

    def _supersede(self, newer: Sequence[Notification], now: float) -> None:
        """Mark the unsent intents that ``newer`` supersede (same incident, channel, team):
        one waiting (pending, held) gets a timeline line now; one in flight finishes as it
        may (``record``). One SELECT for the batch; usually it finds nothing (the older news
        went out long ago). Digests stand for several incidents: never superseded."""
        if not newer:
            return
        # by incident and channel; a newer notification covers an older one whose teams are
        # all among its own (a resolve to "tier1,tier2" covers tier-1's and tier-2's pages)
        latest: dict[tuple[int, str], list[tuple[frozenset[str], Notification]]] = {}
        for n in newer:
            latest.setdefault((n.incident.id, n.channel), []).append((_teams(n.team), n))
        keys = {n.key for n in newer}  # the same notification committed again: not older
        incident_ids = sorted({n.incident.id for n in newer})
        marks = ",".join("?" * len(incident_ids))
        rows = self.conn.execute(
            "SELECT id, incident_id, channel, team, key, state, transition, recipients "
            f"FROM outbox WHERE incident_id IN ({marks}) "
            "AND state IN ('pending', 'held', 'sending') AND key NOT LIKE ?",
            (*incident_ids, DIGEST_KEY_PREFIX + "%"),
        ).fetchall()
        updates: list[tuple[float, str, int]] = []
        timeline: list[tuple[int, float, str, str, str]] = []
        for row_id, incident_id, channel, team, key, state, transition, recipients in rows:
            older = _teams(team)
            by = next(
                (n for teams, n in latest.get((incident_id, channel), ()) if older <= teams),
                None,
            )
            if by is None or key in keys:
                continue
            what = by.transition.value
            if state == "sending":
                why = f"superseded by the {what} notification while in flight"
            else:
                why = f"superseded by the {what} notification"
                sent = _via(transition, channel, compact_json.loads(recipients))
                line = f"{sent}: not sent: {why}"
                timeline.append((incident_id, now, "superseded", line, channel))
            updates.append((now, why, row_id))
        self.conn.executemany(
            "UPDATE outbox SET state = 'superseded', updated_at = ?, last_error = ? WHERE id = ?",
            updates,
        )
        self.conn.executemany(
            "INSERT INTO timeline (incident_id, ts, kind, detail, actor) VALUES (?, ?, ?, ?, ?)",
            timeline,
        )

    def where_pages_went(
        self, incident_ids: Sequence[int]
    ) -> tuple[dict[int, list[FailedOver]], dict[int, set[tuple[str, str]]]]:
        """For each of ``incident_ids``: its pages that failed on a channel and that a
        failover delivered (its own page's, or a digest's it was in), and the (channel,
        address) pairs its pages reached ("" for a channel without addresses)."""
        failed: dict[int, list[FailedOver]] = {}
        reached: dict[int, set[tuple[str, str]]] = {}
        ids = list(dict.fromkeys(incident_ids))
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                # a page of its own that failed over ...
                "SELECT f.incident_id, o.channel, o.recipients, f.channel, f.recipients, f.team "
                "FROM outbox f JOIN outbox o ON o.id = f.failover_of "
                f"WHERE f.incident_id IN ({marks}) AND f.state = 'delivered' AND f.key NOT LIKE ? "
                # ... or a held page whose digest failed over
                "UNION SELECT m.incident_id, m.channel, m.recipients, f.channel, f.recipients, "
                "f.team FROM outbox m JOIN outbox f ON f.failover_of = m.digest_id "
                f"WHERE m.incident_id IN ({marks}) AND m.state = 'digested' "
                "AND f.state = 'delivered'",
                (*chunk, DIGEST_KEY_PREFIX + "%", *chunk),
            )
            for incident_id, channel, recipients, to, to_recipients, team in rows:
                failed.setdefault(incident_id, []).append(
                    FailedOver(channel, _addresses(recipients), to, _addresses(to_recipients), team)
                )
            rows = self.conn.execute(
                "SELECT o.incident_id, o.channel, o.recipients FROM outbox o "
                f"WHERE o.incident_id IN ({marks}) AND (o.state = 'delivered' OR "
                "(o.state = 'digested' AND EXISTS (SELECT 1 FROM outbox d "
                "WHERE d.id = o.digest_id AND d.state = 'delivered')))",
                chunk,
            )
            for incident_id, channel, recipients in rows:
                reached.setdefault(incident_id, set()).update(
                    (channel, a) for a in _addresses(recipients)
                )
        return failed, reached

    def drop_pages(self, incident_id: int, who: str, now: float) -> int:
        """``incident_id`` was acknowledged by ``who``: its pages still waiting (pending,
        held: not in flight) ask nobody to act any more and are not sent, each with a
        timeline line; news (a level change, the resolve) still goes. Return how many."""
        marks = ",".join("?" * len(_PAGES))
        rows = self.conn.execute(
            "SELECT id, channel, transition, recipients FROM outbox WHERE incident_id = ? "
            f"AND state IN ('pending', 'held') AND transition IN ({marks}) AND key NOT LIKE ?",
            (incident_id, *_PAGES, DIGEST_KEY_PREFIX + "%"),
        ).fetchall()
        why = f"acknowledged by {who} before it went out"
        self.conn.executemany(
            "UPDATE outbox SET state = 'superseded', updated_at = ?, last_error = ? WHERE id = ?",
            [(now, why, row[0]) for row in rows],
        )
        self.conn.executemany(
            "INSERT INTO timeline (incident_id, ts, kind, detail, actor) VALUES (?, ?, ?, ?, ?)",
            [
                (
                    incident_id,
                    now,
                    "superseded",
                    f"{_via(transition, channel, compact_json.loads(recipients))}: not sent: {why}",
                    channel,
                )
                for _, channel, transition, recipients in rows
            ],
        )
        return len(rows)

    def has_newer_news(self, intent: Intent) -> bool:
        """Whether a notification of a later incident change to the same channel and team
        was committed after ``intent`` (not a copy of it: a failover, a split recipient, a
        digest): then ``intent``'s failure is not followed up (no failover of old news)."""
        n = intent.notification
        rows = self.conn.execute(
            "SELECT team FROM outbox WHERE incident_id = ? AND channel = ? "
            "AND id > ? AND failover_of IS NULL AND key NOT LIKE ? AND key NOT LIKE ? "
            # not a sibling from the same change (one SMS intent per recipient)
            "AND NOT (created_at = ? AND transition = ?)",
            (
                n.incident.id,
                n.channel,
                intent.id,
                DIGEST_KEY_PREFIX + "%",
                f"{n.key}~%",
                intent.created_at,
                n.transition.value,
            ),
        )
        teams = _teams(n.team)  # news to these teams and more (every tier paged) is newer too
        return any(teams <= _teams(team) for (team,) in rows)

    def told(self, n: Notification) -> Told:
        """Return where the news ``n`` brings has gone: the intents of the incident change
        that ``n`` (or the intent it is a copy of) came from, and their copies (failovers,
        recipients split off or retried), except any superseded; and whether a later change
        of the incident was committed for one of ``n``'s teams since."""
        root = self._original(n.key)
        if root is None:
            return Told({})
        root_id, root_created, root_transition = root
        rows = [
            _SentRow(*r)
            for r in self.conn.execute(
                "SELECT id, key, channel, recipients, team, state, created_at, transition, "
                "failover_of FROM outbox WHERE incident_id = ? ORDER BY id",
                (n.incident.id,),
            )
        ]

        def of_the_change(r: _SentRow) -> bool:
            return r.created_at == root_created and r.transition == root_transition

        def original(r: _SentRow) -> bool:  # not a failover, not a recipient split off
            return r.failover_of is None and "~" not in r.key

        same_change = [r.key for r in rows if of_the_change(r) and original(r)]
        reached: dict[str, set[str]] = {}
        for r in rows:
            if r.state != "superseded" and any(_copy_of(r.key, k) for k in same_change):
                reached.setdefault(r.channel, set()).update(_addresses(r.recipients))
        teams = _teams(n.team)
        newer = any(
            r.id > root_id
            and original(r)
            and not r.key.startswith(DIGEST_KEY_PREFIX)
            and not of_the_change(r)
            and teams & _teams(r.team)
            for r in rows
        )
        return Told(reached, newer)

    def _original(self, key: str) -> tuple[int, float, str] | None:
        """(id, created_at, transition) of the intent that ``key``'s intent is a copy of (or
        its own, for an original)."""
        row = self.conn.execute(
            "SELECT id, created_at, transition, failover_of FROM outbox WHERE key = ?",
            (key.split("~", 1)[0],),
        ).fetchone()
        row = self._root(row)
        return None if row is None else (row[0], row[1], row[2])

    def _root(self, row: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
        """The first intent of the failover chain ``row`` (id, created_at, transition,
        failover_of) is on: itself, unless it stands in for another."""
        for _ in range(100):  # a failover chain is as long as the failover config, at most
            if row is None or row[3] is None:
                break
            row = self.conn.execute(
                "SELECT id, created_at, transition, failover_of FROM outbox WHERE id = ?",
                (row[3],),
            ).fetchone()
        return row

    def make_due(self, channels: Iterable[str], now: float) -> None:
        """Make the pending intents of ``channels`` due now (a reload removed them: what
        waits for a retry is re-routed at once, not at its next try)."""
        self.conn.executemany(
            f"UPDATE outbox SET next_at = ? WHERE channel = ? AND {_PENDING} AND next_at > ?",
            [(now, channel, now) for channel in channels],
        )

    def narrow(self, intent: Intent, recipients: tuple[str, ...]) -> Intent:
        """Keep only ``recipients`` on an intent (the rest were split off)."""
        n = replace(intent.notification, recipients=recipients)
        self.conn.execute(
            "UPDATE outbox SET recipients = ? WHERE id = ?",
            (compact_json.dumps(recipients), intent.id),
        )
        payload = dump_notification(n)
        cur = self.conn.execute(
            "UPDATE outbox_body SET payload = ? WHERE id = ?", (payload, intent.id)
        )
        if not cur.rowcount:  # an intent from before migration 12
            self.conn.execute("UPDATE outbox SET payload = ? WHERE id = ?", (payload, intent.id))
        return replace(intent, notification=n)

    def split_off(self, intent: Intent, recipient: str, now: float) -> Intent:
        """Commit a copy of ``intent`` for one of its recipients (to be held for them)."""
        n = replace(
            intent.notification,
            recipients=(recipient,),
            key=f"{intent.notification.key}~{recipient}",
        )
        self.enqueue([n], now)
        row = self.conn.execute(f"SELECT {_COLUMNS} FROM outbox WHERE key = ?", (n.key,)).fetchone()
        return _intent(row)

    def fold_digest(self, digest: Notification, members: Sequence[Intent], now: float) -> Intent:
        """Commit a digest intent standing for ``members`` (held intents), now ``digested``."""
        self.enqueue([digest], now)
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE key = ?", (digest.key,)
        ).fetchone()
        intent = _intent(row)
        self.conn.executemany(
            "UPDATE outbox SET state = 'digested', digest_id = ?, updated_at = ? WHERE id = ?",
            [(intent.id, now, m.id) for m in members],
        )
        return intent

    def digest_members(self, digest_id: int) -> list[tuple[int, str]]:
        """Return (incident id, what it said) of each intent a digest stands for (a digest's
        failover stands for the digest's own)."""
        root = self._root(
            self.conn.execute(
                "SELECT id, created_at, transition, failover_of FROM outbox WHERE id = ?",
                (digest_id,),
            ).fetchone()
        )
        digest_id = digest_id if root is None else root[0]
        rows = self.conn.execute(
            "SELECT incident_id, transition || ' via ' || channel FROM outbox "
            "WHERE digest_id = ? ORDER BY id",
            (digest_id,),
        )
        return [(r[0], r[1]) for r in rows]

    # -- attempts ---------------------------------------------------------------------------
    def record(self, results: Sequence[AttemptResult], now: float) -> None:
        """Record attempt outcomes (within the caller's transaction): the intents' new
        state, one attempt row each, and one timeline line per incident told (none for a
        ``quiet`` one)."""
        self.conn.executemany(
            "UPDATE outbox SET state = ?, next_at = COALESCE(?, next_at), updated_at = ?, "
            "provider_id = COALESCE(NULLIF(?, ''), provider_id), "
            "last_error = CASE WHEN ? = 'ok' THEN last_error ELSE ? END WHERE id = ?",
            [
                (r.state, r.next_at, now, r.provider_id, r.outcome, r.detail, r.intent.id)
                for r in results
            ],
        )
        self.conn.executemany(
            "INSERT INTO outbox_attempts (outbox_id, ts, outcome, detail) VALUES (?, ?, ?, ?)",
            [(r.intent.id, now, r.outcome, r.detail) for r in results],
        )
        timeline: list[tuple[int, float, str, str, str]] = []
        for r in results:
            if r.quiet:
                continue
            n = r.intent.notification
            detail = r.detail
            if r.outcome == "ambiguous":  # as `notify test` says it
                detail = f"ambiguous, it may have reached the provider: {detail}"
            line = f"{_via(n.transition.value, n.channel, n.recipients)}: {detail}"
            if n.digest:
                members = self.digest_members(r.intent.id)
                for incident_id, what in members:
                    # a digest's failover goes on another channel than the pages it holds
                    via = "" if what.endswith(f" via {n.channel}") else f" via {n.channel}"
                    timeline.append(
                        (
                            incident_id,
                            now,
                            "notification",
                            f"{what}: in a digest of {len(members)}{via}: {detail}",
                            n.channel,
                        )
                    )
            else:
                timeline.append((n.incident.id, now, "notification", line, n.channel))
        self.conn.executemany(
            "INSERT INTO timeline (incident_id, ts, kind, detail, actor) VALUES (?, ?, ?, ?, ?)",
            timeline,
        )

    def recover(self, now: float) -> list[Intent]:
        """After a restart: every intent caught ``sending`` was in flight when alertd stopped.
        Record an ambiguous attempt (the provider may have it) and make it due again."""
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE state = 'sending' ORDER BY id"
        ).fetchall()
        intents = [_intent(r) for r in rows]
        self.record(
            [
                AttemptResult(
                    i,
                    "ambiguous",
                    "in flight when alertd stopped: sending again",
                    "pending",
                    next_at=now,
                )
                for i in intents
            ],
            now,
        )
        return intents

    def sends_since(self, since: float) -> list[tuple[str, tuple[str, ...], float]]:
        """Return (channel, recipients, when) of each attempt since ``since`` that may have
        reached its provider, oldest first (newest rows only: no scan of older ones). A
        refusal reached it too, and counts against its limit as a success does (a robot
        refusing a message without its keyword: verification finding); only what alertd
        recorded as never sent is left out."""
        rows = self.conn.execute(
            "SELECT o.channel, o.recipients, a.ts, a.detail FROM outbox_attempts a "
            "JOIN outbox o ON o.id = a.outbox_id ORDER BY a.id DESC"
        )
        out: list[tuple[str, tuple[str, ...], float]] = []
        for channel, recipients, ts, detail in rows:
            if ts < since:
                break
            if not detail.startswith(NOT_SENT):
                out.append((channel, tuple(json.loads(recipients)), ts))
        out.reverse()
        return out

    def by_provider_id(self, provider_id: str) -> Intent | None:
        """Return the intent a provider knows as ``provider_id`` (e.g. a MessageSid)."""
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE provider_id = ?", (provider_id,)
        ).fetchone()
        return None if row is None else _intent(row)

    def set_provider_status(self, intent_id: int, status: str, now: float) -> None:
        """Store a provider's delivery status (callers keep it from going backwards)."""
        self.conn.execute(
            "UPDATE outbox SET provider_status = ?, updated_at = ? WHERE id = ?",
            (status, now, intent_id),
        )

    def purge(self, before: float) -> int:
        """Forget finished intents last touched before ``before`` (their outcomes stay on the
        incidents' timelines); return how many."""
        old = (
            "SELECT id FROM outbox "
            "WHERE state IN ('delivered', 'failed', 'digested', 'superseded') AND updated_at < ?"
        )
        gone = forget_intents(self.conn, old, (before,))
        self.conn.execute("DELETE FROM hook_replays WHERE ts < ?", (before,))
        return gone

    def counts(self) -> dict[str, int]:
        """Return how many intents are in each state."""
        return dict(self.conn.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state"))

    def seen_hook(self, token: str, now: float) -> bool:
        """Remember an inbound webhook's idempotency token; return True if it was known."""
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO hook_replays (token, ts) VALUES (?, ?)", (token, now)
        )
        return cur.rowcount == 0
