"""A small, strict BER codec for SNMP v1/v2c messages: the hot polling path of the collector.

The SNMP collector encodes GET, GETNEXT and GETBULK requests here and decodes the agent's
Response PDUs into ``VarBind`` values; SNMPv3 and traps go through pysnmp instead. Only what
SNMP uses of X.690 is supported: single-octet tags, definite lengths (short and long form, at
most four length octets), the SMIv2 value types, and messages of at most 65535 bytes.

``decode_response`` raises ``SnmpDecodeError`` and nothing else for any input. Its ``reason``
is a short stable label, fit for a metric label:

  truncated       the data ends (or its enclosing element ends) before a required element
  bad_length      indefinite length, more than 4 length octets, or a length past its container
  bad_tag         an unexpected or unknown tag, or a constructed value where a primitive belongs
  bad_version     a version other than 0 (v1) or 1 (v2c)
  bad_pdu_type    a PDU other than Response (0xA2): requests, traps, reports
  bad_oid         an empty OID, an unterminated arc, or an arc above 2^32-1
  bad_value       a value of the wrong size: empty INTEGER, IpAddress not 4 bytes, NULL with content
  too_long        a number wider than its type allows, or a message above 65535 bytes
  trailing_bytes  bytes after the message, or after the last element inside a container

Leniency, for what real agents send: unsigned types (Counter32, Gauge32, TimeTicks,
Counter64) are read as unsigned even when the sign-padding 0x00 octet is missing; INTEGER
takes up to 5 octets (pyasn1 encodes -2^31 in 5, and some agents put an unsigned 32-bit value
in an INTEGER); non-minimal lengths, redundant leading 0x80 octets in OID arcs, OIDs longer
than 128 arcs and v2c-only types in v1 messages are accepted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache

from alertd.errors import CollectError

OID = tuple[int, ...]

MAX_MESSAGE_SIZE = 65535
MAX_ARC = 0xFFFFFFFF
MAX_OID_ARCS = 128  # RFC 2578 section 3.5
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1

VERSION_1 = 0
VERSION_2C = 1
PDU_GET, PDU_GETNEXT, PDU_RESPONSE, PDU_GETBULK = 0xA0, 0xA1, 0xA2, 0xA5


class SnmpDecodeError(CollectError, ValueError):
    """A reply could not be decoded; ``reason`` is a stable label, ``offset`` the byte position."""

    def __init__(self, reason: str, detail: str, offset: int) -> None:
        super().__init__(f"snmp decode: {reason} at byte {offset}: {detail}")
        self.reason = reason
        self.detail = detail
        self.offset = offset


class Tag(IntEnum):
    """BER tags of the SNMP value types (RFC 2578, RFC 3416)."""

    INTEGER = 0x02
    OCTET_STRING = 0x04
    NULL = 0x05
    OBJECT_IDENTIFIER = 0x06
    IP_ADDRESS = 0x40
    COUNTER32 = 0x41
    GAUGE32 = 0x42
    TIMETICKS = 0x43
    OPAQUE = 0x44
    COUNTER64 = 0x46
    NO_SUCH_OBJECT = 0x80
    NO_SUCH_INSTANCE = 0x81
    END_OF_MIB_VIEW = 0x82


_EXCEPTIONS = frozenset({Tag.NO_SUCH_OBJECT, Tag.NO_SUCH_INSTANCE, Tag.END_OF_MIB_VIEW})
_COUNTERS = frozenset({Tag.COUNTER32, Tag.COUNTER64})
_NUMERIC = frozenset({Tag.INTEGER, Tag.COUNTER32, Tag.GAUGE32, Tag.TIMETICKS, Tag.COUNTER64})
_INT_RANGES: dict[int, tuple[int, int]] = {
    Tag.INTEGER: (-(2**31), 2**31 - 1),
    Tag.COUNTER32: (0, 2**32 - 1),
    Tag.GAUGE32: (0, 2**32 - 1),
    Tag.TIMETICKS: (0, 2**32 - 1),
    Tag.COUNTER64: (0, 2**64 - 1),
}


@dataclass(frozen=True, slots=True)
class VarBind:
    """One variable binding: an OID, its BER tag and the decoded value.

    ``value`` is an ``int`` for the numeric types, ``bytes`` for OCTET STRING, Opaque and
    IpAddress (4 bytes), an ``OID`` for OBJECT IDENTIFIER, and ``None`` for NULL and the
    v2c exceptions (noSuchObject, noSuchInstance, endOfMibView).
    """

    oid: OID
    tag: int
    value: int | bytes | OID | None

    @property
    def is_exception(self) -> bool:
        """Whether the agent answered noSuchObject, noSuchInstance or endOfMibView."""
        return self.tag in _EXCEPTIONS

    @property
    def is_counter(self) -> bool:
        """Whether the value is a Counter32 or Counter64 (a rate needs two of them)."""
        return self.tag in _COUNTERS

    def as_float(self) -> float | None:
        """Return the value as a float: numbers as is, numeric text (UCD laLoad "0.15") parsed.

        Everything else (NULL, exceptions, OIDs, IpAddress, text that is not a finite number)
        gives ``None``.
        """
        value = self.value
        if self.tag in _NUMERIC and isinstance(value, int):
            return float(value)
        if self.tag == Tag.OCTET_STRING and isinstance(value, bytes):
            try:
                number = float(value.decode("ascii"))
            except (UnicodeDecodeError, ValueError):
                return None
            return number if math.isfinite(number) else None
        return None

    def as_text(self) -> str:
        """Return the value as text, for labels: strings as UTF-8 (bad bytes replaced).

        IpAddress gives the dotted quad, an OID its dotted form, numbers their decimal form,
        and NULL or the exceptions the empty string.
        """
        value = self.value
        if value is None:
            return ""
        if isinstance(value, bytes):
            if self.tag == Tag.IP_ADDRESS:
                return ".".join(map(str, value))
            return value.decode("utf-8", "replace")
        if isinstance(value, tuple):
            return format_oid(value)
        return str(value)


@dataclass(frozen=True, slots=True)
class Response:
    """A decoded Response PDU with the message envelope it came in."""

    version: int
    community: bytes
    request_id: int
    error_status: int
    error_index: int
    varbinds: tuple[VarBind, ...]


# ---------------------------------------------------------------------------------------------
# OIDs


def parse_oid(text: str) -> OID:
    """Parse dotted numeric OID text ("1.3.6.1.2.1.1.3.0", a leading dot allowed).

    Raises ``ValueError`` for names, empty arcs, fewer than two arcs, or arcs X.690 and
    RFC 2578 do not allow (first arc above 2, second above 39 under 0 or 1, any above 2^32-1).
    """
    parts = (text[1:] if text.startswith(".") else text).split(".")
    if not all(part.isascii() and part.isdigit() for part in parts):
        raise ValueError(f"bad OID {text!r}: arcs must be decimal numbers")
    oid = tuple(map(int, parts))
    _check_oid(oid)
    return oid


def format_oid(oid: OID) -> str:
    """Return the dotted form of ``oid`` without a leading dot."""
    return ".".join(map(str, oid))


def _check_oid(oid: OID) -> None:
    if not 2 <= len(oid) <= MAX_OID_ARCS:
        raise ValueError(f"bad OID {format_oid(oid)!r}: needs 2 to {MAX_OID_ARCS} arcs")
    first, second = oid[0], oid[1]
    if first > 2 or (first < 2 and second > 39):
        raise ValueError(f"bad OID {format_oid(oid)!r}: first arcs must be 0.0-39, 1.0-39 or 2.N")
    if min(oid) < 0 or max(oid) > MAX_ARC:
        raise ValueError(f"bad OID {format_oid(oid)!r}: arcs must be 0..{MAX_ARC}")


def _oid_content(oid: OID) -> bytes:
    _check_oid(oid)
    out = bytearray()
    for arc in (oid[0] * 40 + oid[1], *oid[2:]):
        if arc < 0x80:
            out.append(arc)
            continue
        septets = [arc & 0x7F]
        arc >>= 7
        while arc:
            septets.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(septets))
    return bytes(out)


# Decoded OIDs by their content octets: a poller sees the same few thousand OIDs every cycle,
# so a lookup replaces the arc arithmetic and the tuples are shared. Cleared when full.
_OID_CACHE: dict[bytes, OID] = {}
_OID_CACHE_SIZE = 32768


def _decode_oid(buf: bytes, start: int, end: int) -> OID:
    if start >= end:
        raise SnmpDecodeError("bad_oid", "empty OBJECT IDENTIFIER", start)
    chunk = buf[start:end]
    if chunk.isascii():  # every arc below 128: one octet each, the common case
        first = chunk[0]
        if first < 80:
            return (first // 40, first % 40, *chunk[1:])
        return (2, first - 80, *chunk[1:])
    arcs: list[int] = []
    acc = 0
    for octet in chunk:
        acc = (acc << 7) | (octet & 0x7F)
        if octet < 0x80:
            arcs.append(acc)
            acc = 0
        elif acc > MAX_ARC + 80:  # the first subidentifier carries 80 + arc 2
            raise SnmpDecodeError("bad_oid", "OID arc above 2^32-1", start)
    if chunk[-1] & 0x80:
        raise SnmpDecodeError("bad_oid", "OID ends inside an arc", end - 1)
    first = arcs[0]
    if first < 80:
        arcs[0:1] = divmod(first, 40)
    else:
        arcs[0:1] = (2, first - 80)
    if max(arcs) > MAX_ARC:
        raise SnmpDecodeError("bad_oid", "OID arc above 2^32-1", start)
    return tuple(arcs)


# ---------------------------------------------------------------------------------------------
# Encoding


def _tlv(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes((tag, size)) + content
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(octets))) + octets + content


def _int_content(value: int) -> bytes:
    return value.to_bytes(
        (value if value >= 0 else ~value).bit_length() // 8 + 1, "big", signed=True
    )


@lru_cache(maxsize=16384)
def _oid_tlv(oid: OID) -> bytes:
    return _tlv(Tag.OBJECT_IDENTIFIER, _oid_content(oid))


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name} {value} out of range {low}..{high}")


def _message(
    version: int, community: bytes, pdu_tag: int, fields: Sequence[int], vbl: bytes
) -> bytes:
    if version not in (VERSION_1, VERSION_2C):
        raise ValueError(f"SNMP version {version} not supported here (0 = v1, 1 = v2c)")
    header = b"".join(_tlv(Tag.INTEGER, _int_content(v)) for v in fields)
    pdu = _tlv(pdu_tag, header + _tlv(0x30, vbl))
    message = _tlv(
        0x30, _tlv(Tag.INTEGER, bytes((version,))) + _tlv(Tag.OCTET_STRING, community) + pdu
    )
    if len(message) > MAX_MESSAGE_SIZE:
        raise ValueError(f"SNMP message of {len(message)} bytes exceeds {MAX_MESSAGE_SIZE}")
    return message


def _null_varbinds(oids: Sequence[OID]) -> bytes:
    return b"".join(_tlv(0x30, _oid_tlv(tuple(oid)) + b"\x05\x00") for oid in oids)


def encode_get(version: int, community: bytes, request_id: int, oids: Sequence[OID]) -> bytes:
    """Encode a GetRequest for ``oids`` (values NULL); ``version`` 0 is v1, 1 is v2c."""
    _check_range("request-id", request_id, _INT32_MIN, _INT32_MAX)
    return _message(version, community, PDU_GET, (request_id, 0, 0), _null_varbinds(oids))


def encode_getnext(version: int, community: bytes, request_id: int, oids: Sequence[OID]) -> bytes:
    """Encode a GetNextRequest for ``oids`` (values NULL); ``version`` 0 is v1, 1 is v2c."""
    _check_range("request-id", request_id, _INT32_MIN, _INT32_MAX)
    return _message(version, community, PDU_GETNEXT, (request_id, 0, 0), _null_varbinds(oids))


def encode_getbulk(
    community: bytes, request_id: int, non_repeaters: int, max_repetitions: int, oids: Sequence[OID]
) -> bytes:
    """Encode a v2c GetBulkRequest: the first ``non_repeaters`` OIDs once, the rest repeated."""
    _check_range("request-id", request_id, _INT32_MIN, _INT32_MAX)
    _check_range("non-repeaters", non_repeaters, 0, _INT32_MAX)
    _check_range("max-repetitions", max_repetitions, 0, _INT32_MAX)
    fields = (request_id, non_repeaters, max_repetitions)
    return _message(VERSION_2C, community, PDU_GETBULK, fields, _null_varbinds(oids))


def _value_content(tag: int, value: int | bytes | OID | None) -> bytes:
    if tag == 0x04 or tag == 0x44:  # OCTET STRING, Opaque
        if isinstance(value, bytes):
            return value
    elif tag in _INT_RANGES:
        if isinstance(value, int) and not isinstance(value, bool):
            low, high = _INT_RANGES[tag]
            if not low <= value <= high:
                raise ValueError(f"{Tag(tag).name} value {value} out of range {low}..{high}")
            return _int_content(value)
    elif tag == 0x05 or tag in _EXCEPTIONS:
        if value is None:
            return b""
    elif tag == 0x40:
        if isinstance(value, bytes) and len(value) == 4:
            return value
    elif tag == 0x06 and isinstance(value, tuple):
        return _oid_content(value)
    raise ValueError(f"cannot encode tag 0x{tag:02x} with value {value!r}")


def encode_response(
    version: int,
    community: bytes,
    request_id: int,
    varbinds: Sequence[VarBind],
    error_status: int = 0,
    error_index: int = 0,
) -> bytes:
    """Encode a Response PDU carrying ``varbinds``, as an agent would (tests, fakes, benches)."""
    fields = (request_id, error_status, error_index)
    for name, value in zip(("request-id", "error-status", "error-index"), fields, strict=True):
        _check_range(name, value, _INT32_MIN, _INT32_MAX)
    vbl = b"".join(
        _tlv(0x30, _oid_tlv(tuple(vb.oid)) + _tlv(vb.tag, _value_content(vb.tag, vb.value)))
        for vb in varbinds
    )
    return _message(version, community, PDU_RESPONSE, fields, vbl)


# ---------------------------------------------------------------------------------------------
# Decoding


def _length(
    buf: bytes, pos: int, limit: int, what: str, over: str = "bad_length"
) -> tuple[int, int]:
    """Read the length octets at ``pos``; return the content's (start, end) inside ``limit``."""
    if pos >= limit:
        raise SnmpDecodeError("truncated", f"{what}: no length octet", pos)
    first = buf[pos]
    if first < 0x80:
        start = pos + 1
        end = start + first
    elif first == 0x80:
        raise SnmpDecodeError("bad_length", f"{what}: indefinite length", pos)
    else:
        count = first & 0x7F
        if count > 4:
            raise SnmpDecodeError("bad_length", f"{what}: {count} length octets", pos)
        start = pos + 1 + count
        if start > limit:
            raise SnmpDecodeError("truncated", f"{what}: length octets cut off", pos)
        end = start + int.from_bytes(buf[pos + 1 : start], "big")
    if end > limit:
        raise SnmpDecodeError(over, f"{what}: length {end - start} runs past byte {limit}", pos)
    return start, end


