"""The SNMP poller against a real net-snmp snmpd on 127.0.0.1 (port picked at run time)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from alertd.clock import SystemClock
from alertd.collect.schedule import UP_METRIC, CollectionScheduler, CollectJob
from alertd.collect.snmp.collector import SnmpCollector, community_connector
from alertd.collect.snmp.transport import SnmpTransport
from alertd.config.collectors import SnmpTarget
from alertd.config.load import load_config
from alertd.errors import CollectTimeoutError
from alertd.metrics import Metrics
from alertd.model import Sample, make_labels
from tests.snmp_agent import SnmpAgent, agent_or_skip

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PROFILES = load_config(REPO).profiles
LABELS = make_labels({"instance": "sw1", "site": "lab", "criticality": "high"})


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[SnmpAgent]:
    a = agent_or_skip(workdir=tmp_path / "snmpd", sys_name="core-sw1")
    a.start()
    try:
        yield a
    finally:
        a.close()


@pytest.fixture
async def transport() -> AsyncIterator[SnmpTransport]:
    t = SnmpTransport(max_in_flight=10)
    await t.start()
    yield t
    t.close()


def collector_for(
    agent: SnmpAgent, transport: SnmpTransport, community: str | None = None
) -> SnmpCollector:
    host, port = agent.address
    target = SnmpTarget.model_validate(
        {
            "address": host,
            "port": port,
            "community": community or agent.community,
            "timeout": 0.5,
            "retries": 0,
            "profiles": ["system", "if-mib", "host-resources", "ucd"],
        }
    )
    profiles = [PROFILES[name] for name in target.profiles]
    connect = community_connector(target, transport, (community or agent.community).encode())
    return SnmpCollector(target, profiles, LABELS, SystemClock(), connect)


def by_metric(samples: list[Sample], metric: str) -> list[Sample]:
    return [s for s in samples if s.metric == metric]


async def test_poll_produces_system_interface_storage_and_memory_samples(agent, transport) -> None:
    poller = collector_for(agent, transport)
    first = await poller.collect()
    (info,) = by_metric(first, "snmp_system_info")
    assert dict(info.labels)["sysName"] == "core-sw1"
    assert all(
        dict(s.labels)["instance"] == "sw1" and dict(s.labels)["site"] == "lab" for s in first
    )
    (uptime,) = by_metric(first, "snmp_uptime_seconds")
    assert uptime.value is not None
    assert 0 <= uptime.value < 3600
    lo = [
        s
        for s in by_metric(first, "snmp_interface_oper_status")
        if dict(s.labels).get("ifName") == "lo"
    ]
    assert len(lo) == 1
    assert lo[0].value == 1.0
    assert dict(lo[0].labels)["ifIndex"].isdigit()
    assert by_metric(first, "snmp_interface_receive_bytes_per_second") == []  # no rate yet
    storage = by_metric(first, "snmp_storage_used_percent")
    assert storage
    assert all(s.value is not None and 0 <= s.value <= 100 for s in storage)
    (mem,) = by_metric(first, "snmp_memory_used_percent")
    assert mem.value is not None
    assert 0 < mem.value < 100
    assert {dict(s.labels)["laNames"] for s in by_metric(first, "snmp_load_average")} == {
        "Load-1",
        "Load-5",
        "Load-15",
    }

    await asyncio.sleep(1.1)
    second = await poller.collect()
    rates = by_metric(second, "snmp_interface_receive_bytes_per_second")
    assert rates
    assert all(s.value is not None and s.value >= 0 for s in rates)
    util = by_metric(second, "snmp_interface_receive_utilization_percent")
    assert util
    assert all(s.value is not None and 0 <= s.value <= 100 for s in util)
    assert {s.value for s in by_metric(second, "snmp_interface_link_down")} <= {0.0, 1.0}
    assert transport.dropped == {}


async def test_wrong_community_times_out_cleanly(agent, transport) -> None:
    poller = collector_for(agent, transport, community="not-the-community")
    with pytest.raises(CollectTimeoutError, match=r"timeout after 0\.5s"):
        await poller.collect()


async def test_unanswered_polls_are_unknown_then_down_and_recover(agent, transport) -> None:
    received: list[Sample] = []
    sched = CollectionScheduler(received.extend, Metrics(CollectorRegistry()), SystemClock())
    job = CollectJob("snmp:sw1", 30.0, collector_for(agent, transport), LABELS, unreachable_after=2)
    await sched.run_job(job)
    assert received[-1].metric == UP_METRIC
    assert received[-1].value == 1.0
    known = {(s.metric, s.labels) for s in received[:-1]}

    agent.pause()  # the device stops answering but keeps its counters
    ups = []
    for _ in range(2):
        received.clear()
        await sched.run_job(job)
        ups.append(received[-1].value)
        unknown = received[:-1]
        assert {(s.metric, s.labels) for s in unknown} == known
        assert all(s.value is None for s in unknown)  # UNKNOWN, never a recovery
    assert ups == [None, 0.0]  # soft, then hard: "device unreachable"

    agent.resume()
    received.clear()
    await sched.run_job(job)
    assert received[-1].value == 1.0
    rates = by_metric(received, "snmp_interface_receive_bytes_per_second")
    assert all(s.value is not None and s.value < 50e6 for s in rates)  # no spike


async def test_agent_restart_reseeds_counters_instead_of_spiking(agent, transport) -> None:
    poller = collector_for(agent, transport)
    await poller.collect()
    await asyncio.sleep(1.1)
    assert by_metric(await poller.collect(), "snmp_interface_receive_bytes_per_second")
    agent.restart()  # sysUpTime goes back to ~0: every counter is re-seeded
    after = await poller.collect()
    assert poller.rates.restarts == 1
    assert by_metric(after, "snmp_interface_receive_bytes_per_second") == []
    await asyncio.sleep(1.1)
    again = by_metric(await poller.collect(), "snmp_interface_receive_bytes_per_second")
    assert again
    assert all(s.value is not None and s.value >= 0 for s in again)
