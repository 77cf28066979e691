"""Poll one SNMP device with its profiles and turn the answers into ``Sample``s.

The same ``Sample`` shape as the host collector: target labels on every sample, plus a row's
index and label columns for table metrics. Counters become per-second rates (see
``rates.py``); the first poll, and the first after an agent restart, yields no rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence

from alertd.clock import Clock
from alertd.collect.snmp.ber import OID, Tag, VarBind, parse_oid
from alertd.collect.snmp.rates import RateTracker
from alertd.collect.snmp.transport import SnmpTransport
from alertd.collect.snmp.walk import Accessor, Session
from alertd.config.collectors import SnmpTarget
from alertd.config.snmp_profiles import Derived, Profile, Table
from alertd.errors import CollectError
from alertd.model import Labels, Sample, merge_labels

log = logging.getLogger(__name__)

SYS_UPTIME: OID = (1, 3, 6, 1, 2, 1, 1, 3, 0)
OPER_DOWN = (2.0, 7.0)  # down, lowerLayerDown
VERSIONS = {"v1": 0, "v2c": 1}


def derive(item: Derived, values: Mapping[str, float]) -> float | None:
    """Compute a derived metric from the row's (or scalars') values, if its inputs are there."""

    def val(name: str | None) -> float | None:
        return values.get(name) if name else None

    if item.kind == "utilization":
        rate, speed = val(item.rate), val(item.speed_mbps)
        if rate is None or not speed:
            return None
        return rate * 8 / (speed * 1e6) * 100
    if item.kind == "percent":
        total = val(item.total)
        part = val(item.part) if item.part else None
        if part is None and (free := val(item.free)) is not None and total is not None:
            part = total - free
        if part is None or not total:
            return None
        return 100.0 * part / total
    admin, oper = val(item.admin), val(item.oper)
    if admin is None or oper is None:
        return None
    return 1.0 if admin == 1 and oper in OPER_DOWN else 0.0


Connector = Callable[[], Awaitable[Accessor]]


async def resolve_ipv4(address: str, port: int) -> tuple[str, int]:
    """Resolve a device name once per poll: replies are matched against the IP literal."""
    with contextlib.suppress(ValueError):
        return str(ipaddress.IPv4Address(address)), port  # a literal needs no resolver thread
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            address, port, family=socket.AF_INET, type=socket.SOCK_DGRAM
        )
    except OSError as exc:
        raise CollectError(f"snmp {address}: cannot resolve: {exc}") from exc
    host, resolved_port = infos[0][4][:2]
    return str(host), int(resolved_port)


def community_connector(
    target: SnmpTarget, transport: SnmpTransport, community: bytes
) -> Connector:
    """Return how to reach a v1/v2c ``target`` through our own codec and ``transport``."""

    async def connect() -> Accessor:
        return Session(
            transport=transport,
            address=await resolve_ipv4(target.address, target.port),
            version=VERSIONS[target.version],
            community=community,
            timeout=target.timeout,
            retries=target.retries,
            max_repetitions=target.max_repetitions,
        )

    return connect


class SnmpCollector:
    """One device: its session settings, profiles and counter memory."""

    def __init__(
        self,
        target: SnmpTarget,
        profiles: Sequence[Profile],
        labels: Labels,
        clock: Clock,
        connect: Connector,
    ) -> None:
        self.target = target
        self.profiles = profiles
        self.labels = labels
        self.clock = clock
        self.connect = connect
        self.rates = RateTracker()
        self._uses_fallback: set[str] = set()  # primary column OIDs the agent lacks
        self._last_poll: float | None = None

    async def collect(self) -> list[Sample]:
        """Poll the device once; raise ``CollectError`` if it doesn't answer."""
        session = await self.connect()
        now, mono = self.clock.now(), self.clock.monotonic()
        keep: set[Hashable] = set()
        scalars = [s for p in self.profiles for s in p.scalars]
        wanted = list(dict.fromkeys([SYS_UPTIME, *(parse_oid(s.oid) for s in scalars)]))
        got = await session.get(wanted)
        uptime = got[SYS_UPTIME].as_float() if SYS_UPTIME in got else None
        elapsed = None if self._last_poll is None else mono - self._last_poll
        self._last_poll = mono
        slack = 5.0 + self.target.timeout * (self.target.retries + 1)
        if self.rates.observe_uptime(None if uptime is None else uptime / 100, elapsed, slack):
            log.info("snmp %s restarted (sysUpTime went back): counters re-seeded", session.where())
        out: list[Sample] = []
        scalar_values: dict[str, float] = {}
        for s in scalars:
            vb = got.get(parse_oid(s.oid))
            if vb is None:
                continue
            if s.kind == "info":
                labels = merge_labels(self.labels, {s.label or "value": vb.as_text()})
                out.append(Sample(s.metric, labels, 1.0, now))
                continue
            value = self._value(vb, s.kind, s.scale, ("scalar", s.metric), mono, keep)
            if value is not None:
                scalar_values[s.metric] = value
                out.append(Sample(s.metric, self.labels, value, now))
        for profile in self.profiles:
            out.extend(self._derived(profile.derived, scalar_values, self.labels, now))
            for table in profile.tables:
                out.extend(await self._table(session, table, now, mono, keep))
        self.rates.forget_except(keep)
        return out

    def _value(
        self,
        vb: VarBind,
        kind: str,
        scale: float,
        key: Hashable,
        mono: float,
        keep: set[Hashable],
    ) -> float | None:
        if kind != "counter":
            raw = vb.as_float()
            return None if raw is None else raw * scale
        if not isinstance(vb.value, int) or vb.tag not in (Tag.COUNTER32, Tag.COUNTER64):
            return None
        keep.add(key)
        bits = 64 if vb.tag == Tag.COUNTER64 else 32
        rate = self.rates.rate(key, vb.value, bits, mono)
        return None if rate is None else rate * scale

    @staticmethod
    def _derived(
        items: Sequence[Derived], values: Mapping[str, float], labels: Labels, now: float
    ) -> list[Sample]:
        out = []
        for item in items:
            value = derive(item, values)
            if value is not None:
                out.append(Sample(item.metric, labels, value, now))
        return out

    async def _table(
        self, session: Accessor, table: Table, now: float, mono: float, keep: set[Hashable]
    ) -> list[Sample]:
        def column_of(oid: str, fallback: str | None) -> OID:
            return parse_oid(fallback if fallback and oid in self._uses_fallback else oid)

        label_columns = {name: parse_oid(oid) for name, oid in table.labels.items()}
        metric_columns = {m.metric: column_of(m.oid, m.fallback_oid) for m in table.metrics}
        walked = await session.walk_columns(
            list(dict.fromkeys([*label_columns.values(), *metric_columns.values()]))
        )
        missing = [
            m
            for m in table.metrics
            if m.fallback_oid
            and m.oid not in self._uses_fallback
            and not walked[metric_columns[m.metric]]
        ]
        if missing:  # e.g. no ifXTable: use the 32-bit ifTable counters from now on
            for m in missing:
                self._uses_fallback.add(m.oid)
                metric_columns[m.metric] = parse_oid(m.fallback_oid or m.oid)
            walked.update(await session.walk_columns([metric_columns[m.metric] for m in missing]))
        indexes = sorted({idx for col in metric_columns.values() for idx in walked[col]})
        out: list[Sample] = []
        for idx in indexes:
            row_labels = {table.index_label: ".".join(map(str, idx))}
            for name, col in label_columns.items():
                vb = walked[col].get(idx)
                text = vb.as_text() if vb is not None else ""
                if text:
                    row_labels[name] = text
            labels = merge_labels(self.labels, row_labels)
            values: dict[str, float] = {}
            for m in table.metrics:
                vb = walked[metric_columns[m.metric]].get(idx)
                if vb is None:
                    continue
                # the column is in the key: a switch to the 32-bit fallback starts a new counter
                key = (table.name, m.metric, metric_columns[m.metric], idx)
                value = self._value(vb, m.kind, m.scale, key, mono, keep)
                if value is not None:
                    values[m.metric] = value
                    out.append(Sample(m.metric, labels, value, now))
            out.extend(self._derived(table.derived, values, labels, now))
        return out