def _element(buf: bytes, pos: int, limit: int, tag: int, what: str) -> tuple[int, int]:
    """Expect ``tag`` at ``pos``; return the content's (start, end)."""
    if pos >= limit:
        raise SnmpDecodeError("truncated", f"{what}: missing", pos)
    if buf[pos] != tag:
        raise SnmpDecodeError("bad_tag", f"{what}: tag 0x{buf[pos]:02x}, want 0x{tag:02x}", pos)
    return _length(buf, pos + 1, limit, what)


def _integer(buf: bytes, pos: int, limit: int, what: str) -> tuple[int, int]:
    """Read an INTEGER element at ``pos``; return (value, position after it)."""
    start, end = _element(buf, pos, limit, Tag.INTEGER, what)
    return _signed(buf, start, end, what), end


def _signed(buf: bytes, start: int, end: int, what: str) -> int:
    size = end - start
    if size == 1:
        value = buf[start]
        return value - 256 if value > 127 else value
    if size == 0:
        raise SnmpDecodeError("bad_value", f"{what}: empty INTEGER", start)
    if size > 5:
        raise SnmpDecodeError("too_long", f"{what}: INTEGER of {size} octets", start)
    return int.from_bytes(buf[start:end], "big", signed=True)


def _value(buf: bytes, tag: int, start: int, end: int) -> int | bytes | OID | None:
    size = end - start
    if tag == 0x04 or tag == 0x44:  # OCTET STRING, Opaque
        return buf[start:end]
    if 0x41 <= tag <= 0x43 or tag == 0x46:  # Counter32, Gauge32, TimeTicks, Counter64
        if size == 1:
            return buf[start]
        limit = 9 if tag == 0x46 else 5
        if size == 0:
            raise SnmpDecodeError("bad_value", f"empty {Tag(tag).name}", start)
        if size > limit or (size == limit and buf[start]):
            raise SnmpDecodeError("too_long", f"{Tag(tag).name} of {size} octets", start)
        return int.from_bytes(buf[start:end], "big")
    if tag == 0x02:
        return _signed(buf, start, end, "INTEGER value")
    if tag == 0x06:
        return _decode_oid(buf, start, end)
    if tag == 0x05 or 0x80 <= tag <= 0x82:  # NULL and the v2c exceptions
        if size:
            raise SnmpDecodeError("bad_value", f"tag 0x{tag:02x} with {size} content octets", start)
        return None
    if tag == 0x40:
        if size != 4:
            raise SnmpDecodeError("bad_value", f"IpAddress of {size} octets", start)
        return buf[start:end]
    raise SnmpDecodeError("bad_tag", f"unknown value tag 0x{tag:02x}", start)


