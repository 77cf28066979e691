"""SnmpCollector on the recorded walk: exact rates, Counter32 wraps, Counter64 resets, agent
restarts, the 32-bit fallback, and every malformed-reply case (counted, logged once, no hang).

The agent is the in-process fake (``tests/fake_snmp_agent.py``) serving
``tests/data/snmp/localhost-if-mib.walk``; time is a ``FakeClock`` moved by the test, with the
agent's sysUpTime moved along, so rates are exact: delta / elapsed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from alertd.clock import FakeClock
from alertd.collect.schedule import UP_METRIC, CollectionScheduler, CollectJob
from alertd.collect.snmp.ber import parse_oid
from alertd.collect.snmp.collector import SnmpCollector, community_connector
from alertd.collect.snmp.transport import SnmpRequestError, SnmpTransport
from alertd.config.collectors import SnmpTarget
from alertd.config.load import load_config
from alertd.errors import CollectError, CollectTimeoutError
from alertd.metrics import Metrics
from alertd.model import Sample, make_labels
from tests.fake_snmp_agent import FakeSnmpAgent, load_varbinds

REPO = Path(__file__).resolve().parents[2]
PROFILES = load_config(REPO).profiles
LABELS = make_labels({"instance": "sw1", "site": "lab"})
COMMUNITY = "public"
TIMEOUT, RETRIES = 0.2, 1
BUDGET = TIMEOUT * (RETRIES + 1) + 0.5  # the longest a failed poll may take, with a margin

SYS_UPTIME = parse_oid("1.3.6.1.2.1.1.3.0")
IF_IN_OCTETS = "1.3.6.1.2.1.2.2.1.10"
IF_OUT_OCTETS = "1.3.6.1.2.1.2.2.1.16"
IF_IN_ERRORS = "1.3.6.1.2.1.2.2.1.14"
IF_HC_IN_OCTETS = "1.3.6.1.2.1.31.1.1.1.6"
IF_HC_OUT_OCTETS = "1.3.6.1.2.1.31.1.1.1.10"
RX = "snmp_interface_receive_bytes_per_second"
RX_ERRORS = "snmp_interface_receive_errors_per_second"
RATE_METRICS = {
    RX,
    "snmp_interface_transmit_bytes_per_second",
    RX_ERRORS,
    "snmp_interface_transmit_errors_per_second",
    "snmp_interface_receive_discards_per_second",
    "snmp_interface_transmit_discards_per_second",
}
# the last interface of the recording (eth0 today); any would do, the others are checked too
IF = str(max(oid[-1] for oid in load_varbinds() if oid[:-1] == parse_oid(IF_HC_IN_OCTETS)))


@pytest.fixture
async def agent() -> AsyncIterator[FakeSnmpAgent]:
    async with FakeSnmpAgent(community=COMMUNITY.encode()) as a:
        yield a


@pytest.fixture
async def transport() -> AsyncIterator[SnmpTransport]:
    t = SnmpTransport(max_in_flight=10)
    await t.start()
    yield t
    t.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def collector_for(
    agent: FakeSnmpAgent,
    transport: SnmpTransport,
    clock: FakeClock,
    *,
    version: str = "v2c",
    profiles: tuple[str, ...] = ("system", "if-mib"),
) -> SnmpCollector:
    host, port = agent.address
    target = SnmpTarget.model_validate(
        {
            "address": host,
            "port": port,
            "version": version,
            "community": COMMUNITY,
            "timeout": TIMEOUT,
            "retries": RETRIES,
            "profiles": list(profiles),
        }
    )
    connect = community_connector(target, transport, COMMUNITY.encode())
    return SnmpCollector(target, [PROFILES[p] for p in profiles], LABELS, clock, connect)


def tick(agent: FakeSnmpAgent, clock: FakeClock, seconds: float) -> None:
    """Let ``seconds`` pass on both sides: the poller's clock and the agent's sysUpTime."""
    clock.advance(seconds)
    uptime = agent.get_value(SYS_UPTIME)
    assert uptime is not None
    assert isinstance(uptime.value, int)
    agent.set(SYS_UPTIME, uptime.value + round(seconds * 100))


def rates(samples: list[Sample], metric: str) -> dict[str, float | None]:
    """ifIndex -> value of ``metric``."""
    return {dict(s.labels)["ifIndex"]: s.value for s in samples if s.metric == metric}


def rate_samples(samples: list[Sample]) -> list[Sample]:
    return [s for s in samples if s.metric in RATE_METRICS]


def counter(agent: FakeSnmpAgent, column: str, index: str = IF) -> int:
    vb = agent.get_value(f"{column}.{index}")
    assert vb is not None
    assert isinstance(vb.value, int)
    return vb.value


# ---------------------------------------------------------------------------------------------
# Rates


@pytest.mark.parametrize("version", ["v1", "v2c"])
async def test_first_poll_has_no_rates_second_poll_is_delta_over_elapsed(
    agent, transport, clock, version
) -> None:
    poller = collector_for(agent, transport, clock, version=version)
    first = await poller.collect()
    assert rates(first, "snmp_interface_oper_status")  # the interfaces are there
    assert rate_samples(first) == []  # no rate from a single value
    tick(agent, clock, 10)
    hc = counter(agent, IF_HC_IN_OCTETS)
    agent.set(f"{IF_HC_IN_OCTETS}.{IF}", hc + 12_345)  # Counter64
    agent.set(f"{IF_IN_ERRORS}.{IF}", counter(agent, IF_IN_ERRORS) + 7)  # Counter32
    second = await poller.collect()
    assert rates(second, RX)[IF] == 1234.5
    assert rates(second, RX_ERRORS)[IF] == 0.7
    others = [s for s in rate_samples(second) if dict(s.labels)["ifIndex"] != IF]
    assert others
    assert all(s.value == 0.0 for s in others)
    assert poller.rates.restarts == 0
    assert transport.dropped == {}


async def test_counter32_wrap_near_2_32_is_a_small_rate(agent, transport, clock) -> None:
    poller = collector_for(agent, transport, clock)
    agent.set(f"{IF_IN_ERRORS}.{IF}", 2**32 - 100)
    await poller.collect()
    tick(agent, clock, 10)
    agent.set(f"{IF_IN_ERRORS}.{IF}", 50)
    assert rates(await poller.collect(), RX_ERRORS)[IF] == 15.0  # 150 over 10 s


async def test_counter64_going_backwards_gives_no_rate_that_poll(agent, transport, clock) -> None:
    poller = collector_for(agent, transport, clock)
    agent.set(f"{IF_HC_IN_OCTETS}.{IF}", 2**63)
    await poller.collect()
    tick(agent, clock, 10)
    agent.set(f"{IF_HC_IN_OCTETS}.{IF}", 1_000)  # a reset, never a wrap of 2**64
    second = rates(await poller.collect(), RX)
    assert IF not in second
    assert second
    assert all(v == 0.0 for v in second.values())
    tick(agent, clock, 10)
    agent.set(f"{IF_HC_IN_OCTETS}.{IF}", 3_000)
    assert rates(await poller.collect(), RX)[IF] == 200.0
    assert poller.rates.restarts == 0


async def test_agent_restart_reseeds_every_counter(agent, transport, clock, caplog) -> None:
    poller = collector_for(agent, transport, clock)
    agent.set(SYS_UPTIME, 360_000)  # up for an hour
    await poller.collect()
    tick(agent, clock, 10)
    assert rate_samples(await poller.collect())
    clock.advance(10)
    agent.set(SYS_UPTIME, 500)  # restarted 5 s ago: every counter starts again near 0
    agent.set(f"{IF_HC_IN_OCTETS}.{IF}", 100)
    agent.set(f"{IF_IN_ERRORS}.{IF}", 1)  # Counter32 lower: would look like a wrap
    with caplog.at_level(logging.INFO, logger="alertd.collect.snmp.collector"):
        after = await poller.collect()
    assert poller.rates.restarts == 1
    assert rate_samples(after) == []  # no rate at all, never a spike
    assert rates(after, "snmp_interface_oper_status")  # the rest of the poll is there
    assert "restarted (sysUpTime went back)" in caplog.text
    tick(agent, clock, 10)
    agent.set(f"{IF_HC_IN_OCTETS}.{IF}", 1_100)
    again = await poller.collect()
    assert rates(again, RX)[IF] == 100.0
    assert len(rate_samples(again)) == len(RATE_METRICS) * len(rates(again, RX))
    assert poller.rates.restarts == 1


async def test_restart_missed_by_the_polls_is_still_detected(agent, transport, clock) -> None:
    poller = collector_for(agent, transport, clock)
    agent.set(SYS_UPTIME, 3_000)  # the device booted 30 s ago
    agent.set(f"{IF_IN_ERRORS}.{IF}", 4_000_000_000)
    await poller.collect()
    # It reboots; polls fail for 3 minutes; when it answers again it has been up 60 s: more
    # than the 30 s seen last time, but far less than the 180 s that passed.
    clock.advance(180)
    agent.set(SYS_UPTIME, 6_000)
    agent.set(f"{IF_IN_ERRORS}.{IF}", 5)
    after = await poller.collect()
    assert poller.rates.restarts == 1
    assert IF not in rates(after, RX_ERRORS)  # today: (5 - 4e9 + 2**32) / 180 = 1.6M errors/s


async def test_hc_counters_absent_fall_back_to_32_bit(agent, transport, clock) -> None:
    assert agent.remove(IF_HC_IN_OCTETS)
    assert agent.remove(IF_HC_OUT_OCTETS)
    poller = collector_for(agent, transport, clock)
    first = await poller.collect()
    assert rate_samples([s for s in first if s.metric == RX]) == []
    tick(agent, clock, 10)
    agent.set(f"{IF_IN_OCTETS}.{IF}", 2**32 - 500)
    agent.set(f"{IF_OUT_OCTETS}.{IF}", counter(agent, IF_OUT_OCTETS) + 800)
    second = await poller.collect()
    tick(agent, clock, 10)
    agent.set(f"{IF_IN_OCTETS}.{IF}", 1_500)  # and the 32-bit fallback wraps
    third = await poller.collect()
    assert rates(second, "snmp_interface_transmit_bytes_per_second")[IF] == 80.0
    assert rates(third, RX)[IF] == 200.0  # 500 up to the wrap + 1500, over 10 s
    assert poller._uses_fallback == {IF_HC_IN_OCTETS, IF_HC_OUT_OCTETS}


async def test_hc_counters_vanishing_mid_run_give_no_bogus_rate(agent, transport, clock) -> None:
    hc = 10 * 2**32 + 5_000  # a busy link: 40 GiB in, so far
    agent.set(f"{IF_HC_IN_OCTETS}.{IF}", hc)
    agent.set(f"{IF_IN_OCTETS}.{IF}", hc % 2**32)  # the 32-bit view of the same counter
    poller = collector_for(agent, transport, clock)
    await poller.collect()
    tick(agent, clock, 10)
    agent.remove(IF_HC_IN_OCTETS)  # e.g. the agent came back without ifXTable counters
    agent.set(f"{IF_IN_OCTETS}.{IF}", (hc + 1_000) % 2**32)
    second = await poller.collect()
    value = rates(second, RX).get(IF)
    assert value is None or value == 100.0  # today: about -3.9e9 bytes/s


# ---------------------------------------------------------------------------------------------
# Malformed replies: an error within the retry budget, each counted by its reason


@pytest.mark.parametrize(
    ("fault", "error", "dropped"),
    [
        ("truncated", SnmpRequestError, {"truncated": 1}),  # at once: no retry of a bad reply
        ("wrong_request_id", CollectTimeoutError, {"unknown_request_id": RETRIES + 1}),
        ("garbage", CollectTimeoutError, {"undecodable": RETRIES + 1}),
    ],
)
async def test_malformed_reply_fails_the_poll_in_time_and_is_counted(
    agent, transport, clock, fault, error, dropped
) -> None:
    poller = collector_for(agent, transport, clock)
    await poller.collect()
    agent.fault = fault
    started = time.monotonic()
    async with asyncio.timeout(5):
        with pytest.raises(error) as err:
            await poller.collect()
    assert time.monotonic() - started < BUDGET
    assert isinstance(err.value, CollectError)
    assert transport.dropped == dropped
    agent.fault = None  # and the next poll is fine again
    tick(agent, clock, 10)
    assert rate_samples(await poller.collect())


async def test_oids_not_increasing_fail_the_poll_quickly(agent, transport, clock) -> None:
    poller = collector_for(agent, transport, clock)
    agent.fault = "loop"
    async with asyncio.timeout(5):
        with pytest.raises(SnmpRequestError) as err:
            await poller.collect()
    assert err.value.reason == "oid_not_increasing"


async def test_no_such_object_everywhere_is_no_samples_not_a_crash(agent, transport, clock) -> None:
    poller = collector_for(agent, transport, clock)
    await poller.collect()
    agent.fault = "no_such_object"
    tick(agent, clock, 10)
    assert await poller.collect() == []
    assert transport.dropped["no_such_object"] > 0  # counted per reason, not silent


async def test_late_duplicate_replies_are_dropped_as_unknown_request_id(
    agent, transport, clock
) -> None:
    expected = await collector_for(agent, transport, clock).collect()
    asked = sum(agent.requests.values())
    agent.fault = "duplicate_reply"
    agent.duplicate_delay = 0.02  # the copy comes after its request was answered
    got = await collector_for(agent, transport, clock).collect()
    assert got == expected
    await asyncio.sleep(0.1)
    duplicates = sum(agent.requests.values()) - asked
    assert transport.dropped == {"unknown_request_id": duplicates}


async def test_immediate_duplicate_replies_do_not_change_the_result(
    agent, transport, clock
) -> None:
    expected = await collector_for(agent, transport, clock).collect()
    agent.fault = "duplicate_reply"
    assert await collector_for(agent, transport, clock).collect() == expected


async def test_immediate_duplicate_replies_are_counted(agent, transport, clock) -> None:
    agent.fault = "duplicate_reply"
    await collector_for(agent, transport, clock).collect()
    await asyncio.sleep(0.05)
    assert sum(transport.dropped.values()) == sum(agent.requests.values())


# ---------------------------------------------------------------------------------------------
# Through the scheduler: /metrics counts every drop by reason, the log says it once per reason


@pytest.fixture
async def wired(
    agent: FakeSnmpAgent, clock: FakeClock
) -> AsyncIterator[tuple[CollectionScheduler, CollectJob, CollectorRegistry, list[Sample]]]:
    registry = CollectorRegistry()
    metrics = Metrics(registry)

    def on_drop(reason: str) -> None:  # as App._snmp_dropped
        metrics.snmp_replies_dropped.labels(reason).inc()

    transport = SnmpTransport(max_in_flight=10, on_drop=on_drop)
    await transport.start()
    try:
        received: list[Sample] = []
        sched = CollectionScheduler(received.extend, metrics, clock)
        poller = collector_for(agent, transport, clock)
        job = CollectJob("snmp:sw1", 30.0, poller, LABELS, unreachable_after=2)
        yield sched, job, registry, received
    finally:
        transport.close()


def dropped_total(registry: CollectorRegistry, reason: str) -> float:
    value = registry.get_sample_value("alertd_snmp_replies_dropped_total", {"reason": reason})
    return value or 0.0


def up_values(received: list[Sample]) -> list[float | None]:
    return [s.value for s in received if s.metric == UP_METRIC]


async def test_drops_are_counted_per_reason_in_metrics_and_logged_once(
    agent, clock, wired, caplog
) -> None:
    sched, job, registry, received = wired
    caplog.set_level(logging.WARNING)
    await sched.run_job(job)
    faults = {"garbage": "undecodable", "wrong_request_id": "unknown_request_id"}
    for fault in faults:
        agent.fault = fault
        for _ in range(3):
            tick(agent, clock, 30)
            async with asyncio.timeout(BUDGET + 1):
                await sched.run_job(job)
    agent.fault = "truncated"
    for _ in range(2):
        await sched.run_job(job)
    for reason in faults.values():
        assert dropped_total(registry, reason) == 3 * (RETRIES + 1)  # every try's reply
    assert dropped_total(registry, "truncated") == 2
    errors = registry.get_sample_value("alertd_collection_errors_total", {"collector": job.name})
    assert errors == 8
    assert up_values(received) == [1.0, None, *[0.0] * 7]  # soft, then "unreachable"
    drop_logs = [r.getMessage() for r in caplog.records if "dropping a reply" in r.getMessage()]
    assert sorted(drop_logs) == sorted(
        f"snmp: dropping a reply ({reason}); counted from now on"
        for reason in ["undecodable", "unknown_request_id", "truncated"]
    )

    agent.fault = None
    received.clear()
    tick(agent, clock, 30)
    await sched.run_job(job)
    assert up_values(received) == [1.0]
    assert all(s.value is not None and s.value >= 0 for s in rate_samples(received))


@pytest.mark.parametrize(
    ("fault", "reason"), [("loop", "oid_not_increasing"), ("no_such_object", "no_such_object")]
)
async def test_walk_faults_are_counted_per_reason(agent, clock, wired, fault, reason) -> None:
    sched, job, registry, _ = wired
    agent.fault = fault
    await sched.run_job(job)
    counted = [
        s
        for metric in registry.collect()
        for s in metric.samples
        if s.labels.get("reason") == reason and s.name.endswith("_total") and s.value > 0
    ]
    assert counted
