"""SNMPv3 polling (pysnmp USM) against a real net-snmp snmpd on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from alertd.clock import SystemClock
from alertd.collect.schedule import UP_METRIC, CollectionScheduler, build_jobs
from alertd.collect.snmp import v3
from alertd.collect.snmp.ber import Tag, parse_oid
from alertd.collect.snmp.collector import SnmpCollector, community_connector
from alertd.collect.snmp.transport import SnmpTransport
from alertd.collect.snmp.v3 import SnmpV3AuthError, V3Session, close_engines, v3_connector
from alertd.config.collectors import SnmpTarget
from alertd.config.load import load_config
from alertd.errors import CollectError, CollectTimeoutError
from alertd.metrics import Metrics
from alertd.model import Sample, make_labels
from tests.snmp_agent import SnmpAgent, agent_or_skip

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PROFILES = load_config(REPO).profiles
LABELS = make_labels({"instance": "sw1", "site": "lab", "criticality": "high"})
TIMEOUT, RETRIES = 0.5, 0
# net-snmp's protocol names (snmpd.conf createUser, the CLI's -a/-x) -> ours (collectors/*.yaml)
OUR_NAMES = {"SHA-224": "SHA224", "SHA-256": "SHA256", "SHA-384": "SHA384", "SHA-512": "SHA512"}
OUR_NAMES |= {"AES-192": "AES192", "AES-256": "AES256"}


def start_agent(workdir: Path, **kwargs: Any) -> SnmpAgent:
    agent = agent_or_skip(workdir=workdir, sys_name="core-sw1", **kwargs)
    agent.start()
    return agent


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[SnmpAgent]:
    a = start_agent(tmp_path / "snmpd")
    try:
        yield a
    finally:
        a.close()


@pytest.fixture(autouse=True)
async def engines() -> AsyncIterator[None]:
    """Close the test loop's pysnmp engines (sockets, timer task) before the loop goes."""
    yield
    await close_engines()


@pytest.fixture
async def transport() -> AsyncIterator[SnmpTransport]:
    t = SnmpTransport(max_in_flight=10)
    await t.start()
    yield t
    t.close()


def v3_target(agent: SnmpAgent, profiles: list[str] | None = None, **user: Any) -> SnmpTarget:
    host, port = agent.address
    section = {
        "user": agent.v3_user,
        "auth_protocol": OUR_NAMES.get(agent.v3_auth_proto, agent.v3_auth_proto),
        "auth_key": agent.v3_auth_key,
        "priv_protocol": OUR_NAMES.get(agent.v3_priv_proto, agent.v3_priv_proto),
        "priv_key": agent.v3_priv_key,
    } | user
    return SnmpTarget.model_validate(
        {
            "address": host,
            "port": port,
            "version": "v3",
            "v3": section,
            "timeout": TIMEOUT,
            "retries": RETRIES,
            "profiles": profiles or ["system", "if-mib", "host-resources", "ucd"],
        }
    )


def collector(target: SnmpTarget) -> SnmpCollector:
    profiles = [PROFILES[name] for name in target.profiles]
    return SnmpCollector(target, profiles, LABELS, SystemClock(), v3_connector(target))


def by_metric(samples: list[Sample], metric: str) -> list[Sample]:
    return [s for s in samples if s.metric == metric]


def lo_oper_status(samples: list[Sample]) -> list[float | None]:
    return [
        s.value
        for s in by_metric(samples, "snmp_interface_oper_status")
        if dict(s.labels).get("ifName") == "lo"
    ]


