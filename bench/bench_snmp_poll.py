#!/usr/bin/env python3
"""alertd's SNMP poller next to snmp_exporter and snmpbulkwalk, in one run, against one agent.

The agent: one Debian net-snmp ``snmpd`` serving a 48-port IF-MIB. As root, the script makes
its own network namespace with 24 veth pairs (lo + 48 ports = 49 ifTable rows), enters it
(``setns``) and starts snmpd there with ``ip netns exec``; every packet of the run then stays
on that namespace's private loopback. Without the privilege (or with ``--ifaces 0``) it falls
back to the host's 127.0.0.1 and the machine's real interfaces, and says so. The UDP and TCP
ports are picked at run time; the community is a random token.

Per run (``--runs``, medians reported) and per level of requests in flight (``--inflight``,
default 1, 10, 100), in this order so drift hits every row alike:

  alertd        ``--devices`` (100) ``SnmpCollector``s with the ``system`` + ``if-mib``
                profiles, all pointing at the agent, sharing one ``SnmpTransport`` with
                ``max_in_flight=K``, polled by ``asyncio.gather`` of one worker per device
                until ``--polls`` device polls are done (or ``--max-seconds``). One warm-up
                poll per device first, so measured polls compute rates. Client CPU is
                ``time.process_time()`` of this process (all its threads: the event loop and
                the resolver thread of ``loop.getaddrinfo``); PDUs and OIDs are counted by a
                wrapper around ``transport.request``; the agent's CPU from /proc/PID/stat.
  exporter      Debian's ``prometheus-snmp-exporter`` (0.21) with a snmp.yml generated here:
                module ``if_mib`` like upstream's generated one (walks the whole interfaces
                group and ifXTable, GETs sysUpTime; ifIndex index, ifAlias/ifDescr/ifName
                lookups), scraped by K threads with keep-alive connections; its CPU from
                /proc/PID/stat, OIDs from its own ``snmp_scrape_pdus_returned``, PDUs from the
                agent's snmpInPkts. One scrape = one device poll; K concurrent scrapes = K
                requests in flight (gosnmp has one request out per walk).
  exporter_cols the same exporter with module ``if_mib_cols``: walks only the 12 columns
                alertd's if-mib profile reads and GETs sysUpTime + sysName, so both do the
                same SNMP work (its walks are per column, sequential, within one scrape).
  snmpbulkwalk  (once, ``--walks`` runs) ``snmpbulkwalk -Cr25`` of ifTable then ifXTable:
                CPU of the two processes (rusage of children), OIDs, PDUs.

alertd walks only the columns it needs (~590 OIDs per 48-port poll); upstream's if_mib walks
whole subtrees (~2,000), so the per-poll ratio is printed along with a per-OID one and the
same-columns one. The goal (issue 3): alertd's CPU per device poll at or below
snmp_exporter's. When it is missed at any level (or with ``--profile``), an extra alertd phase
runs under cProfile and the time is broken down by module and function.

Every loop is bounded in count and time; snmpd and the exporter are stopped by PID in
``finally``; the namespace (and a /run/netns mount this script created) is removed at the end.
A peer that isn't installed is reported with a ``SKIP`` line.

Usage: .venv/bin/python bench/bench_snmp_poll.py [--polls 200] [--runs 5] [--inflight 1,10,100]
       [--devices 100] [--max-seconds 8] [--walks 5] [--ifaces 48] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import ctypes
import gc
import http.client
import os
import pstats
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from benchlib import median, pct, proc_cpu_seconds, result, table

from alertd.clock import SystemClock
from alertd.collect.snmp.ber import OID, VarBind, decode_response, encode_get, parse_oid
from alertd.collect.snmp.collector import SnmpCollector, community_connector
from alertd.collect.snmp.transport import SnmpTransport
from alertd.config.collectors import SnmpTarget
from alertd.config.load import load_config
from alertd.model import make_labels

REPO = Path(__file__).resolve().parents[1]
SNMPD = "/usr/sbin/snmpd"
EXPORTER = "/usr/bin/prometheus-snmp-exporter"
SNMPBULKWALK = "/usr/bin/snmpbulkwalk"
PROFILES = ["system", "if-mib"]
CLONE_NEWNET = 0x40000000
CLK_TCK = os.sysconf("SC_CLK_TCK")
SNMP_IN_PKTS = "1.3.6.1.2.1.11.1.0"
SYS_NAME = "alertd-bench-48port"
# snmpd -I: only what the bench reads (the default set also starts smux on TCP 199).
SNMPD_MODULES = "system_mib,sysORTable,snmp_mib,vacm_vars,vacm_conf,interface,ifTable,ifXTable"
IF_TABLE = "1.3.6.1.2.1.2.2"
IF_X_TABLE = "1.3.6.1.2.1.31.1.1"
GOAL_POLLS_PER_MIN_PER_CORE = 3500

# ---------------------------------------------------------------------------------------------
# IF-MIB (RFC 2863) columns for the exporter config: name, OID, exporter type.
_IF = "1.3.6.1.2.1.2.2.1."
_IFX = "1.3.6.1.2.1.31.1.1.1."
IF_COLUMNS: list[tuple[str, str, str]] = [
    ("ifIndex", _IF + "1", "gauge"),
    ("ifType", _IF + "3", "EnumAsInfo"),
    ("ifMtu", _IF + "4", "gauge"),
    ("ifSpeed", _IF + "5", "gauge"),
    ("ifPhysAddress", _IF + "6", "PhysAddress48"),
    ("ifAdminStatus", _IF + "7", "gauge"),
    ("ifOperStatus", _IF + "8", "gauge"),
    ("ifLastChange", _IF + "9", "gauge"),
    *[
        (name, _IF + str(n), "counter")
        for n, name in [
            (10, "ifInOctets"),
            (11, "ifInUcastPkts"),
            (12, "ifInNUcastPkts"),
            (13, "ifInDiscards"),
            (14, "ifInErrors"),
            (15, "ifInUnknownProtos"),
            (16, "ifOutOctets"),
            (17, "ifOutUcastPkts"),
            (18, "ifOutNUcastPkts"),
            (19, "ifOutDiscards"),
            (20, "ifOutErrors"),
        ]
    ],
    ("ifOutQLen", _IF + "21", "gauge"),
    ("ifSpecific", _IF + "22", "OctetString"),
    *[
        (name, _IFX + str(n), "counter")
        for n, name in [
            (2, "ifInMulticastPkts"),
            (3, "ifInBroadcastPkts"),
            (4, "ifOutMulticastPkts"),
            (5, "ifOutBroadcastPkts"),
            (6, "ifHCInOctets"),
            (7, "ifHCInUcastPkts"),
            (8, "ifHCInMulticastPkts"),
            (9, "ifHCInBroadcastPkts"),
            (10, "ifHCOutOctets"),
            (11, "ifHCOutUcastPkts"),
            (12, "ifHCOutMulticastPkts"),
            (13, "ifHCOutBroadcastPkts"),
        ]
    ],
    ("ifLinkUpDownTrapEnable", _IFX + "14", "gauge"),
    ("ifHighSpeed", _IFX + "15", "gauge"),
    ("ifPromiscuousMode", _IFX + "16", "gauge"),
    ("ifConnectorPresent", _IFX + "17", "gauge"),
    ("ifCounterDiscontinuityTime", _IFX + "19", "gauge"),
]
IF_LOOKUPS = [("ifAlias", _IFX + "18"), ("ifDescr", _IF + "2"), ("ifName", _IFX + "1")]
# A subset of IANAifType, for ifType's EnumAsInfo label (upstream lists ~280).
IF_TYPES = {
    1: "other",
    6: "ethernetCsmacd",
    24: "softwareLoopback",
    53: "propVirtual",
    131: "tunnel",
    135: "l2vlan",
    161: "ieee8023adLag",
}
ENUMS = {
    "ifAdminStatus": {1: "up", 2: "down", 3: "testing"},
    "ifOperStatus": {
        1: "up",
        2: "down",
        3: "testing",
        4: "unknown",
        5: "dormant",
        6: "notPresent",
        7: "lowerLayerDown",
    },
    "ifLinkUpDownTrapEnable": {1: "enabled", 2: "disabled"},
    "ifPromiscuousMode": {1: "true", 2: "false"},
    "ifConnectorPresent": {1: "true", 2: "false"},
    "ifType": IF_TYPES,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--polls", type=int, default=200, help="device polls per phase (default 200)")
    ap.add_argument("--runs", type=int, default=5, help="runs over all phases; medians reported")
    ap.add_argument("--inflight", default="1,10,100", help="requests in flight (default 1,10,100)")
    ap.add_argument("--devices", type=int, default=100, help="SnmpCollectors (default 100)")
    ap.add_argument("--max-seconds", type=float, default=8.0, help="time cap per phase")
    ap.add_argument("--walks", type=int, default=5, help="snmpbulkwalk device walks")
    ap.add_argument("--ifaces", type=int, default=48, help="veth ports in the netns; 0 = host")
    ap.add_argument("--profile", action="store_true", help="always profile alertd's client")
    ap.add_argument("--profile-polls", type=int, default=300)
    a = ap.parse_args(argv)
    a.levels = [int(k) for k in a.inflight.split(",") if k.strip()]
    if a.polls < 1 or a.runs < 1 or a.devices < 1 or not a.levels or min(a.levels) < 1:
        ap.error("--polls, --runs, --devices and --inflight values must be >= 1")
    return a


# ---------------------------------------------------------------------------------------------
# Network namespace


class Netns:
    """A namespace of our own with ``pairs`` veth pairs; this process can step in and out."""

    def __init__(self, pairs: int) -> None:
        self.name = f"alertd-bsnmp-{os.getpid()}"
        self.pairs = pairs
        self.created = False
        self.entered = False
        self._home: int | None = None
        self._run_netns_existed = os.path.isdir("/run/netns")
        self._libc = ctypes.CDLL(None, use_errno=True)

    def create(self) -> None:
        subprocess.run(
            ["ip", "netns", "add", self.name], check=True, capture_output=True, timeout=10
        )
        self.created = True
        lines = ["link set lo up"]
        for i in range(self.pairs):
            a, b = f"port{2 * i + 1}", f"port{2 * i + 2}"
            lines += [
                f"link add {a} type veth peer name {b}",
                f"link set {a} up",
                f"link set {b} up",
            ]
        subprocess.run(
            ["ip", "-n", self.name, "-batch", "-"],
            input="\n".join(lines) + "\n",
            text=True,
            check=True,
            capture_output=True,
            timeout=30,
        )

    def enter(self) -> None:
        """Move this (still single-threaded) process into the namespace."""
        self._home = os.open("/proc/self/ns/net", os.O_RDONLY)
        fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            if self._libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns: {os.strerror(err)}")
        finally:
            os.close(fd)
        self.entered = True

    def exec_prefix(self) -> list[str]:
        # ip netns exec also remounts /sys, so snmpd sees the namespace's /sys/class/net
        return ["ip", "netns", "exec", self.name] if self.created else []

    def close(self) -> None:
        if self.entered and self._home is not None:
            self._libc.setns(self._home, CLONE_NEWNET)
            self.entered = False
        if self._home is not None:
            os.close(self._home)
            self._home = None
        if self.created:
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=10)
            self.created = False
            # `ip netns add` bind-mounts /run/netns when it makes it; undo that if it was us
            made_it = not self._run_netns_existed and os.path.isdir("/run/netns")
            if made_it and not os.listdir("/run/netns"):
                for _ in range(3):  # bind + make-shared may stack two mounts
                    umount = ["umount", "/run/netns"]
                    if subprocess.run(umount, capture_output=True, timeout=10).returncode != 0:
                        break
                with contextlib.suppress(OSError):
                    os.rmdir("/run/netns")


# ---------------------------------------------------------------------------------------------
# Processes


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Child:
    """A server we started; stop() signals its own PID only."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        self.pid = self.popen.pid  # `ip netns exec` execs, it doesn't fork

    def alive(self) -> bool:
        return self.popen.poll() is None

    def cpu(self) -> float:
        return proc_cpu_seconds(self.pid)

    def sys_cpu(self) -> float:
        """stime of the process, seconds."""
        with open(f"/proc/{self.pid}/stat") as f:
            text = f.read()
        return int(text[text.rindex(")") + 2 :].split()[12]) / CLK_TCK

    def tail(self, n: int = 5) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return ""

    def stop(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.popen.wait(5)
        self._log.close()


@dataclass
class Agent:
    child: Child
    port: int
    community: str

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


def snmp_get_blocking(
    agent: Agent, oids: list[str], timeout: float = 1.0, tries: int = 3
) -> dict[OID, VarBind]:
    """One v2c GET over a plain socket (alertd's codec); {} if no answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        for n in range(tries):
            rid = 4242 + n
            s.sendto(
                encode_get(1, agent.community.encode(), rid, [parse_oid(o) for o in oids]),
                agent.address,
            )
            try:
                while True:
                    resp = decode_response(s.recv(65535))
                    if resp.request_id == rid:
                        return {vb.oid: vb for vb in resp.varbinds if not vb.is_exception}
            except TimeoutError:
                continue
    return {}


def agent_in_pkts(agent: Agent) -> int | None:
    """snmpInPkts: every PDU the agent received (this GET included)."""
    vb = snmp_get_blocking(agent, [SNMP_IN_PKTS]).get(parse_oid(SNMP_IN_PKTS))
    return vb.value if vb is not None and isinstance(vb.value, int) else None


def start_snmpd(tmp: Path, netns: Netns | None) -> Agent:
    work = tmp / "snmpd"
    (work / "persist").mkdir(parents=True)
    port = free_port(socket.SOCK_DGRAM)
    community = "b" + secrets.token_hex(8)
    conf = work / "snmpd.conf"
    conf.write_text(
        f"agentaddress udp:127.0.0.1:{port}\n"
        f"rocommunity {community} 127.0.0.1\n"
        f"sysName {SYS_NAME}\n"
        "sysLocation alertd bench\nsysContact bench@localhost\n"
        "master no\ndontLogTCPWrappersConnects yes\n"
    )
    env = dict(os.environ, MIBS="", SNMP_PERSISTENT_DIR=str(work / "persist"))
    argv = [
        *(netns.exec_prefix() if netns else []),
        SNMPD,
        "-f",
        "-C",
        "-c",
        str(conf),
        "-Lf",
        str(work / "snmpd.log"),
        "-p",
        str(work / "snmpd.pid"),
        "-I",
        SNMPD_MODULES,
    ]
    agent = Agent(Child("snmpd", argv, work / "stdout.log", env), port, community)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if not agent.child.alive():
            raise RuntimeError(f"snmpd exited at start: {agent.child.tail()}")
        if snmp_get_blocking(agent, ["1.3.6.1.2.1.1.5.0"], timeout=0.3, tries=1):
            return agent
        time.sleep(0.1)
    agent.child.stop()
    raise RuntimeError("snmpd did not answer within 15 s")


def count_rows(agent: Agent) -> int:
    """ifNumber, as the agent reports it."""
    vb = snmp_get_blocking(agent, ["1.3.6.1.2.1.2.1.0"]).get(parse_oid("1.3.6.1.2.1.2.1.0"))
    return int(vb.value) if vb is not None and isinstance(vb.value, int) else -1


# ---------------------------------------------------------------------------------------------
# (a) alertd


def per_1000(cpu_s: float, count: int) -> float:
    """CPU ms per 1,000 items."""
    return cpu_s / count * 1e6 if count else float("nan")


@dataclass
class Phase:
    """One measured phase of one implementation at one level of requests in flight."""

    polls: int = 0
    errors: int = 0
    wall: float = 0.0
    client_cpu: float = 0.0
    client_sys: float = 0.0  # the kernel's part of client_cpu (sendto/recvfrom, epoll)
    agent_cpu: float = 0.0
    pdus: int = 0
    oids: int = 0
    samples: int = 0
    peak_in_flight: int = 0
    latencies: list[float] = field(default_factory=list)

    def row(self) -> dict[str, float]:
        n = max(self.polls, 1)
        return {
            "polls": float(self.polls),
            "errors": float(self.errors),
            "polls_per_s": self.polls / self.wall if self.wall else float("nan"),
            "oids_per_s": self.oids / self.wall if self.wall else float("nan"),
            "cpu_ms_per_poll": self.client_cpu / n * 1e3,
            "cpu_ms_per_1000_pdus": per_1000(self.client_cpu, self.pdus),
            "cpu_ms_per_1000_oids": per_1000(self.client_cpu, self.oids),
            "client_sys_pct": self.client_sys / self.client_cpu * 100 if self.client_cpu else 0.0,
            "agent_cpu_ms_per_poll": self.agent_cpu / n * 1e3,
            "pdus_per_poll": self.pdus / n,
            "oids_per_poll": self.oids / n,
            "samples_per_poll": self.samples / n,
            "latency_p50_ms": median(self.latencies) * 1e3,
            "latency_p99_ms": pct(self.latencies, 99) * 1e3,
            "peak_in_flight": float(self.peak_in_flight),
        }


class CountingTransport:
    """Counts PDUs, varbinds and the peak in flight by wrapping ``transport.request``."""

    def __init__(self, transport: SnmpTransport) -> None:
        self.transport = transport
        self.pdus = 0
        self.oids = 0
        self.peak = 0
        inner = transport.request

        async def request(addr: Any, encode: Callable[[int], bytes], **kw: Any) -> Any:
            response = await inner(addr, encode, **kw)
            self.pdus += 1
            self.oids += len(response.varbinds)
            if transport.in_flight >= self.peak:
                self.peak = transport.in_flight + 1  # counted before its finally ran
            return response

        transport.request = request  # type: ignore[method-assign]

    def reset(self) -> None:
        self.pdus = self.oids = self.peak = 0


def make_collectors(agent: Agent, transport: SnmpTransport, n: int) -> list[SnmpCollector]:
    profiles_all = load_config(REPO).profiles
    out = []
    for i in range(n):
        target = SnmpTarget.model_validate(
            {
                "address": "127.0.0.1",
                "port": agent.port,
                "community": agent.community,
                "timeout": 2.0,
                "retries": 1,
                "profiles": PROFILES,
            }
        )
        labels = make_labels({"instance": f"sw{i:03d}", "site": "bench", "criticality": "high"})
        connect = community_connector(target, transport, agent.community.encode())
        profiles = [profiles_all[p] for p in target.profiles]
        out.append(SnmpCollector(target, profiles, labels, SystemClock(), connect))
    return out


async def _alertd_phase(
    agent: Agent, k: int, devices: int, polls: int, max_s: float, prof: cProfile.Profile | None
) -> Phase:
    transport = SnmpTransport(max_in_flight=k)
    await transport.start()
    counting = CountingTransport(transport)
    try:
        collectors = make_collectors(agent, transport, devices)
        # warm-up: every device once, so measured polls compute rates (steady state)
        warm = await asyncio.gather(*(c.collect() for c in collectors), return_exceptions=True)
        bad = [r for r in warm if isinstance(r, BaseException)]
        if bad:
            raise RuntimeError(f"alertd warm-up: {len(bad)} of {devices} polls failed: {bad[0]!r}")
        counting.reset()
        ph = Phase()
        tickets = iter(range(polls))
        deadline = time.perf_counter() + max_s

        async def worker(c: SnmpCollector) -> None:
            for _ in tickets:  # shared iterator: exactly `polls` polls in all
                if time.perf_counter() > deadline:
                    return
                t = time.perf_counter()
                try:
                    samples = await c.collect()
                except Exception:  # counted, reported as errors=
                    ph.errors += 1
                    continue
                ph.latencies.append(time.perf_counter() - t)
                ph.polls += 1
                ph.samples += len(samples)

        a0, s0 = agent.child.cpu(), os.times().system
        c0, t0 = time.process_time(), time.perf_counter()
        if prof is not None:
            prof.enable()
        await asyncio.gather(*(worker(c) for c in collectors))
        if prof is not None:
            prof.disable()
        ph.wall = time.perf_counter() - t0
        ph.client_cpu = time.process_time() - c0
        ph.client_sys = os.times().system - s0
        ph.agent_cpu = agent.child.cpu() - a0
        ph.pdus, ph.oids, ph.peak_in_flight = counting.pdus, counting.oids, counting.peak
        if transport.dropped:
            print(f"# alertd k={k}: replies dropped: {dict(transport.dropped)}", flush=True)
        return ph
    finally:
        transport.close()


def alertd_phase(
    agent: Agent,
    k: int,
    a: argparse.Namespace,
    prof: cProfile.Profile | None = None,
    polls: int | None = None,
) -> Phase:
    gc.collect()
    return asyncio.run(_alertd_phase(agent, k, a.devices, polls or a.polls, a.max_seconds, prof))


# ---------------------------------------------------------------------------------------------
# (b) snmp_exporter


def exporter_config(community: str) -> dict[str, Any]:
    """snmp.yml for snmp_exporter 0.21: upstream-like ``if_mib`` and alertd's columns."""
    lookups = [
        {"labels": ["ifIndex"], "labelname": name, "oid": oid, "type": "DisplayString"}
        for name, oid in IF_LOOKUPS
    ]

    def column_metric(name: str, oid: str, typ: str) -> dict[str, Any]:
        m: dict[str, Any] = {
            "name": name,
            "oid": oid,
            "type": typ,
            "help": f"{name} - {oid}",
            "indexes": [{"labelname": "ifIndex", "type": "gauge"}],
            "lookups": lookups,
        }
        if name in ENUMS:
            m["enum_values"] = ENUMS[name]
        return m

    common = {
        "version": 2,
        "max_repetitions": 25,
        "retries": 1,
        "timeout": "5s",
        "auth": {"community": community},
    }
    up = {"name": "sysUpTime", "oid": "1.3.6.1.2.1.1.3", "type": "gauge", "help": "sysUpTime"}
    if_mib = {
        **common,
        "walk": ["1.3.6.1.2.1.2", "1.3.6.1.2.1.31.1.1"],
        "get": ["1.3.6.1.2.1.1.3.0"],
        "metrics": [
            up,
            {"name": "ifNumber", "oid": "1.3.6.1.2.1.2.1", "type": "gauge", "help": "ifNumber"},
            *(column_metric(*c) for c in IF_COLUMNS),
        ],
    }
    # the columns of collectors/profiles/if-mib.yaml (labels + metrics) and system.yaml
    profile = load_config(REPO).profiles["if-mib"]
    (tbl,) = profile.tables
    by_oid = {oid: (name, typ) for name, oid, typ in IF_COLUMNS}
    col_metrics = [
        column_metric(n, o, t)
        for n, o, t in ((by_oid[m.oid][0], m.oid, by_oid[m.oid][1]) for m in tbl.metrics)
    ]
    cols = {
        **common,
        "walk": [*tbl.labels.values(), *(m.oid for m in tbl.metrics)],
        "get": ["1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.1.5.0"],
        "metrics": [
            up,
            {
                "name": "sysName",
                "oid": "1.3.6.1.2.1.1.5",
                "type": "DisplayString",
                "help": "sysName",
            },
            *col_metrics,
        ],
    }
    return {"if_mib": if_mib, "if_mib_cols": cols}


class Exporter:
    def __init__(self, tmp: Path, agent: Agent) -> None:
        conf = tmp / "snmp.yml"
        conf.write_text(yaml.safe_dump(exporter_config(agent.community), sort_keys=False))
        self.port = free_port(socket.SOCK_STREAM)
        self.agent = agent
        self.child = Child(
            "snmp_exporter",
            [
                EXPORTER,
                f"--config.file={conf}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            tmp / "snmp_exporter.log",
            dict(os.environ),
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if not self.child.alive():
                raise RuntimeError(f"exited at start: {self.child.tail()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return
            time.sleep(0.1)
        raise RuntimeError("did not listen within 15 s")

    def path(self, module: str) -> str:
        return f"/snmp?module={module}&target={self.agent.target}"

    def scrape_once(self, module: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", self.path(module))
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()


_RETURNED = re.compile(rb"^snmp_scrape_pdus_returned (\d+)", re.M)


def exporter_phase(exp: Exporter, module: str, k: int, polls: int, max_s: float) -> Phase:
    ph = Phase()
    lock = threading.Lock()
    tickets = iter(range(polls))
    deadline = time.perf_counter() + max_s
    path = exp.path(module)

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", exp.port, timeout=30)
        try:
            while True:
                with lock:
                    if next(tickets, None) is None or time.perf_counter() > deadline:
                        return
                t = time.perf_counter()
                try:
                    conn.request("GET", path)
                    r = conn.getresponse()
                    body = r.read()
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", exp.port, timeout=30)
                    with lock:
                        ph.errors += 1
                    continue
                wall = time.perf_counter() - t
                m = _RETURNED.search(body)
                with lock:
                    if r.status != 200 or m is None:
                        ph.errors += 1
                        continue
                    ph.latencies.append(wall)
                    ph.polls += 1
                    ph.oids += int(m.group(1))
                    ph.samples += body.count(b"\n") - body.count(b"\n#")
        finally:
            conn.close()

    p0 = agent_in_pkts(exp.agent)
    e0, es0 = exp.child.cpu(), exp.child.sys_cpu()
    a0, t0 = exp.agent.child.cpu(), time.perf_counter()
    with ThreadPoolExecutor(k) as pool:
        for f in [pool.submit(worker) for _ in range(k)]:
            f.result()
    ph.wall = time.perf_counter() - t0
    ph.client_cpu = exp.child.cpu() - e0
    ph.client_sys = exp.child.sys_cpu() - es0
    ph.agent_cpu = exp.agent.child.cpu() - a0
    p1 = agent_in_pkts(exp.agent)
    ph.pdus = (p1 - p0 - 1) if p0 is not None and p1 is not None else 0
    ph.peak_in_flight = k
    return ph


# ---------------------------------------------------------------------------------------------
# (c) snmpbulkwalk


def bulkwalk_rows(agent: Agent, tmp: Path, walks: int, max_s: float) -> dict[str, float] | None:
    if not shutil.which(SNMPBULKWALK):
        print("SKIP snmpbulkwalk: not installed (apt-get install snmp)", flush=True)
        return None
    client = tmp / "snmp-client"
    client.mkdir()
    env = dict(os.environ, MIBS="", SNMP_PERSISTENT_DIR=str(client), SNMPCONFPATH=str(client))
    base = [
        SNMPBULKWALK,
        "-v2c",
        "-c",
        agent.community,
        "-On",
        "-Cr25",
        "-t",
        "2",
        "-r",
        "1",
        agent.target,
    ]
    walls, lines, done = [], 0, 0
    deadline = time.perf_counter() + max_s
    p0 = agent_in_pkts(agent)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    a0, t0 = agent.child.cpu(), time.perf_counter()
    for _ in range(walks):
        if time.perf_counter() > deadline:
            break
        t = time.perf_counter()
        for oid in (IF_TABLE, IF_X_TABLE):
            out = subprocess.run([*base, oid], capture_output=True, env=env, timeout=30)
            if out.returncode != 0:
                print(f"SKIP snmpbulkwalk: exit {out.returncode}: {out.stderr[-200:]!r}")
                return None
            lines += out.stdout.count(b"\n")
        walls.append(time.perf_counter() - t)
        done += 1
    wall = time.perf_counter() - t0
    agent_cpu = agent.child.cpu() - a0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    p1 = agent_in_pkts(agent)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    pdus = (p1 - p0 - 1) if p0 is not None and p1 is not None else 0
    n = max(done, 1)
    return {
        "walks": float(done),
        "polls_per_s": done / wall,
        "oids_per_poll": lines / n,
        "pdus_per_poll": pdus / n,
        "cpu_ms_per_poll": cpu / n * 1e3,
        "cpu_ms_per_1000_pdus": cpu / pdus * 1e6 if pdus else float("nan"),
        "agent_cpu_ms_per_poll": agent_cpu / n * 1e3,
        "wall_ms_p50": median(walls) * 1e3,
    }


# ---------------------------------------------------------------------------------------------
# Profile of alertd's client

AREAS = [
    ("alertd/collect/snmp/ber.py", "codec (ber.py)"),
    ("alertd/collect/snmp/transport.py", "transport.py"),
    ("alertd/collect/snmp/walk.py", "walk.py"),
    ("alertd/collect/snmp/collector.py", "collector.py"),
    ("alertd/collect/snmp/rates.py", "rates.py"),
    ("alertd/model.py", "model.py (Sample, labels)"),
    ("asyncio/", "asyncio (loop, futures, tasks, wait_for)"),
    ("selectors.py", "selectors"),
    ("bench_snmp_poll.py", "bench harness (worker, counting wrapper)"),
]


def _area(key: tuple[str, int, str]) -> str:
    filename, _, func = key
    if filename == "<string>" and func == "__init__":
        return "dataclass __init__ (VarBind, Sample)"
    for needle, area in AREAS:
        if needle in filename:
            return area
    if filename == "~":
        if any(s in func for s in ("sendto", "recvfrom", "recv_into", "epoll", "poll")):
            return "socket/epoll syscalls"
        if "getaddrinfo" in func or "run_in_executor" in func:
            return "getaddrinfo"
        return "builtins (" + re.sub(r"[<>]", "", func)[:40] + ")"
    return Path(filename).name


def print_profile(prof: cProfile.Profile, polls: int) -> None:
    st = pstats.Stats(prof)
    stats: dict[Any, Any] = st.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in stats.values()) or 1.0
    by_area: dict[str, float] = {}
    for key, (_cc, _nc, tt, _ct, _callers) in stats.items():
        by_area[_area(key)] = by_area.get(_area(key), 0.0) + tt
    print("# self time by area (main thread; shares are of the profiled total):")
    rows = sorted(by_area.items(), key=lambda kv: -kv[1])
    table(
        ["area", "share %", "ms/poll (profiled)"],
        [(a, t / total * 100, t / polls * 1e3) for a, t in rows[:16]],
    )
    print("# top functions by self time (a coroutine counts a call per resume):")
    fn_rows = sorted(stats.items(), key=lambda kv: -kv[1][2])[:22]
    table(
        ["function", "calls/poll", "self %", "cum %"],
        [
            (f"{Path(f).name}:{line} {fn}"[:78], nc / polls, tt / total * 100, ct / total * 100)
            for (f, line, fn), (_cc, nc, tt, ct, _c) in fn_rows
        ],
    )


# ---------------------------------------------------------------------------------------------


def summarize(rows: list[dict[str, float]]) -> dict[str, float]:
    out = {k: median([r[k] for r in rows]) for k in rows[0]}
    pps = [r["polls_per_s"] for r in rows]
    cpu = [r["cpu_ms_per_poll"] for r in rows]
    out["polls_per_s_spread_pct"] = (max(pps) - min(pps)) / median(pps) * 100
    out["cpu_ms_per_poll_min"], out["cpu_ms_per_poll_max"] = min(cpu), max(cpu)
    return out


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if not os.path.exists(SNMPD):
        print("SKIP snmp_poll: snmpd not installed (apt-get install snmpd snmp)", flush=True)
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="alertd-bench-snmp-"))
    netns: Netns | None = None
    agent: Agent | None = None
    exp: Exporter | None = None
    t_start = time.perf_counter()
    try:
        where = "host loopback, the machine's real interfaces (--ifaces 0)"
        if a.ifaces > 0:
            if os.geteuid() != 0 or not shutil.which("ip"):
                where = "host loopback, the machine's real interfaces (no root/ip for a netns)"
            else:
                netns = Netns(a.ifaces // 2)
                try:
                    netns.create()
                    netns.enter()
                    where = f"netns {netns.name}: lo + {2 * netns.pairs} veth ports, its loopback"
                except (OSError, subprocess.SubprocessError) as exc:
                    err = getattr(exc, "stderr", b"") or b""
                    print(
                        f"# NOTE: no network namespace ({exc} {err[-200:]!r}); falling back"
                        " to the host's 127.0.0.1 and its real interfaces",
                        flush=True,
                    )
                    netns.close()
                    netns = None
                    where = "host loopback, the machine's real interfaces (netns failed)"
        agent = start_snmpd(tmp, netns)
        rows_n = count_rows(agent)
        ver = subprocess.run([SNMPD, "-v"], capture_output=True, text=True, timeout=10).stdout
        snmpd_ver = next(
            (ln.split(":", 1)[1].strip() for ln in ver.splitlines() if "version" in ln.lower()), "?"
        )
        print(
            f"# agent: net-snmp snmpd {snmpd_ver} on {agent.target} ({where}); ifNumber "
            f"{rows_n}; {os.cpu_count()} CPUs; Python {sys.version.split()[0]}",
            flush=True,
        )

        if not os.path.exists(EXPORTER):
            print("SKIP snmp_exporter: not installed (apt-get install prometheus-snmp-exporter)")
        else:
            try:
                exp = Exporter(tmp, agent)
                for module in ("if_mib", "if_mib_cols"):
                    status, body = exp.scrape_once(module)
                    if status != 200 or not _RETURNED.search(body):
                        raise RuntimeError(f"module {module}: HTTP {status}: {body[:200]!r}")
                v = subprocess.run(
                    [EXPORTER, "--version"], capture_output=True, text=True, timeout=10
                )
                print(f"# {(v.stdout + v.stderr).strip().splitlines()[0]}", flush=True)
            except (RuntimeError, OSError) as exc:
                tail = exp.child.tail() if exp else ""
                print(f"SKIP snmp_exporter: {exc} {tail}", flush=True)
                if exp is not None:
                    exp.child.stop()
                exp = None

        impls = ["alertd"] + (["snmp_exporter", "snmp_exporter_cols"] if exp else [])
        rows: dict[tuple[str, int], list[dict[str, float]]] = {}
        for run in range(a.runs):
            for k in a.levels:
                ph = alertd_phase(agent, k, a)
                rows.setdefault(("alertd", k), []).append(ph.row())
                if exp is not None:
                    for impl, module in (
                        ("snmp_exporter", "if_mib"),
                        ("snmp_exporter_cols", "if_mib_cols"),
                    ):
                        ph = exporter_phase(exp, module, k, a.polls, a.max_seconds)
                        rows.setdefault((impl, k), []).append(ph.row())
            print(
                f"# run {run + 1}/{a.runs} done ({time.perf_counter() - t_start:.0f} s)", flush=True
            )
        walk = bulkwalk_rows(agent, tmp, a.walks, a.max_seconds)

        summary = {key: summarize(r) for key, r in rows.items()}
        print(
            f"\n# medians of {a.runs} run(s), up to {a.polls} device polls each "
            f"({a.devices} alertd devices)"
        )
        for (impl, k), s in summary.items():
            result("snmp_poll", impl=impl, inflight=k, **s)
        if walk is not None:
            result("snmp_poll", impl="snmpbulkwalk", inflight=1, **walk)
        missed = []
        for k in a.levels:
            al = summary[("alertd", k)]
            if exp is None:
                continue
            ex, ec = summary[("snmp_exporter", k)], summary[("snmp_exporter_cols", k)]
            ratio = al["cpu_ms_per_poll"] / ex["cpu_ms_per_poll"]
            if ratio > 1:
                missed.append(k)
            result(
                "snmp_poll_ratio",
                inflight=k,
                alertd_cpu_over_exporter=ratio,
                alertd_cpu_per_oid_over_exporter=al["cpu_ms_per_1000_oids"]
                / ex["cpu_ms_per_1000_oids"],
                alertd_cpu_over_exporter_same_columns=al["cpu_ms_per_poll"] / ec["cpu_ms_per_poll"],
                alertd_cpu_per_pdu_over_exporter=al["cpu_ms_per_1000_pdus"]
                / ex["cpu_ms_per_1000_pdus"],
                alertd_oids_per_poll=al["oids_per_poll"],
                exporter_oids_per_poll=ex["oids_per_poll"],
                alertd_polls_per_min_per_core=60000 / al["cpu_ms_per_poll"],
                exporter_polls_per_min_per_core=60000 / ex["cpu_ms_per_poll"],
                meets_goal="yes" if ratio <= 1 else "no",
            )

        print()
        cols = {
            "cpu_ms_per_poll": "CPU ms/poll",
            "cpu_ms_per_poll_min": "min",
            "cpu_ms_per_poll_max": "max",
            "client_sys_pct": "sys %",
            "cpu_ms_per_1000_pdus": "ms/1k PDUs",
            "cpu_ms_per_1000_oids": "ms/1k OIDs",
            "agent_cpu_ms_per_poll": "agent ms/poll",
            "polls_per_s": "polls/s",
            "oids_per_poll": "OIDs/poll",
            "pdus_per_poll": "PDUs/poll",
            "latency_p50_ms": "p50 ms",
            "errors": "errors",
        }
        table(
            ["impl", "K", *cols.values()],
            [
                (impl, k, *[s[c] for c in cols])
                for (impl, k), s in sorted(
                    summary.items(), key=lambda kv: (kv[0][1], impls.index(kv[0][0]))
                )
            ],
        )
        if walk is not None:
            print(
                f"# snmpbulkwalk ifTable+ifXTable (2 processes): {walk['cpu_ms_per_poll']:.1f} ms"
                f" CPU, {walk['oids_per_poll']:.0f} OIDs, {walk['pdus_per_poll']:.0f} PDUs per "
                f"device walk; agent {walk['agent_cpu_ms_per_poll']:.1f} ms"
            )
        if exp is not None:
            print(
                f"# goal: alertd CPU per device poll <= snmp_exporter's (issue 3: >= "
                f"{GOAL_POLLS_PER_MIN_PER_CORE} 48-port polls/min/core; this agent has "
                f"{rows_n} ifTable rows): "
                + ("met at every level" if not missed else f"MISSED at K={missed}")
            )
        if a.profile or missed:
            k = 10 if 10 in a.levels else a.levels[0]
            prof = cProfile.Profile()
            plain = alertd_phase(agent, k, a, polls=a.profile_polls)
            profiled = alertd_phase(agent, k, a, prof=prof, polls=a.profile_polls)
            print(
                f"\n# profiling alertd at K={k}, {profiled.polls} polls (the same phase "
                f"unprofiled: {plain.client_cpu / max(plain.polls, 1) * 1e3:.2f} ms CPU/poll;"
                f" profiled: {profiled.client_cpu / max(profiled.polls, 1) * 1e3:.2f})"
            )
            print_profile(prof, max(profiled.polls, 1))
        return 0
    finally:
        if exp is not None:
            exp.child.stop()
        if agent is not None:
            agent.child.stop()
        if netns is not None:
            netns.close()
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"# total {time.perf_counter() - t_start:.0f} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
