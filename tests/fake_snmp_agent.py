"""An in-process SNMP v1/v2c agent on 127.0.0.1 for unit tests, serving a recorded walk.

``FakeSnmpAgent`` answers GET, GETNEXT and GETBULK from a dict OID -> ``VarBind`` (by default
the recorded walk in ``tests/data/snmp/``, refreshable from a real snmpd with
``python -m tests.snmp_agent --record``), in lexicographic OID order, with the v2c exceptions
(noSuchObject, noSuchInstance, endOfMibView) or v1's noSuchName error status. Replies are
encoded with the collector's own ``ber.encode_response``; requests are decoded here by a small
envelope parser that then hands the PDU to ``ber.decode_response`` (a request PDU has the same
shape as a response: only the tag differs).

Knobs, settable per test between requests:

* ``community``: requests with another community are not answered (as a real agent);
* ``drop_next``: that many requests go unanswered;
* ``fault``: one of ``FAULTS``, applied to every answered request:
    - ``truncated``: the reply is cut short (its request id still readable);
    - ``wrong_request_id``: the reply carries another request id;
    - ``garbage``: the reply is bytes that are no SNMP message at all;
    - ``no_such_object``: every value is noSuchObject (GET, GETNEXT and GETBULK);
    - ``loop``: GETNEXT/GETBULK return an OID that exists as itself, not its successor
      (so a walk sees the same OID again: the OIDs stop increasing);
    - ``too_big``: GETBULK with more than ``too_big_above`` repetitions gets tooBig;
    - ``duplicate_reply``: every reply is sent twice (the copy ``duplicate_delay`` later);
* ``delay``: seconds to wait before each reply;
* ``set(oid, varbind)`` / ``remove(prefix)``: change the served values between polls (counters
  moving, a Counter32 wrap, sysUpTime going back after a restart, a column going away).

``requests`` counts the requests received by PDU type ("get", "getnext", "getbulk"), and
``bulk_repetitions`` records max-repetitions of every GETBULK, in order.
"""

from __future__ import annotations

import asyncio
import bisect
import socket
import struct
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alertd.collect.snmp import ber
from alertd.collect.snmp.ber import OID, Tag, VarBind, parse_oid
from tests.snmp_agent import LOCALHOST_WALK, load_walk, walk_value

HOST = "127.0.0.1"
FAULTS = frozenset(
    {
        "truncated",
        "wrong_request_id",
        "garbage",
        "no_such_object",
        "loop",
        "too_big",
        "duplicate_reply",
    }
)
ERROR_TOO_BIG = 1
ERROR_NO_SUCH_NAME = 2
PDU_NAMES = {ber.PDU_GET: "get", ber.PDU_GETNEXT: "getnext", ber.PDU_GETBULK: "getbulk"}
GARBAGE = b"\xde\xad\xbe\xef not an SNMP message"

_TAGS = {
    "INTEGER": Tag.INTEGER,
    "Counter32": Tag.COUNTER32,
    "Gauge32": Tag.GAUGE32,
    "Counter64": Tag.COUNTER64,
    "Timeticks": Tag.TIMETICKS,
    "STRING": Tag.OCTET_STRING,
    "Hex-STRING": Tag.OCTET_STRING,
    "OID": Tag.OBJECT_IDENTIFIER,
    "IpAddress": Tag.IP_ADDRESS,
    "Opaque-Float": Tag.OPAQUE,
}


def row_varbind(oid: str, kind: str, text: str) -> VarBind:
    """The ``VarBind`` of one recorded-walk row (see ``tests.snmp_agent.load_walk``)."""
    value = walk_value(kind, text)
    tag = _TAGS[kind]
    if kind == "Opaque-Float":  # net-snmp's Opaque-wrapped float: 9f 78 04 <IEEE single>
        assert isinstance(value, float)
        return VarBind(parse_oid(oid), tag, b"\x9f\x78\x04" + struct.pack(">f", value))
    if kind == "OID":
        assert isinstance(value, str)
        return VarBind(parse_oid(oid), tag, parse_oid(value))
    if kind == "IpAddress":
        assert isinstance(value, str)
        return VarBind(parse_oid(oid), tag, socket.inet_aton(value))
    assert isinstance(value, int | bytes)
    return VarBind(parse_oid(oid), tag, value)


def load_varbinds(path: Path = LOCALHOST_WALK) -> dict[OID, VarBind]:
    """OID -> VarBind of every row of a recorded walk."""
    out: dict[OID, VarBind] = {}
    for row in load_walk(path):
        vb = row_varbind(*row)
        out[vb.oid] = vb
    return out


@dataclass(frozen=True, slots=True)
class Request:
    """A decoded GET/GETNEXT/GETBULK (``non_repeaters``/``max_repetitions`` 0 unless bulk)."""

    version: int
    community: bytes
    pdu: int
    request_id: int
    non_repeaters: int
    max_repetitions: int
    oids: tuple[OID, ...]


