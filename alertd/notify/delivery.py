"""The delivery workers: drive the durable outbox until every intent is delivered or failed.

    outbox (pending) --rate limit--> sending --Notifier.send--> delivered | pending (retry)
                     \\--> held --digest--> one digest intent           | failed -> failover

One loop claims due intents in batches (one transaction marks them ``sending`` before any
provider is called), runs up to ``max_in_flight`` sends per channel concurrently, and writes
their outcomes back in one transaction per loop turn (group commit). A channel whose sends
all hang (a stalled provider) holds up only its own intents: the others are claimed past
its backlog. Retryable failures come back with exponential backoff and jitter, not before a
provider's ``Retry-After``, until the intent is ``max_age`` old; a permanent failure, or
running out of time, fails the intent over to the next channel (``failover``). On start,
intents caught ``sending`` by a crash are recorded as ambiguous and sent again: at least
once, and never again once confirmed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from alertd.clock import Clock
from alertd.errors import FailureReason, NotifyError
from alertd.incidents.routing import not_told_yet
from alertd.log import log_failure
from alertd.log_repeats import Repeats
from alertd.metrics import Metrics
from alertd.model import Notification, Transition
from alertd.notify.alert_entries import gathered
from alertd.notify.notifier import Notifier, Sent, known_unsent, nothing_written_yet
from alertd.notify.outbox import DIGEST_KEY_PREFIX, NOT_SENT, AttemptResult, Intent, OutboxStore
from alertd.notify.ratelimit import Limiter
from alertd.state.db import writers_turn_async

log = logging.getLogger(__name__)

# (the notification that failed, the recipients it failed for, why) -> where it goes next
Failover = Callable[[Notification, tuple[str, ...], str], list[Notification]]


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """How hard to try (``delivery:`` in channels.yaml)."""

    max_age: float = 3600.0  # retry until the intent is this old, then fail over
    backoff: float = 2.0  # the first retry's delay; doubles per attempt (with jitter)
    max_backoff: float = 300.0
    send_timeout: float = 30.0  # one attempt; past it the outcome is ambiguous
    max_in_flight: int = 200  # per channel (DeliveryConfig says why 200)
    batch: int = 512


# seconds between log lines about one channel's retries (per reason), or one failing step
LOG_EVERY = 60.0
FLUSH_DELAY = 0.002  # seconds outcomes wait to share one transaction with the next ones
CLAIM_FRACTION = 8  # a channel with sends in flight claims again once 1/8 of its room is free
UNCONFIGURED_GRACE = 5.0  # seconds an intent for a channel unknown here is tried again
UNCONFIGURED_RETRY = 0.5  # seconds between those tries: the worker's reload is that close
WORKED_LATELY = 60.0  # seconds: a channel that delivered since is not taken for broken by a refusal


def _no_failover(n: Notification, recipients: tuple[str, ...], why: str) -> list[Notification]:
    return []


class Delivery:
    """Sends what the outbox holds through each channel's notifier."""

    def __init__(
        self,
        store: OutboxStore,
        notifiers: Mapping[str, Notifier],
        metrics: Metrics,
        clock: Clock,
        *,
        limiter: Limiter | None = None,
        settings: DeliverySettings | None = None,
        failover: Failover = _no_failover,
    ) -> None:
        self.store = store
        self.notifiers = notifiers
        self.metrics = metrics
        self.clock = clock
        self.limiter = limiter or Limiter()
        self.settings = settings or DeliverySettings()
        self.failover = failover
        # channel -> when a reload here took it away (``channels_removed``)
        self.removed: dict[str, float] = {}
        self._make_due: set[str] = set()  # removed channels whose waiting intents go now
        # channels that refused alertd's credentials for good and delivered nothing since:
        # what they hold fails over at once (until a send there works, or a reload)
        self._refusing: set[str] = set()
        self._refused: set[str] = set()  # channels refused in the batch being recorded
        self._delivered_at: dict[str, float] = {}  # channel -> its last delivery (clock)
        self._wake = asyncio.Event()
        # retries of one channel for one reason, failures of one step of the loop: a line a
        # minute, not one per attempt
        self._repeats = Repeats(LOG_EVERY, clock.monotonic)
        self._stopping = False
        # each send in flight -> when it is overdue (the loop's clock); one watchdog timer
        # cancels the overdue, instead of an asyncio.timeout per send (a tenth of its CPU)
        self._in_flight: dict[asyncio.Task[None], float] = {}
        self._channel_of: dict[asyncio.Task[None], str] = {}
        self._busy: Counter[str] = Counter()  # channel -> its sends in flight
        self._overdue: set[asyncio.Task[None]] = set()
        self._watchdog: asyncio.TimerHandle | None = None
        self._results: list[tuple[AttemptResult, Sent | None]] = []
        # (channel, '' or the recipient) with held intents: what is held is waited for
        self._holding: set[tuple[str, str]] = set()
        self._digest_wait: dict[str, float] = {}  # channel -> when its next digest may go

    # -- control ----------------------------------------------------------------------------
    def wake(self) -> None:
        """New intents were committed: look at the outbox now."""
        self._wake.set()

    def channels_removed(self, before: Iterable[str], now_configured: Iterable[str]) -> None:
        """A reload replaced the channels ``before`` with ``now_configured``: the intents
        waiting for a channel it removed are re-routed at the next turn, without a grace
        (``_young``) or waiting for their next retry."""
        now = self.clock.now()
        kept = set(now_configured)
        gone = set(before) - kept
        self._refusing.clear()  # a reload may have mended the credentials
        self.removed = {c: t for c, t in self.removed.items() if c not in kept}
        self.removed.update((c, now) for c in gone)
        if gone:
            self._make_due |= gone
            self.wake()

    def _due_now_if_removed(self) -> bool:
        """Make what waits for a channel a reload removed due now; True if there was any."""
        channels, self._make_due = self._make_due, set()
        if channels:
            with self.store.transaction():
                self.store.make_due(channels, self.clock.now())
        return bool(channels)

    def recover(self) -> int:
        """Make intents a crash caught in flight due again; return how many there were."""
        now = self.clock.now()
        with self.store.transaction():
            intents = self.store.recover(now)
        for i in intents:
            self.metrics.notification_attempts.labels(i.notification.channel, "ambiguous").inc()
        self._holding = self.store.holding()
        self._remember_recent_sends(now)
        if intents:
            log.warning(
                "%d notification(s) were in flight when alertd stopped; sending them again",
                len(intents),
            )
        return len(intents)

    def _remember_recent_sends(self, now: float) -> None:
        """The rate limits' windows are kept in memory: fill them from the sends of the last
        window's length, so a restart does not let a second burst through."""
        horizon = self.limiter.horizon()
        if horizon <= 0:
            return
        mono = self.clock.monotonic()
        for channel, recipients, at in self.store.sends_since(now - horizon):
            self.limiter.remember(channel, recipients, mono - (now - at))

    def _failed_here(self, where: str, message: str, exc: BaseException) -> None:
        """Count a failure of the loop's own work and log it as ``log_failure`` does (a
        database refusal in one line, anything else with its traceback): the first at once,
        then a line a minute with how many more (a locked database fails every second)."""
        self.metrics.errors.labels("delivery").inc()
        left_out = self._repeats.note(where)
        if left_out is not None:
            more = f" ({left_out} more since the last line)" if left_out else ""
            log_failure(log, message + more, exc)

    async def run(self) -> None:
        """Drive the outbox until ``stop``."""
        while not self._stopping:
            try:
                self.recover()
                break
            except Exception as exc:  # e.g. the database is locked: try again, don't die
                self._failed_here(
                    "recover", "delivery: could not recover the outbox; retrying", exc
                )
                await asyncio.sleep(1.0)
        while not self._stopping:
            self._wake.clear()
            wait: float | None = None
            try:
                busy = await self._turn()
            except Exception as exc:  # a bad row or a locked database must not end delivery
                self._failed_here("drive", "delivery: could not drive the outbox", exc)
                busy, wait = False, 1.0  # and not a log line per millisecond
            if busy:
                await asyncio.sleep(0)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait or self._idle_wait())

    async def _turn(self) -> bool:
        """One turn of the loop, its only writer: record what finished, claim what is due.
        Another process writing meanwhile is waited for off the loop, so sends go on."""
        if self._results and self._in_flight:
            await asyncio.sleep(FLUSH_DELAY)  # let more outcomes share the transaction
        room = self._room()
        due = self._due(room) if room > 0 and not self._stopping else []
        if not (self._results or due or (room > 0 and self._holding) or self._make_due):
            return False
        async with writers_turn_async(self.store.conn):
            remade = self._due_now_if_removed()
            recorded = self.flush()
            # ``stop`` may have come while this turn waited: then claim nothing more
            busy = self._claim_due(due, self._limit(room)) if not self._stopping else False
            busy = busy or remade  # read again at once, with those due now
        if not recorded:
            await asyncio.sleep(1.0)  # a locked or full database: not a try per millisecond
        return busy and recorded

    async def stop(self, drain_seconds: float) -> None:
        """Stop claiming; let sends in flight finish for up to ``drain_seconds``. Those cut
        off stay ``sending`` and are sent again (ambiguous) on the next start, except those
        known to have written nothing yet (waiting for a connection): they are pending again,
        with a "not sent" attempt, and go out plainly on the next start."""
        self._stopping = True
        self._wake.set()
        tasks = list(self._in_flight)
        if tasks:
            log.info(
                "waiting up to %gs for %d notification(s) in flight", drain_seconds, len(tasks)
            )
            _, pending = await asyncio.wait(tasks, timeout=drain_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        async with writers_turn_async(self.store.conn):
            self.flush()

    async def settle(self, within: float = 10.0) -> None:
        """Wait until nothing is in flight and nothing is due (tests, ``notify test``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            self.pump()
            if self._in_flight:
                await asyncio.wait(list(self._in_flight), timeout=0.05)
                continue
            self.flush()
            due = self.store.next_due_at()
            if due is None or due > self.clock.now():
                return
            await asyncio.sleep(0.01)

    def _room_on(self, channel: str) -> int:
        """How many of ``channel``'s intents to claim now: none while it has sends in flight
        and less than 1/``CLAIM_FRACTION`` of ``max_in_flight`` free (fewer, larger claims)."""
        most = self.settings.max_in_flight
        busy = self._busy[channel]  # (a Counter: 0, not stored, for an idle channel)
        room = most - busy
        if busy and room < most // CLAIM_FRACTION:
            return 0
        return room

    def _full(self) -> set[str]:
        """The channels that may claim nothing now."""
        return {channel for channel in self._busy if self._room_on(channel) <= 0}

    def _others(self, full: set[str]) -> list[str]:
        """The channels that may claim while those in ``full`` may not: the configured ones,
        and any channel a reload removed that still has intents (they fail over, and must not
        wait for a stalled channel to have room)."""
        others = [channel for channel in self.notifiers if channel not in full]
        return others + [channel for channel in self._unconfigured() if channel not in full]

    def _unconfigured(self) -> list[str]:
        """The channels with intents that are not configured (here, or any longer)."""
        return [c for c in self.store.channels_with_intents() if c not in self.notifiers]

    def _room(self) -> int:
        """How many intents to claim now, all channels together: as many as the roomiest
        channel takes (a channel without sends in flight: ``max_in_flight``)."""
        if not self._busy:
            return self.settings.max_in_flight
        if any(channel not in self._busy for channel in self.notifiers):
            return self.settings.max_in_flight  # an idle channel
        room = max(self._room_on(channel) for channel in self._busy)
        if room <= 0 and self._unconfigured():
            return self.settings.max_in_flight  # intents to fail over, whatever is full
        return room

    def _idle_wait(self) -> float:
        if self._room() <= 0:
            return 1.0  # every channel is full: a finishing send wakes the loop
        now = self.clock.now()
        waits = [1.0]
        full = self._full()
        if not full:
            due = self.store.next_due_at()
        else:  # a full channel's backlog is not due for us: look at the others only
            dues = [self.store.next_due_at(channel) for channel in self._others(full)]
            due = min((d for d in dues if d is not None), default=None)
        if due is not None:
            waits.append(max(0.0, due - now))
        if self._holding:
            waits.append(0.25)  # a digest may go once a token frees up
        return max(0.001, min(waits))

    # -- claiming ---------------------------------------------------------------------------
    def pump(self) -> bool:
        """Claim what is due and what the rate limits allow; start sending it. Return True
        if there may be more to claim right away."""
        self._due_now_if_removed()
        room = self._room()
        if room <= 0 or self._stopping:
            return False
        return self._claim_due(self._due(room), self._limit(room))

    def _due(self, room: int) -> list[Intent]:
        """What to claim now: the oldest due intents, at most each channel's room. While a
        channel is full, the others' are read through their own index, each channel's oldest
        first, so a stalled channel's backlog is not scanned on every turn."""
        now, limit = self.clock.now(), self._limit(room)
        full = self._full()
        if not full:
            return self.store.due(now, limit, self._room_on)
        due: list[Intent] = []
        for channel in self._others(full):
            due += self.store.due_on(channel, now, min(self._room_on(channel), limit))
        due.sort(key=lambda i: (i.created_at, i.id))  # the oldest first, across channels
        return due[:limit]

    def _limit(self, room: int) -> int:
        return min(room, self.settings.batch)

    def _claim_due(self, due: list[Intent], limit: int) -> bool:
        """Claim ``due`` (read just before, at most ``limit``) in one transaction, folding
        held intents into digests; start the sends. Return True if there may be more to
        claim right away."""
        if not due and not self._holding:
            return False
        now, mono = self.clock.now(), self.clock.monotonic()
        admitted: list[Intent] = []
        held: list[tuple[Intent, str]] = []
        later: list[Intent] = []
        digests: list[Intent] = []
        with self.store.transaction():
            # read before this turn had the lock: the daemon may have superseded some since
            pending = self.store.in_state([i.id for i in due], "pending")
            if self._holding:  # ... and what was held (then nothing is held any more)
                self._holding = self.store.still_held(self._holding)
            for intent in due:
                if intent.id not in pending:
                    continue
                n = intent.notification
                if n.digest:  # a digest waits for room; it is never folded again
                    go = self.limiter.admit(n.channel, n.recipients, mono)
                    (admitted if go else later).append(intent)
                elif (n.channel, "") in self._holding:
                    held.append((intent, ""))  # behind what is already held: order is kept
                else:
                    self._claim(intent, mono, now, admitted, held)
            self.store.mark_sending(admitted, now)
            for intent, held_for in held:
                self.store.hold([intent], now, held_for)
                self._holding.add((intent.notification.channel, held_for))
                self.metrics.notifications_held.labels(intent.notification.channel).inc()
            if later:
                self.store.conn.executemany(
                    "UPDATE outbox SET next_at = ? WHERE id = ?", [(now + 1.0, i.id) for i in later]
                )
            digests = self._fold_digests(now, mono)
        for intent in [*admitted, *digests]:
            self._start(intent)
        return len(due) == limit and bool(admitted or held)

    def _claim(
        self,
        intent: Intent,
        mono: float,
        now: float,
        admitted: list[Intent],
        held: list[tuple[Intent, str]],
    ) -> None:
        """Admit an intent, hold it, or split it: a recipient whose own limit is used up (or
        who has pages held already) is split off and held for them alone; the others go."""
        n = intent.notification
        free, busy = self.limiter.check(n.channel, n.recipients, mono)
        if not free:
            held.append((intent, ""))
            return
        busy += [r for r in n.recipients if (n.channel, r) in self._holding and r not in busy]
        if not busy:
            self.limiter.admit(n.channel, n.recipients, mono)
            admitted.append(intent)
            return
        keep = tuple(r for r in n.recipients if r not in busy)
        if keep:
            intent = self.store.narrow(intent, keep)
            self.limiter.admit(n.channel, keep, mono)
            admitted.append(intent)
            split = busy
        else:
            held.append((self.store.narrow(intent, (busy[0],)), busy[0]))
            split = busy[1:]
        for recipient in split:
            held.append((self.store.split_off(intent, recipient, now), recipient))

    def _fold_digests(self, now: float, mono: float) -> list[Intent]:
        """For each channel (or recipient) holding intents whose limit has room again: one
        digest intent, to the recipient alone when it was their limit; one held intent goes
        out as itself."""
        out = []
        for channel, held_for in sorted(self._holding):
            members = self.store.held(channel, held_for)
            if not members:
                self._holding.discard((channel, held_for))
                continue
            notes = [m.notification for m in members]
            if held_for:
                recipients: tuple[str, ...] = (held_for,)
            else:
                recipients = tuple(dict.fromkeys(r for n in notes for r in n.recipients))
            if not self.limiter.admit(channel, recipients, mono):
                continue
            self._holding.discard((channel, held_for))
            if len(members) == 1:  # a "digest of 1" is that page itself (user test)
                self.store.mark_sending(members, now)
                out += members
                continue
            latest = notes[-1]
            entries, more_alerts = gathered(notes)
            digest = replace(
                latest,
                recipients=recipients,
                key=f"{DIGEST_KEY_PREFIX}{channel}.{held_for}.{members[0].id}-{members[-1].id}",
                digest=tuple(_line(n) for n in notes),
                alerts=(),
                entries=entries,
                more_alerts=more_alerts,
            )
            intent = self.store.fold_digest(digest, members, now)
            self.store.mark_sending([intent], now)
            log.info("digest of %d held notification(s) via %s", len(members), channel)
            out.append(intent)
        return out

    # -- sending ----------------------------------------------------------------------------
    def _start(self, intent: Intent) -> None:
        task = asyncio.get_running_loop().create_task(self._attempt(intent))
        self._in_flight[task] = math.inf  # no deadline until it runs (``_arm``)
        channel = intent.notification.channel
        self._channel_of[task] = channel
        self._busy[channel] += 1
        task.add_done_callback(self._finished)

    def _arm(self, task: asyncio.Task[None]) -> None:
        """Start a send's clock at its first step, not at its creation: uvloop runs due
        timers before new tasks, so a loop stalled past ``send_timeout`` right after
        ``_start`` would have the watchdog cancel a send that never ran, and record nothing."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.send_timeout
        self._in_flight[task] = deadline
        if self._watchdog is None or deadline < self._watchdog.when():
            self._watch_at(loop, deadline)  # (a reload may have shortened send_timeout)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(task, None)
        self._overdue.discard(task)
        channel = self._channel_of.pop(task)
        self._busy[channel] -= 1
        if not self._busy[channel]:
            del self._busy[channel]
        self._wake.set()  # room for more

    def _watch_at(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._watchdog = loop.call_at(when, self._cancel_overdue)

    def _cancel_overdue(self) -> None:
        """Cancel each send past its deadline (``_attempt`` records it as a timeout); come back
        at the next deadline."""
        self._watchdog = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        for task, deadline in self._in_flight.items():
            if deadline <= now and task not in self._overdue:
                self._overdue.add(task)
                task.cancel()
        pending = [
            d for t, d in self._in_flight.items() if t not in self._overdue and d != math.inf
        ]
        if pending:
            self._watch_at(loop, min(pending))

    async def _attempt(self, intent: Intent) -> None:
        n = intent.notification
        notifier = self.notifiers.get(n.channel)
        sent: Sent | None = None
        task = asyncio.current_task()
        assert task is not None
        self._arm(task)
        nothing_written_yet(False)  # not what the task that started this one last heard
        if notifier is None and self._young(intent):
            self._results.append((self._not_configured_yet(intent), None))
            return
        try:
            if notifier is None:
                raise self._no_longer_configured(intent)
            sent = await notifier.send(n)
        except NotifyError as exc:
            result = self._failed(intent, exc)
        except asyncio.CancelledError:
            overdue = task in self._overdue
            if not overdue and not (self._stopping and known_unsent()):
                raise  # stopping mid-send: the intent stays ``sending``, sent again on start
            task.uncancel()
            result = self._cut_off(intent, overdue)
        except TimeoutError as exc:  # a channel's own timeout: the request may have gone out
            result = self._failed(intent, _timed_out(f"timed out: {exc or 'no answer'}"))
        except Exception as exc:  # a bug in a channel must not stop delivery
            log.exception("channel %s crashed sending incident #%d", n.channel, n.incident.id)
            result = self._failed(
                intent,
                NotifyError(
                    f"internal error: {exc!r}", retryable=False, reason=FailureReason.OTHER
                ),
            )
        else:
            attempt = intent.attempts + 1
            detail = "sent" if attempt == 1 else f"sent (attempt {attempt})"
            if sent is not None and sent.provider_id:
                detail += f" as {sent.provider_id}"
            if sent is not None and sent.note:
                detail += f" ({sent.note})"
            if sent is not None and sent.refused:  # not "sent" to everyone: say who not
                detail += "; refused by " + ", ".join(
                    f"{address} ({reply}{', tried again alone' if reply[:1] == '4' else ''})"
                    for address, reply in sent.refused
                )
            result = AttemptResult(
                intent, "ok", detail, "delivered", provider_id=sent.provider_id if sent else ""
            )
        self._results.append((result, sent))  # the loop records it (``_finished`` wakes it)

    def _cut_off(self, intent: Intent, overdue: bool) -> AttemptResult:
        """The outcome of a send cancelled past ``send_timeout`` (``overdue``), or by a stop
        before it wrote anything (it goes out plainly on the next start)."""
        if not overdue:
            why = f"{NOT_SENT}: alertd stopped before it was written"
            return AttemptResult(intent, "retryable", why, "pending", next_at=self.clock.now())
        timeout = f"{self.settings.send_timeout:g}s"
        if known_unsent():  # all that time before a byte of it went out (e.g. no connection)
            why = f"not sent in {timeout}: never written (waiting for a connection or the server)"
            return self._failed(
                intent, NotifyError(why, retryable=True, reason=FailureReason.TIMEOUT)
            )
        return self._failed(intent, _timed_out(f"no answer in {timeout}"))

    def _young(self, intent: Intent) -> bool:
        """An intent for a channel not configured here is either for a channel that a reload
        removed (it fails over), or for one that a reload added, which the daemon, which
        committed it, has applied and this worker not yet (its config arrives a moment
        later). An intent younger than ``UNCONFIGURED_GRACE`` is taken for the second,
        unless a reload here removed its channel after the intent was committed."""
        removed_at = self.removed.get(intent.notification.channel)
        if removed_at is not None and intent.created_at <= removed_at:
            return False
        return self.clock.now() - intent.created_at < UNCONFIGURED_GRACE

    def _not_configured_yet(self, intent: Intent) -> AttemptResult:
        """Try again in ``UNCONFIGURED_RETRY``: not a failure (nothing was sent, no backoff,
        no failure counted); the timeline says so once, at the first try."""
        channel = intent.notification.channel
        why = f"{NOT_SENT} yet: channel {channel} is not configured here yet; trying again"
        log.debug("incident #%d: %s", intent.notification.incident.id, why)
        next_at = self.clock.now() + UNCONFIGURED_RETRY
        quiet = intent.attempts > 0
        return AttemptResult(intent, "retryable", why, "pending", next_at=next_at, quiet=quiet)

    def _no_longer_configured(self, intent: Intent) -> NotifyError:
        return NotifyError(
            f"channel {intent.notification.channel} is no longer configured",
            retryable=False,
            reason=FailureReason.UNCONFIGURED,
        )

    def _failed(self, intent: Intent, exc: NotifyError) -> AttemptResult:
        now = self.clock.now()
        attempt = intent.attempts + 1
        age = now - intent.created_at
        channel = intent.notification.channel
        self.metrics.notifications_failed.labels(channel, exc.reason.value).inc()
        outcome: Any = "ambiguous" if exc.ambiguous else "retryable"
        if exc.retryable and age < self.settings.max_age:
            delay = min(self.settings.max_backoff, self.settings.backoff * 2 ** (attempt - 1))
            delay *= random.uniform(0.8, 1.0)  # spread, and never past max_backoff
            if exc.retry_after is not None:
                delay = max(delay, exc.retry_after)
                if age + delay > self.settings.max_age:  # a provider's wait may be an hour
                    return self._given_up(
                        intent,
                        exc.reason,
                        outcome,
                        f"failed ({exc.reason.value}): {exc}; the provider asks to wait "
                        f"{delay:.0f}s, past delivery.max_age: gave up after {age:.0f}s",
                    )
            left_out = self._repeats.note((channel, exc.reason))
            log.log(
                logging.DEBUG if left_out is None else logging.WARNING,
                "notification for incident #%d via %s failed, retrying in %.0fs: %s%s",
                intent.notification.incident.id,
                channel,
                delay,
                exc,
                f" (and {left_out} more such retries on {channel} since the last line; each "
                "is on its incident's timeline)"
                if left_out
                else "",
            )
            return AttemptResult(
                intent,
                outcome,
                f"attempt {attempt} failed ({exc.reason.value}): {exc}; retrying in {delay:.0f}s",
                "pending",
                next_at=now + delay,
            )
        if not exc.retryable:
            outcome = "ambiguous" if exc.ambiguous else "permanent"
            detail = f"failed ({exc.reason.value}): {exc}"
            if exc.reason is FailureReason.AUTH:  # the channel may be broken, not this send
                self._refused.add(channel)
        else:
            detail = f"failed ({exc.reason.value}): {exc}; gave up after {age:.0f}s"
        return self._given_up(intent, exc.reason, outcome, detail)

    def _given_up(
        self, intent: Intent, reason: FailureReason, outcome: Any, detail: str
    ) -> AttemptResult:
        n = intent.notification
        self.metrics.notifications_given_up.labels(n.channel, reason.value).inc()
        if n.channel in self.removed or n.channel not in self.notifiers:
            # not an error: a reload took the channel away; the team's channels take over,
            # and a page routed to the channel itself is not moved (user test: the log said
            # it was)
            log.warning(
                "incident #%d: channel %s is no longer configured; %s",
                n.incident.id,
                n.channel,
                "its page goes to the team's channels now (the timeline says where)"
                if n.team
                else "its page was routed to the channel itself, not to a team, so it goes "
                "nowhere else",
            )
        else:
            log.error(
                "notification given up: incident #%d via %s after %d attempt(s): %s",
                n.incident.id,
                n.channel,
                intent.attempts + 1,
                detail,
            )
        return AttemptResult(intent, outcome, detail, "failed")

    # -- recording --------------------------------------------------------------------------
    def flush(self) -> bool:
        """Write every finished attempt's outcome, and any failover it causes, at once.
        Return False if the database refused (the outcomes are kept for the next try)."""
        if not self._results:
            # pages a refusing channel came to hold since fail over too (a read first: the
            # writers' lock only when there is something to move)
            if self._refusing and any(c in self._refusing for c, _ in self.store.holding()):
                try:
                    with self.store.transaction():
                        moved = self._fail_over_what_refusing_channels_hold((), self.clock.now())
                except Exception:
                    log.exception("delivery: could not fail over what a refusing channel holds")
                    return False
                if moved:
                    self.wake()
            return True
        batch, self._results = self._results, []
        now = self.clock.now()
        try:
            with self.store.transaction():
                self.store.record(self._not_retried_if_superseded(batch), now)
                follow_ups = sum(
                    self._follow_up_alone(r, sent, now)
                    for r, sent in batch
                    if (r.state == "failed" or (sent is not None and sent.refused))
                    # old news is not failed over nor retried for a recipient: newer news is
                    # on its way to the same people
                    and not self.store.has_newer_news(r.intent)
                )
                follow_ups += self._fail_over_what_refusing_channels_hold(batch, now)
        except Exception as exc:
            # nothing was written (a locked or full database): keep the outcomes and try
            # again soon; until then the intents stay ``sending`` (a crash re-sends them)
            self._failed_here(
                "record", f"delivery: could not record {len(batch)} outcome(s); retrying", exc
            )
            self._results[:0] = batch
            return False
        # counted per (channel, outcome), not per result: a storm's batch is one channel
        attempts = Counter((r.intent.notification.channel, r.outcome) for r, _ in batch)
        for (channel, outcome), count in attempts.items():
            self.metrics.notification_attempts.labels(channel, outcome).inc(count)
        sent = Counter(r.intent.notification.channel for r, _ in batch if r.state == "delivered")
        for channel, count in sent.items():
            self.metrics.notifications_sent.labels(channel).inc(count)
        if follow_ups:
            self.wake()
        return True

    def _fail_over_what_refusing_channels_hold(
        self, batch: Sequence[tuple[AttemptResult, Sent | None]], now: float
    ) -> int:
        """A channel that refused alertd's credentials (a robot removed, a token revoked)
        would refuse the digest of what it holds too, a minute later: those pages fail over
        now instead (user-test finding), and so do those it comes to hold while it refuses
        (verification finding). A channel that delivered anything in the last
        ``WORKED_LATELY`` seconds is not broken (a DingTalk robot refuses a message without
        its keyword with the same code).
        Inside ``flush``'s transaction."""
        for r, _ in batch:
            if r.state == "delivered":
                self._delivered_at[r.intent.notification.channel] = now
        working = {c for c, at in self._delivered_at.items() if now - at < WORKED_LATELY}
        self._refusing = (self._refusing | self._refused) - working
        self._refused = set()
        count = 0
        for channel in sorted(self._refusing):
            held = self.store.held(channel, held_for=None)
            if not held:
                continue
            why = f"{NOT_SENT}: {channel} refused alertd's credentials (auth) on another send"
            results = [AttemptResult(i, "permanent", why, "failed") for i in held]
            self.store.record(results, now)
            count += sum(
                self._follow_up_alone(r, None, now)
                for r in results
                if not self.store.has_newer_news(r.intent)
            )
        return count

    def _not_retried_if_superseded(
        self, batch: Sequence[tuple[AttemptResult, Sent | None]]
    ) -> list[AttemptResult]:
        """The results to record: one that did not go out, of an intent an incident change
        superseded while it was in flight, stays ``superseded`` (not tried again)."""
        results = [r for r, _ in batch]
        unsent = [r.intent.id for r in results if r.state != "delivered"]
        superseded = self.store.in_state(unsent, "superseded")
        return [
            replace(
                r,
                state="superseded",
                next_at=None,
                detail=r.detail.split("; retrying in ")[0]
                + "; not tried again: a newer notification superseded it",
            )
            if r.intent.id in superseded
            else r
            for r in results
        ]

    def _follow_up_alone(self, result: AttemptResult, sent: Sent | None, now: float) -> int:
        """``_follow_up`` in a savepoint: a bug in one failover cannot undo the batch. (Only
        for a failure or a refused recipient: a plain success has nothing to follow up.)"""
        self.store.conn.execute("SAVEPOINT follow_up")
        try:
            count = self._follow_up(result, sent, now)
        except Exception:
            self.store.conn.execute("ROLLBACK TO follow_up")
            log.exception(
                "delivery: could not fail over or retry for incident #%d",
                result.intent.notification.incident.id,
            )
            count = 0
        self.store.conn.execute("RELEASE follow_up")
        return count

    def _follow_up(self, result: AttemptResult, sent: Sent | None, now: float) -> int:
        """Enqueue what a result calls for: failover of a failed intent, and a retry or
        failover for each recipient a provider refused. Return how many intents."""
        n = result.intent.notification
        if result.state == "failed":
            return self.fail_over(result.intent, n.recipients, result.detail, now)
        if sent is None or not sent.refused:
            return 0
        count = 0
        for address, reply in sent.refused:
            if reply[:1] == "4":  # temporary for this recipient: try them again on their own
                retry = replace(n, recipients=(address,), key=f"{n.key}~{address}")
                count += self.store.enqueue(
                    [retry], now, result.intent.id, due_at=now + self.settings.backoff
                )
            else:
                count += self.fail_over(
                    result.intent, (address,), f"{address} refused: {reply}", now
                )
        return count

    def fail_over(self, intent: Intent, recipients: tuple[str, ...], why: str, now: float) -> int:
        """Commit (in the caller's transaction) where ``intent`` goes now that it failed for
        good for ``recipients``; see ``commit_failover``."""
        return commit_failover(
            self.store, self.metrics, self.failover, intent, recipients, why, now
        )


def commit_failover(
    store: OutboxStore,
    metrics: Metrics,
    failover: Failover,
    intent: Intent,
    recipients: tuple[str, ...],
    why: str,
    now: float,
) -> int:
    """Commit (in the caller's transaction) where ``intent`` goes now that it failed for good
    for ``recipients``: a failed send, a refused recipient, a provider's "failed" status.
    Return how many fallback intents were added."""
    n = intent.notification
    proposed = [f for f in failover(n, recipients, why) if f.channel != n.channel]
    if not proposed:
        return 0
    fallbacks = [replace(f, key=failover_key(n, f)) for f in not_told_yet(proposed, store.told(n))]
    failed_for = f"{n.transition.value} via {n.channel} failed{_for(recipients)}"
    lines = [f"{failed_for}: failing over to {f.channel}" for f in fallbacks]
    for channel, addresses in _told_already(proposed, fallbacks).items():
        lines.append(
            f"{failed_for}: no failover to {channel}{_for(addresses)}: this news went there "
            "already (sent, on its way, or given up there too)"
        )
    added = store.enqueue(fallbacks, now, failover_of=intent.id) if fallbacks else 0
    for _ in fallbacks:
        metrics.notification_failovers.labels(n.channel).inc()
    rows = [(n.incident.id, now, n.channel, line) for line in lines]
    if n.digest:  # on the timeline of every incident it holds, as its outcomes are
        members = store.digest_members(intent.id)
        said = [line.removeprefix(f"{n.transition.value} via {n.channel} ") for line in lines]
        rows = [
            (incident_id, now, n.channel, f"{what}: in a digest of {len(members)}: {line}")
            for incident_id, what in members
            for line in said
        ]
    store.conn.executemany(
        "INSERT INTO timeline (incident_id, ts, kind, actor, detail) "
        "VALUES (?, ?, 'notification', ?, ?)",
        rows,
    )
    return added


def _told_already(proposed: list[Notification], kept: list[Notification]) -> dict[str, list[str]]:
    """Per channel, the addresses of ``proposed`` fallbacks that ``kept`` left out (""
    for a channel without addresses)."""
    sent = {(f.channel, a) for f in kept for a in f.recipients or ("",)}
    out: dict[str, list[str]] = {}
    for f in proposed:
        for a in f.recipients or ("",):
            if (f.channel, a) not in sent and a not in out.get(f.channel, []):
                out.setdefault(f.channel, []).append(a)
    return out


def failover_key(original: Notification, fallback: Notification) -> str:
    """The idempotency key of a fallback: one per channel and recipients, so a team's
    members each get theirs and the same fallback is never committed twice."""
    return f"{original.key}>{fallback.channel}:{','.join(fallback.recipients)}"


def _for(addresses: Iterable[str]) -> str:
    """`` for a@example.com, b@example.com``; "" for a channel of its own destination (a
    robot: no one by name)."""
    listed = ", ".join(addresses)
    return f" for {listed}" if listed else ""


def _line(n: Notification) -> str:
    """One incident's line in a digest: ``#12 [P2] opened major: disk full``."""
    i = n.incident
    what = n.transition.value
    if n.transition is Transition.RESOLVED and i.resolved_by:  # not a recovery
        what += f" by hand ({i.resolved_by})"
    return f"#{i.id} [{i.priority}] {what} {i.level.label}: {i.summary}"


def _timed_out(detail: str) -> NotifyError:
    """No answer in time: the request may have gone out, so the outcome is ambiguous."""
    return NotifyError(detail, retryable=True, ambiguous=True, reason=FailureReason.TIMEOUT)
