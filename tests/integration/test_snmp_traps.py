"""The trap receiver against real traps and informs from net-snmp ``snmptrap``/``snmpinform``.

The receiver binds 127.0.0.1 port 0 (the kernel picks a free port; ``receiver.address`` says
which). No snmpd runs: ``SnmpAgent`` only lends its CLI environment (no MIBs, no system
snmp.conf, state under the test's temp directory instead of /var/lib/snmp).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from alertd.clock import SystemClock
from alertd.collect.snmp.traps import LINK_DOWN_RULE, TrapReceiver
from alertd.config.traps import TrapsConfig
from alertd.incidents.manager import IncidentManager
from alertd.model import AlertEvent, EventKind, IncidentState, Labels, Level, make_labels
from alertd.state.db import connect
from alertd.state.events import DeviceEvent, recent_device_events, record_device_event
from alertd.state.incidents import IncidentStore
from tests.snmp_agent import SnmpAgent, require_net_snmp
from tests.unit.conftest import channels

pytestmark = pytest.mark.integration

COMMUNITY = "trap-c0mmunity-7f3a"
V3_USER = "trapper"
AUTH_KEY = "auth-9b1e4c77"
PRIV_KEY = "priv-51d0aa3e"
SENDER_ENGINE = "8000000001020304"  # the engine ID snmptrap uses (-e) for v3 traps
RECEIVER_ENGINE = "80001f8880a1b2c3d4"
SECRETS = (COMMUNITY, AUTH_KEY, PRIV_KEY)

LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
LINK_UP = "1.3.6.1.6.3.1.1.5.4"
COLD_START = "1.3.6.1.6.3.1.1.5.1"
IF_INDEX = "1.3.6.1.2.1.2.2.1.1"
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
TARGET = make_labels({"instance": "sw1", "site": "lab", "criticality": "high"})
TARGETS = {"127.0.0.1": TARGET}


@dataclass
class Seen:
    """What the receiver reported through its callbacks."""

    events: list[AlertEvent] = field(default_factory=list)
    device: list[DeviceEvent] = field(default_factory=list)
    drops: list[str] = field(default_factory=list)

    def total(self) -> int:
        return len(self.events) + len(self.device) + len(self.drops)


@dataclass
class Receiver:
    receiver: TrapReceiver
    seen: Seen

    @property
    def dest(self) -> str:
        assert self.receiver.address is not None
        host, port = self.receiver.address
        return f"udp:{host}:{port}"


MakeReceiver = Callable[..., Awaitable[Receiver]]


@pytest.fixture
def net_snmp(tmp_path: Path) -> Iterator[SnmpAgent]:
    """net-snmp's CLI tools with their environment (no snmpd is started)."""
    require_net_snmp("snmptrap", "snmpinform")
    tools = SnmpAgent(workdir=tmp_path / "net-snmp")
    yield tools
    tools.close()


@pytest.fixture
async def make_receiver() -> AsyncIterator[MakeReceiver]:
    started: list[TrapReceiver] = []

    async def make(
        targets: dict[str, Labels] = TARGETS,
        on_events: Callable[[list[AlertEvent]], None] | None = None,
        **config: Any,
    ) -> Receiver:
        data: dict[str, Any] = {
            "listen": "127.0.0.1:0",
            "engine_id": RECEIVER_ENGINE,
            "communities": [COMMUNITY],
            "v3_users": [
                {
                    "user": V3_USER,
                    "auth_protocol": "SHA256",
                    "auth_key": AUTH_KEY,
                    "priv_protocol": "AES",
                    "priv_key": PRIV_KEY,
                    "engine_ids": [SENDER_ENGINE],
                }
            ],
        }
        data.update(config)
        seen = Seen()
        receiver = TrapReceiver(
            TrapsConfig.model_validate(data),
            targets,
            on_events=on_events or seen.events.extend,
            on_device_event=seen.device.append,
            on_drop=seen.drops.append,
            clock=SystemClock(),
        )
        await receiver.start()
        started.append(receiver)
        return Receiver(receiver, seen)

    yield make
    for receiver in started:
        receiver.close()