def _content(buf: bytes, pos: int) -> tuple[int, int]:
    """Return the (start, end) of the content of the TLV at ``pos`` (its length octets read)."""
    first = buf[pos + 1]
    if first < 0x80:
        return pos + 2, pos + 2 + first
    count = first & 0x7F
    start = pos + 2 + count
    return start, start + int.from_bytes(buf[pos + 2 : start], "big")


def decode_request(data: bytes) -> Request | None:
    """Decode a v1/v2c GET, GETNEXT or GETBULK; ``None`` for anything else or junk."""
    try:
        if data[0] != 0x30:
            return None
        pos, _ = _content(data, 0)  # message SEQUENCE
        pos = _content(data, pos)[1]  # version INTEGER
        pos = _content(data, pos)[1]  # community OCTET STRING
        pdu = data[pos]
        if pdu not in PDU_NAMES:
            return None
        # A request PDU is shaped like a Response (request-id, two INTEGERs, varbinds):
        # retag it and let the collector's strict decoder do the rest.
        decoded = ber.decode_response(data[:pos] + bytes((ber.PDU_RESPONSE,)) + data[pos + 1 :])
    except (IndexError, ber.SnmpDecodeError):
        return None
    bulk = pdu == ber.PDU_GETBULK
    return Request(
        version=decoded.version,
        community=decoded.community,
        pdu=pdu,
        request_id=decoded.request_id,
        non_repeaters=decoded.error_status if bulk else 0,
        max_repetitions=decoded.error_index if bulk else 0,
        oids=tuple(vb.oid for vb in decoded.varbinds),
    )


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, agent: FakeSnmpAgent) -> None:
        self.agent = agent

    def datagram_received(self, data: bytes, addr: tuple[str | Any, ...]) -> None:
        self.agent._received(data, (str(addr[0]), int(addr[1])))


