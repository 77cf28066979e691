"""The rule evaluator: latest samples + rules + prior state + ``now`` -> ``AlertEvent``s.

No I/O. Samples are ingested into per-series slots; each rule keeps the list of series it
applies to with their effective thresholds resolved once, so an evaluation cycle is a tight
loop that skips, with one comparison, every series that is neither breaching nor stateful.

Per (rule, series) the state is: the level firing (if any) and, for each level, since when
the value has breached it without a break. A level fires after breaching for ``for``; a
firing level holds until the value passes back beyond its threshold by ``clear``. An UNKNOWN
sample (failed collection) changes nothing: it never resolves and never advances ``for``.
"""

from __future__ import annotations

from collections.abc import Iterable

from alertd.config.load import RuleSource
from alertd.config.thresholds import Flapping
from alertd.evaluate.flapping import push, state_change_percent
from alertd.evaluate.summary import Summary
from alertd.evaluate.thresholds import ThresholdResolver, Thresholds
from alertd.model import (
    AlertEvent,
    EventKind,
    Labels,
    Level,
    Sample,
    StateRecord,
    fingerprint,
)


class Series:
    """The latest sample of one series."""

    __slots__ = ("labels", "metric", "ts", "value")

    def __init__(self, metric: str, labels: Labels) -> None:
        self.metric = metric
        self.labels = labels
        self.value: float | None = None
        self.ts = 0.0


class _State:
    __slots__ = ("checks", "firing", "firing_since", "flapping", "history", "since")

    def __init__(self) -> None:
        self.firing: Level | None = None
        self.firing_since: float | None = None
        self.since: list[float | None] = [None, None, None, None]  # index = Level value
        self.history = 0  # recent results as bits, newest in bit 0 (flap detection)
        self.checks = 0
        self.flapping = False


class _Binding:
    """One rule applied to one series."""

    __slots__ = ("fingerprint", "series", "state", "th", "trigger")

    def __init__(self, series: Series, th: Thresholds, fp: str, state: _State | None) -> None:
        self.series = series
        self.th = th
        self.trigger = th.trigger
        self.fingerprint = fp
        self.state = state


class _CompiledRule:
    __slots__ = ("above", "bindings", "name", "resolve", "rule", "seen", "summary")

    def __init__(self, source: RuleSource) -> None:
        self.rule = source.rule
        self.name = source.rule.rule_name
        self.above = source.rule.above is not None
        self.summary = Summary(source.rule.summary, self.name, source.rule.metric)
        self.resolve = ThresholdResolver(source.rule)
        self.bindings: list[_Binding] = []
        self.seen = 0  # how many of the metric's series have been considered