async def run(net_snmp: SnmpAgent, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a net-snmp tool off the event loop (an inform waits for the receiver's answer)."""
    return await asyncio.to_thread(net_snmp.cli, tool, *args, timeout=20.0)


def v2c(community: str = COMMUNITY) -> list[str]:
    return ["-v", "2c", "-c", community]


def v3(
    *, auth_key: str = AUTH_KEY, level: str = "authPriv", engine: str | None = SENDER_ENGINE
) -> list[str]:
    args = ["-v", "3", "-u", V3_USER, "-l", level]
    if level != "noAuthNoPriv":
        args += ["-a", "SHA-256", "-A", auth_key]
    if level == "authPriv":
        args += ["-x", "AES", "-X", PRIV_KEY]
    if engine is not None:
        args += ["-e", "0x" + engine]
    return args


def link(if_index: int, name: str = "eth0") -> list[str]:
    return [f"{IF_INDEX}.{if_index}", "i", str(if_index), f"{IF_DESCR}.{if_index}", "s", name]


async def trap(
    net_snmp: SnmpAgent, r: Receiver, auth: list[str], trap_oid: str, *varbinds: str
) -> None:
    result = await run(net_snmp, "snmptrap", *auth, r.dest, "", trap_oid, *varbinds)
    assert result.returncode == 0, result.stderr


async def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Poll ``condition`` on the event loop until it holds; fail after ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {seconds:g} s")
        await asyncio.sleep(0.02)


async def quiet(seconds: float = 0.3) -> None:
    """Give a datagram that should have no effect the time to have one anyway."""
    await asyncio.sleep(seconds)


# -- v1 / v2c --------------------------------------------------------------------------------------


async def test_v2c_link_down_opens_and_link_up_resolves(
    net_snmp: SnmpAgent, make_receiver: MakeReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    r = await make_receiver()
    await trap(net_snmp, r, v2c(), LINK_DOWN, *link(2))
    await wait_for(lambda: len(r.seen.events) == 1)
    await trap(net_snmp, r, v2c(), LINK_UP, *link(2))
    await wait_for(lambda: len(r.seen.events) == 2)

    down, up = r.seen.events
    assert down.kind is EventKind.FIRING
    assert (down.rule, down.level) == (LINK_DOWN_RULE, Level.MAJOR)
    assert down.labels == make_labels({**dict(TARGET), "ifIndex": "2"})
    assert down.summary == "Interface eth0 (ifIndex 2) down on sw1 (trap)"
    assert up.kind is EventKind.RESOLVED
    assert up.fingerprint == down.fingerprint
    assert r.seen.drops == []
    lines = [rec.getMessage() for rec in caplog.records if rec.levelno == logging.INFO]
    assert (
        f"snmp trap {LINK_DOWN} linkDown from 127.0.0.1 (sw1, v2c community-1): "
        "firing snmp_trap_link_down ifIndex=2"
    ) in lines
    assert not any(secret in caplog.text for secret in SECRETS)


async def test_v1_link_down_is_converted_and_its_community_not_kept(
    net_snmp: SnmpAgent, make_receiver: MakeReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    r = await make_receiver()
    # v1: enterprise, agent-addr, generic-trap 2 (linkDown), specific 0, uptime
    args = ["-v", "1", "-c", COMMUNITY, r.dest, "", "127.0.0.1", "2", "0", ""]
    result = await run(net_snmp, "snmptrap", *args, f"{IF_INDEX}.5", "i", "5")
    assert result.returncode == 0, result.stderr
    await wait_for(lambda: len(r.seen.events) == 1)

    event = r.seen.events[0]
    assert dict(event.labels)["ifIndex"] == "5"
    assert COMMUNITY not in repr(event)
    assert not any(secret in caplog.text for secret in SECRETS)


async def test_wrong_community_is_dropped_and_counted(
    net_snmp: SnmpAgent, make_receiver: MakeReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    r = await make_receiver()
    await trap(net_snmp, r, v2c("not-the-community"), LINK_DOWN, *link(2))
    await wait_for(lambda: r.seen.drops == ["bad_credentials"])
    await quiet()
    assert r.seen.events == []
    assert "not-the-community" not in caplog.text


async def test_cold_start_is_a_device_event(
    net_snmp: SnmpAgent, make_receiver: MakeReceiver
) -> None:
    r = await make_receiver()
    await trap(net_snmp, r, v2c(), COLD_START)
    await trap(net_snmp, r, v2c(), "1.3.6.1.4.1.8072.2.3.0.1", "1.3.6.1.4.1.8072.2.3.2.1", "i", "7")
    await wait_for(lambda: len(r.seen.device) == 2)

    restart, unknown = r.seen.device
    assert (restart.kind, restart.level, restart.instance) == ("cold_start", None, "sw1")
    assert restart.source == "127.0.0.1"
    assert restart.trap_oid == COLD_START
    assert (unknown.kind, unknown.level) == ("unknown_trap", Level.MINOR)
    assert unknown.detail == "1.3.6.1.4.1.8072.2.3.2.1=7"
    assert r.seen.events == []


async def test_v2c_inform_is_acknowledged_and_delivered(
    net_snmp: SnmpAgent, make_receiver: MakeReceiver
) -> None:
    r = await make_receiver()
    # snmpinform exits 0 only once the receiver has answered the InformRequest
    result = await run(
        net_snmp, "snmpinform", *v2c(), "-t", "2", "-r", "1", r.dest, "", LINK_DOWN, *link(3)
    )
    assert result.returncode == 0, result.stderr
    await wait_for(lambda: len(r.seen.events) == 1)
    assert dict(r.seen.events[0].labels)["ifIndex"] == "3"


# -- sources ---------------------------------------------------------------------------------------


async def test_unknown_source_is_dropped_counted_and_not_acknowledged(
    net_snmp: SnmpAgent, make_receiver: MakeReceiver
) -> None:
    r = await make_receiver(targets={})  # 127.0.0.1 is neither a target nor allowed
    await trap(net_snmp, r, v2c(), LINK_DOWN, *link(2))
    await wait_for(lambda: r.seen.drops == ["unknown_source"])
    inform = await run(
        net_snmp, "snmpinform", *v2c(), "-t", "0.5", "-r", "0", r.dest, "", COLD_START
    )
    assert inform.returncode != 0  # no answer: timeout
    await wait_for(lambda: r.seen.drops == ["unknown_source", "unknown_source"])
    assert r.seen.events == []
    assert r.seen.device == []


async def test_allowed_source_that_is_not_a_target_is_its_own_instance(
    net_snmp: SnmpAgent, make_receiver: MakeReceiver
) -> None:
    r = await make_receiver(targets={}, allowed_sources=["127.0.0.0/8"])
    await trap(net_snmp, r, v2c(), LINK_DOWN, *link(2))
    await wait_for(lambda: len(r.seen.events) == 1)
    assert r.seen.events[0].labels == make_labels({"instance": "127.0.0.1", "ifIndex": "2"})


async def test_malformed_datagrams_are_counted_and_the_receiver_goes_on(
    net_snmp: SnmpAgent, make_receiver: MakeReceiver
) -> None:
    r = await make_receiver()
    assert r.receiver.address is not None
    junk = [
        b"",
        b"\x00",
        b"\x30\x82\xff\xff",  # length past the end
        b"\x30\x03\x02\x01\x07",  # version 7
        b"\x30\x0b\x02\x01\x01\x04\x01c\xa7\x03\x02\x01\x01",  # truncated v2c trap
        bytes(range(256)),
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for datagram in junk:
            sock.sendto(datagram, r.receiver.address)
    await wait_for(lambda: len(r.seen.drops) == len(junk))
    assert set(r.seen.drops) == {"malformed"}

    await trap(net_snmp, r, v2c(), LINK_DOWN, *link(2))
    await wait_for(lambda: len(r.seen.events) == 1)


# -- v3 --------------------------------------------------------------------------------------------


async def test_v3_auth_priv_trap_with_a_configured_engine_id(
    net_snmp: SnmpAgent, make_receiver: MakeReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    r = await make_receiver()
    await trap(net_snmp, r, v3(), LINK_DOWN, *link(4))
    await wait_for(lambda: len(r.seen.events) == 1)
    await trap(net_snmp, r, v3(), LINK_UP, *link(4))
    await wait_for(lambda: len(r.seen.events) == 2)

    down, up = r.seen.events
    assert (down.kind, dict(down.labels)["ifIndex"]) == (EventKind.FIRING, "4")
    assert (up.kind, up.fingerprint) == (EventKind.RESOLVED, down.fingerprint)
    assert r.seen.drops == []
    assert f"(sw1, v3 user {V3_USER})" in caplog.text
    assert not any(secret in caplog.text for secret in SECRETS)


async def test_v3_inform_needs_no_engine_id(
    net_snmp: SnmpAgent, make_receiver: MakeReceiver
) -> None:
    r = await make_receiver()
    result = await run(
        net_snmp, "snmpinform", *v3(engine=None), "-t", "2", "-r", "1", r.dest, "", COLD_START
    )
    assert result.returncode == 0, result.stderr
    await wait_for(lambda: len(r.seen.device) == 1)
    assert r.seen.device[0].kind == "cold_start"
    assert r.seen.drops == []  # engine ID discovery and time sync are not drops


@pytest.mark.parametrize(
    ("auth", "hint"),
    [
        pytest.param({"auth_key": "wrong-key-123"}, "wrong auth or priv key", id="wrong-key"),
        pytest.param(
            {"engine": "8000000001999999"},
            "engine ID 0x8000000001999999 not in its engine_ids",
            id="unknown-engine",
        ),
        pytest.param({"level": "noAuthNoPriv"}, "security level", id="forged-no-auth"),
        pytest.param({"level": "authNoPriv"}, "security level", id="no-priv"),
    ],
)
async def test_v3_bad_credentials_are_dropped_and_counted(
    net_snmp: SnmpAgent,
    make_receiver: MakeReceiver,
    caplog: pytest.LogCaptureFixture,
    auth: dict[str, Any],
    hint: str,
) -> None:
    r = await make_receiver()
    await trap(net_snmp, r, v3(**auth), LINK_DOWN, *link(4))
    await wait_for(lambda: r.seen.drops == ["bad_credentials"])
    await quiet()
    assert r.seen.events == []
    assert hint in caplog.text
    assert not any(secret in caplog.text for secret in (*SECRETS, "wrong-key-123"))


# -- through the incident layer --------------------------------------------------------------------


async def test_traps_open_and_resolve_an_incident_in_the_state_database(
    net_snmp: SnmpAgent, make_receiver: MakeReceiver, tmp_path: Path
) -> None:
    conn: sqlite3.Connection = connect(tmp_path / "state")
    try:
        store = IncidentStore(conn)
        manager = IncidentManager(store, channels())
        clock = SystemClock()

        def apply(events: list[AlertEvent]) -> None:
            with store.transaction():
                manager.apply(events, clock.now())

        r = await make_receiver(on_events=apply)
        r.receiver.on_device_event = lambda event: record_device_event(conn, event)

        await trap(net_snmp, r, v2c(), LINK_DOWN, *link(2, "uplink0"))
        await wait_for(lambda: len(store.find([IncidentState.OPEN])) == 1)
        (incident,) = store.find([IncidentState.OPEN])
        assert incident.rule == LINK_DOWN_RULE
        assert incident.level is Level.MAJOR
        assert incident.label_map["ifIndex"] == "2"
        assert incident.summary == "Interface uplink0 (ifIndex 2) down on sw1 (trap)"

        await trap(net_snmp, r, v2c(), LINK_DOWN, *link(2, "uplink0"))  # a repeat: deduplicated
        await trap(net_snmp, r, v2c(), COLD_START)
        await wait_for(lambda: len(recent_device_events(conn, 10)) == 1)
        assert len(store.find()) == 1

        await trap(net_snmp, r, v2c(), LINK_UP, *link(2, "uplink0"))
        await wait_for(lambda: store.find([IncidentState.RESOLVED]) != [])
        resolved = store.get(incident.id)
        assert resolved is not None
        assert resolved.state is IncidentState.RESOLVED
        kinds = [entry.kind for entry in store.timeline(incident.id)]
        assert kinds[0] == "opened"
        assert kinds[-1] == "resolved"
        assert recent_device_events(conn, 10)[0].kind == "cold_start"
    finally:
        conn.close()