class FakeSnmpAgent:
    """An asyncio UDP SNMP agent on 127.0.0.1 (port picked at start); see the module doc."""

    def __init__(
        self,
        values: Mapping[OID, VarBind] | None = None,
        *,
        community: bytes = b"public",
    ) -> None:
        self.community = community
        self.drop_next = 0
        self.fault: str | None = None
        self.too_big_above = 10
        self.delay = 0.0
        self.duplicate_delay = 0.0
        self.requests: Counter[str] = Counter()
        self.bulk_repetitions: list[int] = []
        self.undecodable = 0
        self._values: dict[OID, VarBind] = dict(load_varbinds() if values is None else values)
        self._oids: list[OID] = sorted(self._values)
        self._transport: asyncio.DatagramTransport | None = None
        self._pending: set[asyncio.TimerHandle] = set()

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> FakeSnmpAgent:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(HOST, 0)
        )
        self._transport = transport
        return self

    def close(self) -> None:
        for handle in self._pending:
            handle.cancel()
        self._pending.clear()
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    async def __aenter__(self) -> FakeSnmpAgent:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    @property
    def address(self) -> tuple[str, int]:
        if self._transport is None:
            raise RuntimeError("agent not started")
        host, port = self._transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    # -- the MIB ------------------------------------------------------------------------------

    def get_value(self, oid: OID | str) -> VarBind | None:
        return self._values.get(parse_oid(oid) if isinstance(oid, str) else oid)

    def set(self, oid: OID | str, varbind: VarBind | int, tag: int | None = None) -> None:
        """Serve ``varbind`` at ``oid`` (an int keeps the current tag, or uses ``tag``)."""
        key = parse_oid(oid) if isinstance(oid, str) else tuple(oid)
        if isinstance(varbind, VarBind):
            vb = VarBind(key, varbind.tag, varbind.value)
        elif tag is not None:
            vb = VarBind(key, tag, varbind)
        elif (old := self._values.get(key)) is not None:
            vb = VarBind(key, old.tag, varbind)
        else:
            raise KeyError(f"no value at {ber.format_oid(key)}: pass a tag")
        if key not in self._values:
            bisect.insort(self._oids, key)
        self._values[key] = vb

    def remove(self, prefix: OID | str) -> int:
        """Stop serving ``prefix`` and everything under it; return how many OIDs went."""
        key = parse_oid(prefix) if isinstance(prefix, str) else tuple(prefix)
        gone = [o for o in self._oids if o[: len(key)] == key]
        for oid in gone:
            del self._values[oid]
        self._oids = [o for o in self._oids if o[: len(key)] != key]
        return len(gone)

    def under(self, prefix: OID | str) -> dict[OID, VarBind]:
        """The served values under ``prefix``, in OID order."""
        key = parse_oid(prefix) if isinstance(prefix, str) else tuple(prefix)
        start = bisect.bisect_right(self._oids, key)
        out: dict[OID, VarBind] = {}
        for oid in self._oids[start:]:
            if oid[: len(key)] != key:
                break
            out[oid] = self._values[oid]
        return out

    def _next(self, oid: OID) -> VarBind | None:
        """The first value after ``oid`` in lexicographic order (``loop``: ``oid`` itself)."""
        if self.fault == "loop" and oid in self._values:
            return self._values[oid]
        i = bisect.bisect_right(self._oids, oid)
        return self._values[self._oids[i]] if i < len(self._oids) else None

    def _missing_tag(self, oid: OID) -> int:
        """noSuchInstance if the object (the OID minus its last arc) has instances, else
        noSuchObject."""
        parent = oid[:-1]
        i = bisect.bisect_right(self._oids, parent)
        has_instances = i < len(self._oids) and self._oids[i][: len(parent)] == parent
        return Tag.NO_SUCH_INSTANCE if has_instances else Tag.NO_SUCH_OBJECT

    # -- answering ----------------------------------------------------------------------------

    def _received(self, data: bytes, addr: tuple[str, int]) -> None:
        request = decode_request(data)
        if request is None:
            self.undecodable += 1
            return
        self.requests[PDU_NAMES[request.pdu]] += 1
        if request.pdu == ber.PDU_GETBULK:
            self.bulk_repetitions.append(request.max_repetitions)
        if request.community != self.community:
            return  # as net-snmp: a wrong community is not answered (snmpInBadCommunityNames)
        if request.pdu == ber.PDU_GETBULK and request.version == ber.VERSION_1:
            return  # no GETBULK in v1
        if self.drop_next > 0:
            self.drop_next -= 1
            return
        reply = self.reply_to(request)
        self._send(reply, addr, self.delay)
        if self.fault == "duplicate_reply":
            self._send(reply, addr, self.delay + self.duplicate_delay)

    def _send(self, payload: bytes, addr: tuple[str, int], delay: float) -> None:
        if self._transport is None:
            return
        if delay <= 0:
            self._transport.sendto(payload, addr)
            return
        loop = asyncio.get_running_loop()

        def send() -> None:
            self._pending.discard(handle)
            if self._transport is not None:
                self._transport.sendto(payload, addr)

        handle = loop.call_later(delay, send)
        self._pending.add(handle)

    def reply_to(self, request: Request) -> bytes:
        """The encoded reply to ``request``, faults applied."""
        if self.fault is not None and self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}; one of {sorted(FAULTS)}")
        if self.fault == "garbage":
            return GARBAGE
        varbinds, status, index = self._answer(request)
        request_id = request.request_id
        if self.fault == "wrong_request_id":
            request_id = request_id + 1 if request_id < 2**31 - 1 else 1
        try:
            reply = ber.encode_response(
                request.version, request.community, request_id, varbinds, status, index
            )
        except ValueError:  # over 65535 bytes: what an agent says when it can't fit
            reply = ber.encode_response(
                request.version, request.community, request_id, _nulls(request), ERROR_TOO_BIG
            )
        if self.fault == "truncated":
            return reply[: max(len(reply) * 2 // 3, len(reply) - 8)]
        return reply

    def _answer(self, request: Request) -> tuple[list[VarBind], int, int]:
        v1 = request.version == ber.VERSION_1
        if self.fault == "no_such_object":
            return [VarBind(o, Tag.NO_SUCH_OBJECT, None) for o in request.oids], 0, 0
        if request.pdu == ber.PDU_GET:
            out: list[VarBind] = []
            for i, oid in enumerate(request.oids, start=1):
                vb = self._values.get(oid)
                if vb is None:
                    if v1:
                        return _nulls(request), ERROR_NO_SUCH_NAME, i
                    vb = VarBind(oid, self._missing_tag(oid), None)
                out.append(vb)
            return out, 0, 0
        if request.pdu == ber.PDU_GETNEXT:
            out = []
            for i, oid in enumerate(request.oids, start=1):
                vb = self._next(oid)
                if vb is None:
                    if v1:
                        return _nulls(request), ERROR_NO_SUCH_NAME, i
                    vb = VarBind(oid, Tag.END_OF_MIB_VIEW, None)
                out.append(vb)
            return out, 0, 0
        return self._bulk(request)

    def _bulk(self, request: Request) -> tuple[list[VarBind], int, int]:
        if self.fault == "too_big" and request.max_repetitions > self.too_big_above:
            return _nulls(request), ERROR_TOO_BIG, 0
        non_rep = min(max(request.non_repeaters, 0), len(request.oids))
        out = [self._next_or_end(oid) for oid in request.oids[:non_rep]]
        cursors = list(request.oids[non_rep:])
        for _ in range(max(request.max_repetitions, 0) if cursors else 0):
            row = [self._next_or_end(oid) for oid in cursors]
            out.extend(row)
            cursors = [vb.oid for vb in row]
            if all(vb.tag == Tag.END_OF_MIB_VIEW for vb in row):
                break  # RFC 3416 4.2.3: the agent may stop once every repeater is at the end
        return out, 0, 0

    def _next_or_end(self, oid: OID) -> VarBind:
        vb = self._next(oid)
        return vb if vb is not None else VarBind(oid, Tag.END_OF_MIB_VIEW, None)


def _nulls(request: Request) -> list[VarBind]:
    return [VarBind(oid, Tag.NULL, None) for oid in request.oids]


def varbinds_of(rows: Iterable[tuple[str, str, str]]) -> dict[OID, VarBind]:
    """OID -> VarBind of the given recorded-walk rows."""
    return {vb.oid: vb for vb in (row_varbind(*row) for row in rows)}