def _varbind_bounds(buf: bytes, pos: int, end: int, nth: int) -> tuple[int, int, int]:
    """Check one varbind in full; return (name start, name end = value tag, varbind end)."""
    what = f"varbind {nth}"
    start, vb_end = _element(buf, pos, end, 0x30, what)
    name, name_end = _element(buf, start, vb_end, 0x06, f"{what} name")
    if name_end >= vb_end:
        raise SnmpDecodeError("truncated", f"{what}: no value", name_end)
    _, value_end = _length(buf, name_end + 1, vb_end, f"{what} value")
    if value_end != vb_end:
        raise SnmpDecodeError("trailing_bytes", f"{what}: bytes after the value", value_end)
    return name, name_end, vb_end


def _value_start(buf: bytes, tag_pos: int, end: int) -> int:
    return _length(buf, tag_pos + 1, end, "value")[0]


def decode_response(data: bytes | bytearray | memoryview) -> Response:
    """Decode one SNMP v1/v2c message holding a Response PDU.

    Raises ``SnmpDecodeError`` (and nothing else) for anything that is not exactly one
    well-formed message: see the module docstring for the reasons.
    """
    buf = data if type(data) is bytes else bytes(data)
    size = len(buf)
    if size > MAX_MESSAGE_SIZE:
        raise SnmpDecodeError("too_long", f"message of {size} bytes", MAX_MESSAGE_SIZE)
    if size and buf[0] != 0x30:
        raise SnmpDecodeError("bad_tag", f"message: tag 0x{buf[0]:02x}, want 0x30", 0)
    if size < 2:
        raise SnmpDecodeError("truncated", f"message of {size} bytes", size)
    pos, end = _length(buf, 1, size, "message", over="truncated")
    if end < size:
        raise SnmpDecodeError("trailing_bytes", f"{size - end} bytes after the message", end)
    version, pos = _integer(buf, pos, end, "version")
    if version != VERSION_1 and version != VERSION_2C:
        raise SnmpDecodeError("bad_version", f"version {version} (want 0 or 1)", pos - 1)
    cstart, pos = _element(buf, pos, end, Tag.OCTET_STRING, "community")
    community = buf[cstart:pos]
    if pos >= end:
        raise SnmpDecodeError("truncated", "PDU: missing", pos)
    if buf[pos] != PDU_RESPONSE:
        reason = "bad_pdu_type" if 0xA0 <= buf[pos] <= 0xBF else "bad_tag"
        raise SnmpDecodeError(reason, f"PDU type 0x{buf[pos]:02x}, want 0xa2", pos)
    pos, pdu_end = _length(buf, pos + 1, end, "PDU")
    if pdu_end != end:
        raise SnmpDecodeError("trailing_bytes", "bytes after the PDU", pdu_end)
    request_id, pos = _integer(buf, pos, end, "request-id")
    error_status, pos = _integer(buf, pos, end, "error-status")
    error_index, pos = _integer(buf, pos, end, "error-index")
    pos, vbl_end = _element(buf, pos, end, 0x30, "varbind list")
    if vbl_end != end:
        raise SnmpDecodeError("trailing_bytes", "bytes after the varbind list", vbl_end)
    varbinds: list[VarBind] = []
    append = varbinds.append
    oids = _OID_CACHE
    while pos < end:
        # Fast path: SEQUENCE, OID and value headers all in short form and consistent with
        # each other; anything else goes through _varbind_bounds, which says what is wrong.
        if pos + 4 <= end:
            vb_tag, vb_len, name_tag, name_len = buf[pos : pos + 4]
            name = pos + 4
            name_end = name + name_len
            vb_end = pos + 2 + vb_len
            if not (
                vb_tag == 0x30
                and name_tag == 0x06
                and vb_len < 0x80
                and name_len < 0x80
                and name_end + 2 <= vb_end <= end
                and buf[name_end + 1] == vb_end - name_end - 2
            ):
                name, name_end, vb_end = _varbind_bounds(buf, pos, end, len(varbinds) + 1)
        else:
            name, name_end, vb_end = _varbind_bounds(buf, pos, end, len(varbinds) + 1)
        key = buf[name:name_end]
        oid = oids.get(key)
        if oid is None:
            oid = _decode_oid(buf, name, name_end)
            if len(oids) >= _OID_CACHE_SIZE:
                oids.clear()
            oids[key] = oid
        tag = buf[name_end]
        start = (
            vb_end - buf[name_end + 1]
            if buf[name_end + 1] < 0x80
            else _value_start(buf, name_end, vb_end)
        )
        size = vb_end - start
        if tag == 0x04:
            value: int | bytes | OID | None = buf[start:vb_end]
        elif 0 < size < 5 and (0x41 <= tag <= 0x43 or tag == 0x46):
            value = int.from_bytes(buf[start:vb_end], "big")
        elif tag == 0x02 and 0 < size < 5:
            value = int.from_bytes(buf[start:vb_end], "big", signed=True)
        else:
            value = _value(buf, tag, start, vb_end)
        append(VarBind(oid, tag, value))
        pos = vb_end
    return Response(version, community, request_id, error_status, error_index, tuple(varbinds))


def peek_request_id(data: bytes | bytearray | memoryview) -> int | None:
    """Return the request-id of any v1/v2c PDU in ``data`` cheaply, or ``None`` if unparsable.

    Reads only the envelope up to the request-id, to match a reply to its pending request
    before paying for a full decode. It is lenient where ``decode_response`` is not: the
    message and PDU lengths go unchecked, so a reply cut short after its request-id still
    finds its request and then fails to decode as "truncated".
    """
    buf = data if type(data) is bytes else bytes(data)
    size = len(buf)
    try:
        if size < 2 or buf[0] != 0x30:
            return None
        pos = _skip_length(buf, 1)
        _, pos = _integer(buf, pos, size, "version")
        _, pos = _element(buf, pos, size, Tag.OCTET_STRING, "community")
        if pos + 1 >= size or not 0xA0 <= buf[pos] <= 0xA8:
            return None
        return _integer(buf, _skip_length(buf, pos + 1), size, "request-id")[0]
    except SnmpDecodeError:
        return None


def _skip_length(buf: bytes, pos: int) -> int:
    """Return where the content starts after the length octets at ``pos`` (end unchecked)."""
    first = buf[pos]
    return pos + 1 + (first & 0x7F if first > 0x80 else 0)
