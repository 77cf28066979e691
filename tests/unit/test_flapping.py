"""Flap detection: the weighted state change, and a metric oscillating every poll pages a
few times, then once for "flapping", then once when it settles — not once per transition."""

from __future__ import annotations

from pathlib import Path

from alertd.config.channels import ChannelsFile
from alertd.config.thresholds import Flapping
from alertd.evaluate.evaluator import Evaluator
from alertd.evaluate.flapping import push, state_change_percent
from alertd.incidents.manager import IncidentManager
from alertd.model import Sample, Transition, make_labels
from alertd.state.db import connect
from alertd.state.incidents import IncidentStore
from tests.unit.conftest import T0, rule

LABELS = make_labels({"instance": "web1"})


def test_state_change_percent_weights_newer_changes_more() -> None:
    window = 21
    always = 0
    for i in range(21):
        always = push(always, i % 2 == 0, window)
    assert 95 < state_change_percent(always, 21, window) <= 100  # every check changed
    steady = 0
    for _ in range(21):
        steady = push(steady, True, window)
    assert state_change_percent(steady, 21, window) == 0
    newest = push(push(0, False, window), True, window)  # one change, the newest
    oldest = 0
    for bit in [True] + [False] * 20:
        oldest = push(oldest, bit, window)  # one change, the oldest
    assert state_change_percent(newest, 21, window) > state_change_percent(oldest, 21, window)


def test_oscillating_metric_pages_flapping_not_every_transition(tmp_path: Path) -> None:
    ev = Evaluator([rule(above={"major": 90}, for_=0)], flapping=Flapping())
    store = IncidentStore(connect(tmp_path))
    channels = ChannelsFile.model_validate(
        {"channels": {"pager": {"type": "log"}}, "routes": [{"notify": ["pager"]}]}
    )
    manager = IncidentManager(store, channels)
    pages: list[Transition] = []
    now = T0
    for poll in range(60):
        value = 95.0 if poll < 30 and poll % 2 == 0 else 50.0  # 30 polls flapping, then calm
        ev.ingest([Sample("cpu", LABELS, value, now)])
        events = ev.evaluate(now)
        with store.transaction():
            pages += [n.transition for n in manager.apply(events, now)]
        now += 15
    assert pages.count(Transition.FLAPPING_START) == 1
    assert pages.count(Transition.FLAPPING_STOP) == 1
    assert len(pages) < 10  # a few pages before it was recognised, not 30
    assert pages[-1] is Transition.FLAPPING_STOP
    incidents = store.find()
    flapper = next(i for i in incidents if any(t.kind == "flapping" for t in store.timeline(i.id)))
    kinds = [t.kind for t in store.timeline(flapper.id)]
    assert kinds.count("transition") >= 10  # every transition is on the timeline
    assert flapper.state.value == "resolved"  # it settled on ok


def test_flapping_can_be_switched_off() -> None:
    ev = Evaluator([rule(above={"major": 90}, for_=0)], flapping=Flapping(enabled=False))
    kinds = []
    now = T0
    for poll in range(20):
        ev.ingest([Sample("cpu", LABELS, 95.0 if poll % 2 == 0 else 50.0, now)])
        kinds += [e.kind.value for e in ev.evaluate(now)]
        now += 15
    assert kinds.count("firing") == 10
    assert "flapping_start" not in kinds