async def test_authpriv_poll_gives_the_samples_v2c_gives(agent, transport) -> None:
    assert (agent.v3_auth_proto, agent.v3_priv_proto) == ("SHA-256", "AES")  # harness default
    poller = collector(v3_target(agent))
    first = await poller.collect()
    (info,) = by_metric(first, "snmp_system_info")
    assert dict(info.labels)["sysName"] == "core-sw1"
    assert lo_oper_status(first) == [1.0]
    (mem,) = by_metric(first, "snmp_memory_used_percent")
    assert mem.value is not None
    assert 0 < mem.value < 100
    storage = by_metric(first, "snmp_storage_used_percent")
    assert storage
    assert all(s.value is not None and 0 <= s.value <= 100 for s in storage)
    assert by_metric(first, "snmp_interface_receive_bytes_per_second") == []  # no rate yet

    # the same device through our v2c codec: the same series (metric + labels)
    host, port = agent.address
    v2c = SnmpTarget.model_validate(
        {
            "address": host,
            "port": port,
            "community": agent.community,
            "profiles": poller.target.profiles,
        }
    )
    v2c_poller = SnmpCollector(
        v2c,
        poller.profiles,
        LABELS,
        SystemClock(),
        community_connector(v2c, transport, agent.community.encode()),
    )
    v2c_first = await v2c_poller.collect()
    assert {(s.metric, s.labels) for s in first} == {(s.metric, s.labels) for s in v2c_first}

    await asyncio.sleep(1.1)
    second = await poller.collect()
    rates = by_metric(second, "snmp_interface_receive_bytes_per_second")
    assert rates  # Counter64 (ifHCInOctets) recognised as a counter
    assert all(s.value is not None and s.value >= 0 for s in rates)
    util = by_metric(second, "snmp_interface_receive_utilization_percent")
    assert util
    assert all(s.value is not None and 0 <= s.value <= 100 for s in util)


async def test_varbinds_match_the_v2c_codec(agent, transport) -> None:
    """Tags and values from pysnmp's decoder are those of our BER codec, type by type."""
    host, port = agent.address
    v2c = SnmpTarget.model_validate({"address": host, "port": port, "community": agent.community})
    ours = await community_connector(v2c, transport, agent.community.encode())()
    theirs = await v3_connector(v3_target(agent))()
    assert isinstance(theirs, V3Session)
    assert agent.v3_auth_key not in repr(theirs)
    assert agent.v3_priv_key not in repr(theirs)
    scalars = [
        parse_oid(o) for o in ("1.3.6.1.2.1.1.2.0", "1.3.6.1.2.1.1.5.0", "1.3.6.1.2.1.1.7.0")
    ]
    missing = parse_oid("1.3.6.1.2.1.1.99.0")
    got = await theirs.get([*scalars, missing])
    assert got == await ours.get([*scalars, missing])
    assert missing not in got  # noSuchObject is left out
    assert [got[o].tag for o in scalars] == [Tag.OBJECT_IDENTIFIER, Tag.OCTET_STRING, Tag.INTEGER]
    # stable columns: ifDescr, ifType, ifMtu, ifPhysAddress, ifName, ifHighSpeed
    columns = [parse_oid(f"1.3.6.1.2.1.2.2.1.{c}") for c in (2, 3, 4, 6)]
    columns += [parse_oid(f"1.3.6.1.2.1.31.1.1.1.{c}") for c in (1, 15)]
    walked = await theirs.walk_columns(columns)
    assert walked == await ours.walk_columns(columns)
    assert all(walked[c] for c in columns)
    # moving columns: the types must agree (values move between the two walks)
    moving = [parse_oid(o) for o in ("1.3.6.1.2.1.2.2.1.10", "1.3.6.1.2.1.31.1.1.1.6")]
    moving += [parse_oid("1.3.6.1.2.1.2.2.1.9"), parse_oid("1.3.6.1.4.1.2021.4.5")]
    v3_walk, v2c_walk = await theirs.walk_columns(moving), await ours.walk_columns(moving)
    for column in moving:
        assert {i: vb.tag for i, vb in v3_walk[column].items()} == {
            i: vb.tag for i, vb in v2c_walk[column].items()
        }
    tags = {vb.tag for rows in v3_walk.values() for vb in rows.values()}
    assert tags == {Tag.COUNTER32, Tag.COUNTER64, Tag.TIMETICKS, Tag.INTEGER}
    uptime = await theirs.get([parse_oid("1.3.6.1.2.1.1.3.0")])
    assert [vb.tag for vb in uptime.values()] == [Tag.TIMETICKS]