class Evaluator:
    """Holds the latest samples and per-series rule state; ``evaluate`` emits changes."""

    def __init__(
        self,
        rules: Iterable[RuleSource],
        restored: Iterable[StateRecord] = (),
        flapping: Flapping | None = None,
    ) -> None:
        self._flap = flapping if flapping is not None and flapping.enabled else None
        self._rules = [_CompiledRule(src) for src in rules]
        self._by_metric: dict[str, list[_CompiledRule]] = {}
        for compiled in self._rules:
            self._by_metric.setdefault(compiled.rule.metric, []).append(compiled)
        self._series: dict[tuple[str, Labels], Series] = {}
        self._series_by_metric: dict[str, list[Series]] = {}
        self._restored: dict[str, StateRecord] = {r.fingerprint: r for r in restored}
        self._orphans_pending = True
        self._changed: dict[str, StateRecord | None] = {}  # fingerprint -> record or deleted

    # -- ingest -------------------------------------------------------------------------
    def ingest(self, samples: Iterable[Sample]) -> None:
        """Record the latest value of each sample's series."""
        table = self._series
        for sample in samples:
            key = (sample.metric, sample.labels)
            series = table.get(key)
            if series is None:
                series = table[key] = Series(sample.metric, sample.labels)
                self._series_by_metric.setdefault(sample.metric, []).append(series)
            series.value = sample.value
            series.ts = sample.ts

    def series(self, metric: str) -> list[Series]:
        return self._series_by_metric.get(metric, [])

    def series_count(self) -> int:
        return len(self._series)

    def latest_samples(self) -> list[Sample]:
        """Return the latest sample of every series (to seed a replacement evaluator)."""
        return [Sample(s.metric, s.labels, s.value, s.ts) for s in self._series.values()]

    # -- evaluate -----------------------------------------------------------------------
    def evaluate(self, now: float) -> list[AlertEvent]:
        """Run every rule over the latest samples; return the state changes."""
        events: list[AlertEvent] = []
        if self._orphans_pending:
            events.extend(self._resolve_orphans(now))
        for compiled in self._rules:
            self._bind_new_series(compiled, now, events)
            for b in compiled.bindings:
                value = b.series.value
                if b.state is None:
                    if value is None:
                        continue
                    if compiled.above:
                        if value <= b.trigger:
                            continue
                    elif value >= b.trigger:
                        continue
                elif value is None:
                    self._unknown(compiled, b)
                    continue
                self._step(compiled, b, value, now, events)
        return events

    def _bind_new_series(self, compiled: _CompiledRule, now: float, out: list[AlertEvent]) -> None:
        all_series = self._series_by_metric.get(compiled.rule.metric, [])
        for series in all_series[compiled.seen :]:
            labels = dict(series.labels)
            th = compiled.resolve(labels)
            fp = fingerprint(compiled.name, series.labels)
            restored = self._restored.pop(fp, None)
            if th is None:
                if restored is not None:
                    self._changed[fp] = None
                    if restored.firing is not None:
                        out.append(self._event_from_record(restored, compiled.summary, now))
                continue
            state = _state_from(restored) if restored is not None else None
            compiled.bindings.append(_Binding(series, th, fp, state))
        compiled.seen = len(all_series)

    def _unknown(self, compiled: _CompiledRule, b: _Binding) -> None:
        """UNKNOWN: a firing level holds (missing data never resolves); pending streaks break,
        so a breach after a gap must last ``for`` again."""
        state = b.state
        assert state is not None
        firing = state.firing or 0
        since = [s if level <= firing else None for level, s in enumerate(state.since)]
        if since == state.since:
            return
        state.since = since
        if state.firing is None:
            b.state = None
            self._changed[b.fingerprint] = None
        else:
            self._changed[b.fingerprint] = self._record(compiled, b, state)

    def _step(
        self, compiled: _CompiledRule, b: _Binding, value: float, now: float, out: list[AlertEvent]
    ) -> None:
        th = b.th
        state = b.state or _State()
        since: list[float | None] = [None, None, None, None]  # levels the rule lacks stay None
        for level, limit in th.levels:
            if (value > limit) if th.above else (value < limit):
                since[level] = state.since[level] or now
        qualified: Level | None = None
        for level, _ in th.levels:
            started = since[level]
            if started is not None and now - started >= th.for_:
                qualified = level
                break
        old = state.firing
        held = th.held(value, old) if old is not None else None
        new = max((lv for lv in (qualified, held) if lv is not None), default=None)
        flap_kind = self._track_flapping(state, new is not None)
        persisted_change = new != old or since != state.since
        if not persisted_change and flap_kind is None and state.history == 0:
            return  # nothing changed: nothing to persist, nothing to say
        state.since = since
        if new != old:
            state.firing = new
            state.firing_since = now if new is not None else None
        # a series that changed state recently stays tracked, so flapping shows across recoveries
        idle = new is None and all(s is None for s in since) and state.history == 0
        b.state = None if idle else state
        if persisted_change or idle:
            self._changed[b.fingerprint] = None if idle else self._record(compiled, b, state)
        labels = b.series.labels

        def event(kind: EventKind, flapping: bool) -> AlertEvent:
            return AlertEvent(
                kind=kind,
                rule=compiled.name,
                metric=compiled.rule.metric,
                labels=labels,
                level=new,
                previous_level=old,
                value=value,
                summary=compiled.summary.render(labels, value, new or old),
                ts=now,
                fingerprint=b.fingerprint,
                flapping=flapping,
            )

        if new != old:
            if old is None:
                kind = EventKind.FIRING
            elif new is None:
                kind = EventKind.RESOLVED
            else:
                kind = EventKind.LEVEL_CHANGED
            during = state.flapping or flap_kind is EventKind.FLAPPING_STOP
            out.append(event(kind, during))
        if flap_kind is not None:
            out.append(event(flap_kind, flap_kind is EventKind.FLAPPING_START))

    def _track_flapping(self, state: _State, firing: bool) -> EventKind | None:
        """Record this result; return FLAPPING_START/STOP when the series crosses a threshold."""
        flap = self._flap
        if flap is None:
            return None
        state.history = push(state.history, firing, flap.window)
        state.checks = min(state.checks + 1, flap.window)
        if state.history == 0 and not state.flapping:
            return None
        percent = state_change_percent(state.history, state.checks, flap.window)
        if not state.flapping and percent >= flap.high:
            state.flapping = True
            return EventKind.FLAPPING_START
        if state.flapping and percent <= flap.low:
            state.flapping = False
            return EventKind.FLAPPING_STOP
        return None

    def _resolve_orphans(self, now: float) -> list[AlertEvent]:
        """Resolve restored alerts whose rule no longer exists (removed on reload)."""
        self._orphans_pending = False
        names = {c.name for c in self._rules}
        events = []
        for fp, record in list(self._restored.items()):
            if record.rule not in names:
                del self._restored[fp]
                self._changed[fp] = None
                if record.firing is not None:
                    events.append(self._event_from_record(record, None, now))
        return events

    @staticmethod
    def _event_from_record(record: StateRecord, summary: Summary | None, now: float) -> AlertEvent:
        text = (summary or Summary(None, record.rule, record.metric)).render(
            record.labels, None, record.firing
        )
        return AlertEvent(
            kind=EventKind.RESOLVED,
            rule=record.rule,
            metric=record.metric,
            labels=record.labels,
            level=None,
            previous_level=record.firing,
            value=None,
            summary=f"{text} (rule no longer applies)",
            ts=now,
            fingerprint=record.fingerprint,
        )

    # -- state persistence --------------------------------------------------------------
    @staticmethod
    def _record(compiled: _CompiledRule, b: _Binding, state: _State) -> StateRecord:
        return StateRecord(
            fingerprint=b.fingerprint,
            rule=compiled.name,
            metric=compiled.rule.metric,
            labels=b.series.labels,
            firing=state.firing,
            firing_since=state.firing_since,
            since=(state.since[1], state.since[2], state.since[3]),
        )

    def take_changes(self) -> dict[str, StateRecord | None]:
        """Return and forget the state changes since the last call (None = state cleared)."""
        changed, self._changed = self._changed, {}
        return changed

    def export_state(self) -> list[StateRecord]:
        """Return every live state, including restored ones whose series hasn't reappeared."""
        records = list(self._restored.values())
        for compiled in self._rules:
            for b in compiled.bindings:
                if b.state is not None:
                    records.append(self._record(compiled, b, b.state))
        return records


def _state_from(record: StateRecord) -> _State:
    state = _State()
    state.firing = record.firing
    state.firing_since = record.firing_since
    state.since = [None, *record.since]
    return state