async def test_walk_spans_several_getbulk_requests(agent) -> None:
    target = v3_target(agent).model_copy(update={"max_repetitions": 2})
    session = await v3_connector(target)()
    column = parse_oid("1.3.6.1.2.1.25.2.3.1.3")  # hrStorageDescr: more rows than 2
    walked = await session.walk_columns([column])
    cli = agent.cli("snmpbulkwalk", *agent.v3_args(), "-On", agent.target, "1.3.6.1.2.1.25.2.3.1.3")
    assert cli.returncode == 0, cli.stderr
    assert len(walked[column]) == len(cli.stdout.strip().splitlines()) > 2


async def test_wrong_auth_key_fails_fast_as_authentication(agent) -> None:
    wrong = "not-the-auth-key-" + agent.v3_auth_key[:4]
    poller = collector(v3_target(agent, auth_key=wrong))
    started = time.monotonic()
    with pytest.raises(SnmpV3AuthError) as info:
        await poller.collect()
    assert time.monotonic() - started < TIMEOUT * (RETRIES + 1) + 2
    message = str(info.value)
    assert "authentication failed for user alertd" in message
    assert "wrong auth key or protocol?" in message
    assert info.value.reason == "wrong_digest"
    for secret in (wrong, agent.v3_auth_key, agent.v3_priv_key):
        assert secret not in message
        assert secret not in repr(info.value)


async def test_wrong_auth_protocol_fails_as_authentication(agent) -> None:
    poller = collector(v3_target(agent, auth_protocol="SHA512"))
    with pytest.raises(SnmpV3AuthError, match="authentication failed for user alertd"):
        await poller.collect()


async def test_wrong_priv_key_fails_cleanly(agent) -> None:
    wrong = "not-the-priv-key-" + agent.v3_priv_key[:4]
    poller = collector(v3_target(agent, priv_key=wrong))
    started = time.monotonic()
    # net-snmp drops what it cannot decrypt: a timeout (an agent that reports
    # usmStatsDecryptionErrors gives "wrong priv key or protocol?")
    with pytest.raises(CollectError) as info:
        await poller.collect()
    assert time.monotonic() - started < TIMEOUT * (RETRIES + 1) + 2
    assert isinstance(info.value, CollectTimeoutError | SnmpV3AuthError)
    message = str(info.value)
    assert f"{agent.address[0]}:{agent.address[1]}" in message
    assert "timeout after 0.5s (0 retries)" in message or "priv key" in message
    for secret in (wrong, agent.v3_auth_key, agent.v3_priv_key):
        assert secret not in message


async def test_unknown_user_fails_cleanly(agent) -> None:
    poller = collector(v3_target(agent, user="nobody"))
    with pytest.raises(SnmpV3AuthError) as info:
        await poller.collect()
    assert "authentication failed for user nobody" in str(info.value)
    assert info.value.reason == "unknown_user"


async def test_agent_restart_resyncs_and_reseeds(agent) -> None:
    """engineBoots goes up and engineTime back to 0: pysnmp re-syncs, rates re-seed."""
    poller = collector(v3_target(agent, profiles=["system", "if-mib"]))
    await poller.collect()
    await asyncio.sleep(1.1)
    assert by_metric(await poller.collect(), "snmp_interface_receive_bytes_per_second")
    agent.restart()
    after = await poller.collect()
    assert lo_oper_status(after) == [1.0]
    assert poller.rates.restarts == 1
    assert by_metric(after, "snmp_interface_receive_bytes_per_second") == []


async def test_targets_share_an_engine_unless_their_keys_differ(tmp_path, agent) -> None:
    """Same user, other keys (a second agent): a second engine, and both poll side by side."""
    other = start_agent(tmp_path / "other")
    try:
        assert other.v3_user == agent.v3_user
        assert other.v3_auth_key != agent.v3_auth_key
        first = v3_target(agent, profiles=["system", "if-mib"])
        pollers = [
            collector(first),
            collector(first.model_copy()),  # same credentials: same engine
            collector(v3_target(other, profiles=["system", "if-mib"])),
        ]
        for _ in range(3):
            results = await asyncio.gather(*(p.collect() for p in pollers))
            assert [lo_oper_status(r) for r in results] == [[1.0]] * 3
        assert len(v3._pool().engines) == 2
    finally:
        other.close()


@pytest.mark.parametrize(
    ("auth", "priv"),
    [
        ("SHA", "AES"),
        ("SHA", "AES-256"),  # SHA-1 is too short for a 256-bit key: Blumenthal extension
        ("SHA-224", "AES-192"),
        ("SHA-512", "AES-256"),
        ("MD5", "DES"),
    ],
)
async def test_protocols(tmp_path, auth, priv) -> None:
    agent = start_agent(tmp_path / "snmpd", auth_proto=auth, priv_proto=priv)
    try:
        samples = await collector(v3_target(agent, profiles=["system"])).collect()
        (info,) = by_metric(samples, "snmp_system_info")
        assert dict(info.labels)["sysName"] == "core-sw1"
    finally:
        agent.close()


async def test_reeder_aes256_is_not_net_snmps_aes256(tmp_path, monkeypatch) -> None:
    """Why AES256 maps to pysnmp's Blumenthal variant: the other one can't talk to AES-256."""
    from pysnmp.hlapi.v3arch.asyncio import USM_PRIV_CFB256_AES

    agent = start_agent(tmp_path / "snmpd", auth_proto="SHA", priv_proto="AES-256")
    try:
        monkeypatch.setitem(v3.PRIV_PROTOCOLS, "AES256", USM_PRIV_CFB256_AES)
        with pytest.raises(CollectTimeoutError):  # the agent can't decrypt: no answer
            await collector(v3_target(agent, profiles=["system"])).collect()
    finally:
        agent.close()


NETWORK_YAML = """\
snmp:
  - address: {host}
    port: {port}
    instance: core-sw1
    version: v3
    v3:
      user: {user}
      auth_protocol: SHA256
      auth_key: ${{ALERTD_TEST_V3_AUTH_KEY}}
      priv_protocol: AES
      priv_key_file: keys/priv.key
    timeout: 500ms
    retries: 0
    labels: {{site: lab, criticality: high}}
    profiles: [system, if-mib]
"""


async def test_daemon_path_never_logs_the_keys(tmp_path, agent, transport, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    for name in ("thresholds.yaml", "channels.yaml"):
        shutil.copy(REPO / name, config_dir / name)
    shutil.copytree(REPO / "rules", config_dir / "rules")
    shutil.copytree(REPO / "collectors" / "profiles", config_dir / "collectors" / "profiles")
    host, port = agent.address
    (config_dir / "collectors" / "network.yaml").write_text(
        NETWORK_YAML.format(host=host, port=port, user=agent.v3_user)
    )
    key_file = config_dir / "keys" / "priv.key"
    key_file.parent.mkdir()
    key_file.write_text(agent.v3_priv_key + "\n")  # trailing newline, as editors leave it

    config = load_config(config_dir, env={"ALERTD_TEST_V3_AUTH_KEY": agent.v3_auth_key})
    (job,) = build_jobs(config, SystemClock(), transport)
    received: list[Sample] = []
    sched = CollectionScheduler(received.extend, Metrics(CollectorRegistry()), SystemClock())
    await sched.run_job(job)
    assert received[-1].metric == UP_METRIC
    assert received[-1].value == 1.0
    (info,) = by_metric(received, "snmp_system_info")
    assert dict(info.labels)["sysName"] == "core-sw1"

    # the key file is read at every connect: a wrong key shows on the next poll, in the log
    wrong = "a-wrong-priv-key-0123"
    key_file.write_text(wrong + "\n")
    received.clear()
    await sched.run_job(job)
    assert received[-1].value is None  # soft failure: UNKNOWN
    assert "collection from snmp:core-sw1 failed" in caplog.text

    logged = caplog.text + "".join(repr(r.args) + repr(r.__dict__) for r in caplog.records)
    for secret in (agent.v3_auth_key, agent.v3_priv_key, wrong):
        assert secret not in logged
    assert agent.v3_auth_key not in repr(config.snmp)
