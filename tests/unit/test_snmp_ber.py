"""The SNMP v1/v2c BER codec: round trips, a differential against pysnmp, malformed replies.

pysnmp (with pyasn1 underneath) is the reference: it decodes the requests we encode, and it
encodes the responses we decode. Malformed input must only ever raise ``SnmpDecodeError``
with a known ``reason``: every prefix of a valid reply, hand-made bad encodings, random bytes
and random mutations of valid replies.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import decoder as asn1_decoder
from pyasn1.codec.ber import encoder as asn1_encoder
from pysnmp.proto import api, rfc1905

from alertd.collect.snmp import ber
from alertd.collect.snmp.ber import (
    OID,
    Response,
    SnmpDecodeError,
    Tag,
    VarBind,
    decode_response,
    encode_get,
    encode_getbulk,
    encode_getnext,
    encode_response,
    format_oid,
    parse_oid,
    peek_request_id,
)
from alertd.errors import CollectError

V1 = api.PROTOCOL_MODULES[api.SNMP_VERSION_1]
V2C = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
REASONS = {
    "truncated",
    "bad_length",
    "bad_tag",
    "bad_version",
    "bad_pdu_type",
    "bad_oid",
    "bad_value",
    "too_long",
    "trailing_bytes",
}
U32 = 2**32 - 1
U64 = 2**64 - 1
SYS_UPTIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)
IF_HC_IN_OCTETS = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6)

# ---------------------------------------------------------------------------------------------
# Builders


def tlv(tag: int, content: bytes) -> bytes:
    """Encode one TLV independently of the codec (short or minimal long form)."""
    size = len(content)
    if size < 0x80:
        return bytes((tag, size)) + content
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(octets))) + octets + content


def message(
    vbl: bytes,
    *,
    version: bytes = b"\x01",
    pdu_tag: int = 0xA2,
    header: bytes = b"\x02\x01\x2a\x02\x01\x00\x02\x01\x00",
) -> bytes:
    """A message around ``vbl`` (the varbind list's content), community "public", id 42."""
    pdu = tlv(pdu_tag, header + tlv(0x30, vbl))
    return tlv(0x30, tlv(0x02, version) + tlv(0x04, b"public") + pdu)


def with_value(raw_value: bytes, oid_content: bytes = b"\x2b\x06\x01") -> bytes:
    """A response with one varbind (OID 1.3.6.1 by default) whose value TLV is ``raw_value``."""
    return message(tlv(0x30, tlv(0x06, oid_content) + raw_value))


def sample_varbinds() -> list[VarBind]:
    """One varbind of every type, boundary values included, plus a long-form OCTET STRING."""
    return [
        VarBind(SYS_UPTIME, Tag.TIMETICKS, U32),
        VarBind((*IF_HC_IN_OCTETS, 1), Tag.COUNTER64, U64),
        VarBind((*IF_HC_IN_OCTETS, 2), Tag.COUNTER64, 0),
        VarBind((1, 3, 6, 1, 2, 1, 2, 2, 1, 10, 1), Tag.COUNTER32, U32),
        VarBind((1, 3, 6, 1, 2, 1, 2, 2, 1, 10, 2), Tag.COUNTER32, 0),
        VarBind((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 15, 1), Tag.GAUGE32, 10_000),
        VarBind((1, 3, 6, 1, 2, 1, 2, 2, 1, 8, 1), Tag.INTEGER, -(2**31)),
        VarBind((1, 3, 6, 1, 2, 1, 2, 2, 1, 8, 2), Tag.INTEGER, 2**31 - 1),
        VarBind((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 18, 1), Tag.OCTET_STRING, b"uplink \xe2\x86\x91"),
        VarBind((1, 3, 6, 1, 2, 1, 1, 1, 0), Tag.OCTET_STRING, b"x" * 300),
        VarBind((1, 3, 6, 1, 2, 1, 1, 2, 0), Tag.OBJECT_IDENTIFIER, (1, 3, 6, 1, 4, 1, 8072)),
        VarBind((1, 3, 6, 1, 2, 1, 4, 20, 1, 1, 10, 0, 0, 1), Tag.IP_ADDRESS, b"\x0a\x00\x00\x01"),
        VarBind((1, 3, 6, 1, 4, 1, 2021, 10, 1, 3, 1), Tag.OCTET_STRING, b"0.15"),
        VarBind((1, 3, 6, 1, 4, 1, 2021, 99, 1), Tag.OPAQUE, b"\x9f\x78\x04\x3e\x19\x99\x9a"),
        VarBind((1, 3, 6, 1, 2, 1, 99, 0), Tag.NULL, None),
        VarBind((1, 3, 6, 1, 2, 1, 99, 1), Tag.NO_SUCH_OBJECT, None),
        VarBind((1, 3, 6, 1, 2, 1, 99, 2), Tag.NO_SUCH_INSTANCE, None),
        VarBind((1, 3, 6, 1, 2, 1, 99, 3), Tag.END_OF_MIB_VIEW, None),
        VarBind((2, 999, U32, 0, 127, 128, 16383, 16384), Tag.INTEGER, 0),
    ]


VALID = encode_response(1, b"public", 0x1234, sample_varbinds())


def pysnmp_value(version: int, tag: int, value: Any) -> Any:
    """The pysnmp (pyasn1) object for one of our (tag, value) pairs."""
    mod = V1 if version == 0 else V2C
    if tag == Tag.COUNTER32:
        return V1.Counter(value) if version == 0 else V2C.Counter32(value)
    if tag == Tag.GAUGE32:
        return V1.Gauge(value) if version == 0 else V2C.Gauge32(value)
    simple = {
        Tag.INTEGER: mod.Integer,
        Tag.OCTET_STRING: mod.OctetString,
        Tag.OBJECT_IDENTIFIER: mod.ObjectIdentifier,
        Tag.IP_ADDRESS: mod.IpAddress,
        Tag.TIMETICKS: mod.TimeTicks,
        Tag.OPAQUE: mod.Opaque,
        Tag.COUNTER64: V2C.Counter64,
    }
    if tag in simple:
        return simple[Tag(tag)](value)
    return {
        Tag.NULL: mod.Null(""),
        Tag.NO_SUCH_OBJECT: rfc1905.noSuchObject,
        Tag.NO_SUCH_INSTANCE: rfc1905.noSuchInstance,
        Tag.END_OF_MIB_VIEW: rfc1905.endOfMibView,
    }[Tag(tag)]


def from_pysnmp(value: Any) -> tuple[int, int | bytes | OID | None]:
    """Our (tag, value) for a pysnmp value object (the tag read off its own encoding)."""
    tag = asn1_encoder.encode(value)[0]
    if tag in (Tag.NULL, Tag.NO_SUCH_OBJECT, Tag.NO_SUCH_INSTANCE, Tag.END_OF_MIB_VIEW):
        return tag, None
    if tag == Tag.OBJECT_IDENTIFIER:
        return tag, tuple(value)
    if tag in (Tag.OCTET_STRING, Tag.OPAQUE, Tag.IP_ADDRESS):
        return tag, value.asOctets()
    return tag, int(value)


def pysnmp_response(
    version: int, community: bytes, request_id: int, status: int, index: int, vbs: list[VarBind]
) -> bytes:
    """A Response message built and encoded by pysnmp/pyasn1."""
    mod = V1 if version == 0 else V2C
    pdu = mod.GetResponsePDU()
    mod.apiPDU.set_defaults(pdu)
    mod.apiPDU.set_request_id(pdu, request_id)
    mod.apiPDU.set_error_status(pdu, status)
    mod.apiPDU.set_error_index(pdu, index)
    mod.apiPDU.set_varbinds(pdu, [(vb.oid, pysnmp_value(version, vb.tag, vb.value)) for vb in vbs])
    msg = mod.Message()
    mod.apiMessage.set_defaults(msg)
    mod.apiMessage.set_community(msg, community)
    mod.apiMessage.set_pdu(msg, pdu)
    data: bytes = asn1_encoder.encode(msg)
    return data


def pysnmp_decode(data: bytes) -> tuple[Any, Any, Any]:
    """Decode with pysnmp: (protocol module, message, PDU); all of ``data`` must be used."""
    mod = V1 if api.decodeMessageVersion(data) == api.SNMP_VERSION_1 else V2C
    msg, rest = asn1_decoder.decode(data, asn1Spec=mod.Message())
    assert rest == b""
    return mod, msg, mod.apiMessage.get_pdu(msg)


# ---------------------------------------------------------------------------------------------
# Strategies

small_arc = st.integers(0, 127)
any_arc = st.one_of(small_arc, st.integers(128, 20_000), st.integers(0, U32))
oids = st.one_of(
    st.builds(
        lambda first, second, rest: (first, second, *rest),
        st.integers(0, 1),
        st.integers(0, 39),
        st.lists(any_arc, max_size=20),
    ),
    st.builds(lambda second, rest: (2, second, *rest), any_arc, st.lists(any_arc, max_size=20)),
)
request_ids = st.integers(-(2**31), 2**31 - 1)
communities = st.binary(max_size=40)
octets = st.binary(max_size=300)

V1_VALUES: list[st.SearchStrategy[tuple[int, Any]]] = [
    st.tuples(st.just(Tag.INTEGER), st.integers(-(2**31), 2**31 - 1)),
    st.tuples(st.just(Tag.OCTET_STRING), octets),
    st.tuples(st.just(Tag.NULL), st.none()),
    st.tuples(st.just(Tag.OBJECT_IDENTIFIER), oids),
    st.tuples(st.just(Tag.IP_ADDRESS), st.binary(min_size=4, max_size=4)),
    st.tuples(st.sampled_from([Tag.COUNTER32, Tag.GAUGE32, Tag.TIMETICKS]), st.integers(0, U32)),
    st.tuples(st.just(Tag.OPAQUE), octets),
]
V2C_VALUES = [
    *V1_VALUES,
    st.tuples(st.just(Tag.COUNTER64), st.integers(0, U64)),
    st.tuples(
        st.sampled_from([Tag.NO_SUCH_OBJECT, Tag.NO_SUCH_INSTANCE, Tag.END_OF_MIB_VIEW]),
        st.none(),
    ),
]


def varbind_lists(values: list[st.SearchStrategy[tuple[int, Any]]]) -> Any:
    return st.lists(
        st.builds(lambda oid, tv: VarBind(oid, int(tv[0]), tv[1]), oids, st.one_of(values)),
        max_size=25,
    )


# ---------------------------------------------------------------------------------------------
# OIDs


@pytest.mark.parametrize(
    ("text", "oid"),
    [
        ("1.3.6.1.2.1.1.3.0", SYS_UPTIME),
        (".1.3.6.1.2.1.1.3.0", SYS_UPTIME),
        ("1.3", (1, 3)),
        ("0.0", (0, 0)),
        ("2.999.4294967295", (2, 999, U32)),
    ],
)
def test_parse_and_format_oid(text: str, oid: OID) -> None:
    assert parse_oid(text) == oid
    assert format_oid(oid) == text.lstrip(".")


@pytest.mark.parametrize(
    "text",
    [
        *("", ".", "1", "1.3.", "1..3", "1.3.a", "1.3.-1", "+1.3", "1.3. 6", "3.1", "1.40"),
        *("1.3.\u0663", "1.3.4294967296", ".".join(["1"] * 129)),
    ],
)
def test_parse_oid_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="bad OID"):
        parse_oid(text)


# ---------------------------------------------------------------------------------------------
# Encoding: golden bytes, pysnmp decodes our requests


def test_get_request_golden_bytes() -> None:
    # worked by hand from X.690: the 40-byte GET of sysUpTime.0 that snmpget sends
    expected = bytes.fromhex(
        "3026 020101 0406 7075626c6963 a019 020101 020100 020100"
        " 300e 300c 0608 2b06010201010300 0500"
    )
    assert encode_get(1, b"public", 1, [SYS_UPTIME]) == expected


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(["get", "getnext", "getbulk"]),
    version=st.sampled_from([0, 1]),
    community=communities,
    request_id=request_ids,
    oid_list=st.lists(oids, max_size=30),
    non_repeaters=st.integers(0, 2**31 - 1),
    max_repetitions=st.integers(0, 2**31 - 1),
)
def test_pysnmp_decodes_our_requests(
    kind: str,
    version: int,
    community: bytes,
    request_id: int,
    oid_list: list[OID],
    non_repeaters: int,
    max_repetitions: int,
) -> None:
    if kind == "getbulk":
        data = encode_getbulk(community, request_id, non_repeaters, max_repetitions, oid_list)
        version = 1
    elif kind == "getnext":
        data = encode_getnext(version, community, request_id, oid_list)
    else:
        data = encode_get(version, community, request_id, oid_list)
    mod, msg, pdu = pysnmp_decode(data)
    assert int(mod.apiMessage.get_version(msg)) == version
    assert mod.apiMessage.get_community(msg).asOctets() == community
    pdu_class = {
        "get": mod.GetRequestPDU,
        "getnext": mod.GetNextRequestPDU,
        "getbulk": V2C.GetBulkRequestPDU,
    }[kind]
    assert pdu.tagSet == pdu_class.tagSet
    assert int(mod.apiPDU.get_request_id(pdu)) == request_id
    if kind == "getbulk":
        assert int(V2C.apiBulkPDU.get_non_repeaters(pdu)) == non_repeaters
        assert int(V2C.apiBulkPDU.get_max_repetitions(pdu)) == max_repetitions
    else:
        assert int(mod.apiPDU.get_error_status(pdu)) == 0
        assert int(mod.apiPDU.get_error_index(pdu)) == 0
    decoded = [(tuple(oid), from_pysnmp(value)) for oid, value in mod.apiPDU.get_varbinds(pdu)]
    assert decoded == [(oid, (Tag.NULL, None)) for oid in oid_list]
    assert peek_request_id(data) == request_id


@pytest.mark.parametrize(
    ("call", "message_"),
    [
        (lambda: encode_get(3, b"c", 1, [SYS_UPTIME]), "version"),
        (lambda: encode_get(1, b"c", 2**31, [SYS_UPTIME]), "request-id"),
        (lambda: encode_getnext(1, b"c", -(2**31) - 1, [SYS_UPTIME]), "request-id"),
        (lambda: encode_getbulk(b"c", 1, -1, 10, [SYS_UPTIME]), "non-repeaters"),
        (lambda: encode_getbulk(b"c", 1, 0, 2**31, [SYS_UPTIME]), "max-repetitions"),
        (lambda: encode_get(1, b"c", 1, [(1,)]), "bad OID"),
        (lambda: encode_get(1, b"c", 1, [(1, 40)]), "bad OID"),
        (lambda: encode_get(1, b"c", 1, [(1, 3, 2**32)]), "bad OID"),
        (lambda: encode_get(1, b"c" * 70_000, 1, [SYS_UPTIME]), "exceeds 65535"),
        (lambda: encode_response(1, b"c", 1, [VarBind((1, 3), Tag.COUNTER32, U32 + 1)]), "range"),
        (lambda: encode_response(1, b"c", 1, [VarBind((1, 3), Tag.COUNTER64, -1)]), "range"),
        (lambda: encode_response(1, b"c", 1, [VarBind((1, 3), Tag.INTEGER, 2**31)]), "range"),
        (lambda: encode_response(1, b"c", 1, [VarBind((1, 3), Tag.INTEGER, b"1")]), "encode"),
        (lambda: encode_response(1, b"c", 1, [VarBind((1, 3), Tag.IP_ADDRESS, b"\0")]), "encode"),
        (lambda: encode_response(1, b"c", 1, [VarBind((1, 3), Tag.NULL, 0)]), "encode"),
        (lambda: encode_response(1, b"c", 1, [VarBind((1, 3), 0x47, 1)]), "encode"),
    ],
)
def test_encoders_reject_bad_arguments(call: Any, message_: str) -> None:
    with pytest.raises(ValueError, match=message_):
        call()


# ---------------------------------------------------------------------------------------------
# Round trips and the differential on responses


def test_round_trip_every_type_and_boundary() -> None:
    response = decode_response(VALID)
    assert response == Response(1, b"public", 0x1234, 0, 0, tuple(sample_varbinds()))


@pytest.mark.parametrize(
    ("tag", "value"),
    [
        (Tag.COUNTER32, 0),
        (Tag.COUNTER32, 127),
        (Tag.COUNTER32, 128),
        (Tag.COUNTER32, U32),
        (Tag.GAUGE32, 2**31),
        (Tag.TIMETICKS, U32),
        (Tag.COUNTER64, 0),
        (Tag.COUNTER64, 2**63),
        (Tag.COUNTER64, U64),
        (Tag.INTEGER, 0),
        (Tag.INTEGER, -1),
        (Tag.INTEGER, -128),
        (Tag.INTEGER, -129),
        (Tag.INTEGER, 255),
        (Tag.INTEGER, -(2**31)),
        (Tag.INTEGER, 2**31 - 1),
        (Tag.OCTET_STRING, b""),
        (Tag.OCTET_STRING, bytes(range(256)) * 40),
        (Tag.OBJECT_IDENTIFIER, (1, 3)),
        (Tag.OBJECT_IDENTIFIER, (0, 0)),
        (Tag.OBJECT_IDENTIFIER, (2, 999, 3)),
        (Tag.OBJECT_IDENTIFIER, (2, U32)),
        (Tag.OBJECT_IDENTIFIER, (1, 3, 6, 1, 4, 1, U32, 0, 128)),
        (Tag.IP_ADDRESS, b"\xff\xff\xff\xff"),
    ],
)
@pytest.mark.parametrize("version", [0, 1])
def test_round_trip_boundaries(tag: int, value: Any, version: int) -> None:
    vb = VarBind((1, 3, 6, 1, 4, 1, U32, 1), tag, value)
    data = encode_response(version, b"c", -(2**31), [vb], error_status=18, error_index=2**31 - 1)
    assert decode_response(data) == Response(version, b"c", -(2**31), 18, 2**31 - 1, (vb,))
    if version == 1 or tag != Tag.COUNTER64:  # SNMPv1 has no Counter64: pysnmp refuses it
        mod, _, pdu = pysnmp_decode(data)
        assert mod is (V1 if version == 0 else V2C)
        ((oid, value),) = mod.apiPDU.get_varbinds(pdu)
        assert VarBind(tuple(oid), *from_pysnmp(value)) == vb


@settings(max_examples=200, deadline=None)
@given(
    version=st.sampled_from([0, 1]),
    community=communities,
    request_id=request_ids,
    status=st.integers(0, 18),
    data=st.data(),
)
def test_differential_responses_against_pysnmp(
    version: int,
    community: bytes,
    request_id: int,
    status: int,
    data: st.DataObject,
) -> None:
    vbs = data.draw(varbind_lists(V1_VALUES if version == 0 else V2C_VALUES))
    index = data.draw(st.integers(0, len(vbs)))  # pysnmp checks it against the varbind count
    expected = Response(version, community, request_id, status, index, tuple(vbs))
    # pysnmp encodes, we decode
    theirs = pysnmp_response(version, community, request_id, status, index, vbs)
    assert decode_response(theirs) == expected
    assert peek_request_id(theirs) == request_id
    # we encode, pysnmp decodes
    ours = encode_response(version, community, request_id, vbs, status, index)
    mod, msg, pdu = pysnmp_decode(ours)
    assert pdu.tagSet == mod.GetResponsePDU.tagSet
    assert int(mod.apiMessage.get_version(msg)) == version
    assert mod.apiMessage.get_community(msg).asOctets() == community
    assert int(mod.apiPDU.get_request_id(pdu)) == request_id
    assert int(mod.apiPDU.get_error_status(pdu)) == status
    assert int(mod.apiPDU.get_error_index(pdu)) == index
    decoded = [VarBind(tuple(o), *from_pysnmp(v)) for o, v in mod.apiPDU.get_varbinds(pdu)]
    assert decoded == vbs
    # and we read our own
    assert decode_response(ours) == expected


def test_decode_accepts_bytearray_and_memoryview() -> None:
    assert decode_response(bytearray(VALID)) == decode_response(memoryview(VALID))


def test_oid_cache_stays_correct_when_it_fills(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ber, "_OID_CACHE", {})
    monkeypatch.setattr(ber, "_OID_CACHE_SIZE", 8)
    for start in (0, 5000, 0):
        vbs = [VarBind((1, 3, 6, n, 200), Tag.INTEGER, n) for n in range(start, start + 30)]
        assert decode_response(encode_response(1, b"c", 1, vbs)).varbinds == tuple(vbs)
        assert len(ber._OID_CACHE) <= 8


# ---------------------------------------------------------------------------------------------
# Leniency: what real agents (and pyasn1) send that is not minimal DER


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"\x41\x04\xff\xff\xff\xff", (Tag.COUNTER32, U32)),  # sign octet missing
        (b"\x42\x01\x80", (Tag.GAUGE32, 128)),
        (b"\x41\x05\x00\xff\xff\xff\xff", (Tag.COUNTER32, U32)),
        (b"\x46\x08\xff\xff\xff\xff\xff\xff\xff\xff", (Tag.COUNTER64, U64)),
        (b"\x43\x02\x00\x01", (Tag.TIMETICKS, 1)),  # redundant leading zero
        (b"\x02\x05\xff\x80\x00\x00\x00", (Tag.INTEGER, -(2**31))),  # as pyasn1 encodes it
        (b"\x02\x05\x00\xff\xff\xff\xff", (Tag.INTEGER, U32)),  # unsigned value in an INTEGER
        (b"\x04\x81\x03abc", (Tag.OCTET_STRING, b"abc")),  # non-minimal long-form length
        (b"\x04\x84\x00\x00\x00\x01a", (Tag.OCTET_STRING, b"a")),
        (b"\x06\x03\x2b\x80\x01", (Tag.OBJECT_IDENTIFIER, (1, 3, 1))),  # 0x80 padding in an arc
    ],
)
def test_decode_tolerates(raw: bytes, expected: tuple[int, Any]) -> None:
    (vb,) = decode_response(with_value(raw)).varbinds
    assert (vb.tag, vb.value) == expected


def test_decode_accepts_v2_types_in_v1_messages() -> None:
    data = with_value(b"\x46\x01\x07").replace(b"\x02\x01\x01", b"\x02\x01\x00", 1)
    response = decode_response(data)
    assert response.version == 0
    assert response.varbinds[0].value == 7


# ---------------------------------------------------------------------------------------------
# Malformed replies


def test_every_prefix_is_truncated() -> None:
    assert VALID[1] & 0x80  # long-form outer length, so prefixes cut the length octets too
    for cut in range(len(VALID)):
        with pytest.raises(SnmpDecodeError) as info:
            decode_response(VALID[:cut])
        assert info.value.reason == "truncated", cut


VB = tlv(0x30, tlv(0x06, b"\x2b\x06\x01") + b"\x05\x00")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(b"", "truncated", id="empty"),
        pytest.param(b"\x30", "truncated", id="tag-only"),
        pytest.param(b"\x31" + VALID[1:], "bad_tag", id="outer-tag-set"),
        pytest.param(b"\x04\x00", "bad_tag", id="outer-octet-string"),
        pytest.param(b"\x30\x80" + message(VB)[2:] + b"\x00\x00", "bad_length", id="indefinite"),
        pytest.param(b"\x30\x7f" + message(VB)[2:], "truncated", id="length-past-buffer"),
        pytest.param(b"\x30\x84\xff\xff\xff\xff" + message(VB)[2:], "truncated", id="huge-length"),
        pytest.param(b"\x30\x85\x00\x00\x00\x00\x20", "bad_length", id="five-length-octets"),
        pytest.param(b"\x30\xff", "bad_length", id="reserved-length-octet"),
        pytest.param(VALID + b"\x00", "trailing_bytes", id="trailing-garbage"),
        pytest.param(VALID + VALID, "trailing_bytes", id="two-messages"),
        pytest.param(message(VB, version=b"\x03"), "bad_version", id="version-3"),
        pytest.param(message(VB, version=b"\xff"), "bad_version", id="version-minus-1"),
        pytest.param(message(VB, version=b""), "bad_value", id="version-empty"),
        pytest.param(message(VB, version=b"\x00" * 6), "too_long", id="version-6-octets"),
        pytest.param(message(VB, pdu_tag=0xA0), "bad_pdu_type", id="get-request"),
        pytest.param(message(VB, pdu_tag=0xA4), "bad_pdu_type", id="v1-trap"),
        pytest.param(message(VB, pdu_tag=0xA5), "bad_pdu_type", id="getbulk-request"),
        pytest.param(message(VB, pdu_tag=0xA7), "bad_pdu_type", id="v2-trap"),
        pytest.param(message(VB, pdu_tag=0xA8), "bad_pdu_type", id="report"),
        pytest.param(message(VB, pdu_tag=0x30), "bad_tag", id="pdu-not-context"),
        pytest.param(message(VB, header=b"\x02\x01\x2a\x02\x01\x00"), "bad_tag", id="no-index"),
        pytest.param(message(VB, header=b"\x04\x01\x2a" + b"\x02\x01\x00" * 2), "bad_tag", id="id"),
        pytest.param(message(b"\x31\x00"), "bad_tag", id="varbind-set"),
        pytest.param(message(b"\x30"), "truncated", id="varbind-no-length"),
        pytest.param(message(b"\x30\x05\x06\x01\x2b"), "bad_length", id="varbind-past-list"),
        pytest.param(message(tlv(0x30, b"\x05\x00\x05\x00")), "bad_tag", id="name-not-oid"),
        pytest.param(message(tlv(0x30, b"\x06\x01\x2b")), "truncated", id="no-value"),
        pytest.param(message(tlv(0x30, b"\x06\x05\x2b")), "bad_length", id="name-past-varbind"),
        pytest.param(with_value(b"\x05\x02\x00"), "bad_length", id="value-past-varbind"),
        pytest.param(with_value(b"\x05\x00\x00"), "trailing_bytes", id="bytes-after-value"),
        pytest.param(with_value(b"\x04\x80abc\x00\x00"), "bad_length", id="indefinite-value"),
        pytest.param(with_value(b"\x05\x00", b""), "bad_oid", id="empty-oid"),
        pytest.param(with_value(b"\x05\x00", b"\x2b\x06\x81"), "bad_oid", id="unterminated-arc"),
        pytest.param(
            with_value(b"\x05\x00", b"\x2b\x90\x80\x80\x80\x00"), "bad_oid", id="arc-2^32"
        ),
        pytest.param(with_value(b"\x05\x00", b"\xff" * 50 + b"\x01"), "bad_oid", id="arc-huge"),
        pytest.param(with_value(b"\x06\x01\x81"), "bad_oid", id="oid-value-unterminated"),
        pytest.param(with_value(b"\x41\x06\x00\x00\xff\xff\xff\xff"), "too_long", id="counter32-6"),
        pytest.param(with_value(b"\x41\x05\x01\x00\x00\x00\x00"), "too_long", id="counter32-2^32"),
        pytest.param(with_value(b"\x42\x00"), "bad_value", id="gauge32-empty"),
        pytest.param(with_value(b"\x46\x0a" + b"\x00" * 10), "too_long", id="counter64-10"),
        pytest.param(with_value(b"\x46\x09\x01" + b"\x00" * 8), "too_long", id="counter64-2^64"),
        pytest.param(with_value(b"\x02\x00"), "bad_value", id="integer-empty"),
        pytest.param(with_value(b"\x02\x06" + b"\x00" * 6), "too_long", id="integer-6"),
        pytest.param(with_value(b"\x40\x05\x01\x02\x03\x04\x05"), "bad_value", id="ip-5"),
        pytest.param(with_value(b"\x40\x00"), "bad_value", id="ip-empty"),
        pytest.param(with_value(b"\x05\x01\x00"), "bad_value", id="null-with-content"),
        pytest.param(with_value(b"\x80\x01\x00"), "bad_value", id="nosuchobject-content"),
        pytest.param(with_value(b"\x47\x01\x01"), "bad_tag", id="uinteger32"),
        pytest.param(with_value(b"\x30\x00"), "bad_tag", id="constructed-value"),
        pytest.param(with_value(b"\x1f\x01\x01"), "bad_tag", id="high-tag-number"),
        pytest.param(message(b"\x00" * 70_000), "too_long", id="over-65535"),
    ],
)
def test_malformed(data: bytes, reason: str) -> None:
    with pytest.raises(SnmpDecodeError) as info:
        decode_response(data)
    assert info.value.reason == reason
    assert isinstance(info.value, CollectError)
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith(f"snmp decode: {reason} at byte ")


def assert_decodes_or_rejects(data: bytes) -> None:
    """decode_response returns a well-typed Response or raises SnmpDecodeError, nothing else."""
    try:
        response = decode_response(data)
    except SnmpDecodeError as exc:
        reason = exc.reason
    else:
        check_types(response)
        return
    assert reason in REASONS


def check_types(response: Response) -> None:
    assert response.version in (0, 1)
    for vb in response.varbinds:
        assert isinstance(vb.oid, tuple)
        assert len(vb.oid) >= 2
        assert all(0 <= arc <= U32 for arc in vb.oid)
        if vb.tag in (Tag.NULL, Tag.NO_SUCH_OBJECT, Tag.NO_SUCH_INSTANCE, Tag.END_OF_MIB_VIEW):
            assert vb.value is None
        elif vb.tag == Tag.OBJECT_IDENTIFIER:
            assert isinstance(vb.value, tuple)
        elif vb.tag in (Tag.OCTET_STRING, Tag.OPAQUE, Tag.IP_ADDRESS):
            assert isinstance(vb.value, bytes)
        else:
            assert isinstance(vb.value, int)
        vb.as_text()
        vb.as_float()


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_random_bytes(data: bytes) -> None:
    assert_decodes_or_rejects(data)
    assert peek_request_id(data) is None or isinstance(peek_request_id(data), int)


@settings(max_examples=500, deadline=None)
@given(
    flips=st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), max_size=4),
    cut=st.integers(0, 20),
    insert=st.tuples(st.integers(0, len(VALID)), st.binary(max_size=3)),
)
def test_fuzz_mutations_of_a_valid_reply(
    flips: list[tuple[int, int]], cut: int, insert: tuple[int, bytes]
) -> None:
    data = bytearray(VALID)
    for index, byte in flips:
        data[index] = byte
    at, extra = insert
    mutated = bytes(data[:at] + extra + data[at:])
    assert_decodes_or_rejects(mutated)
    assert_decodes_or_rejects(mutated[: len(mutated) - cut])
    peek_request_id(mutated)


# ---------------------------------------------------------------------------------------------
# peek_request_id


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(VALID, 0x1234, id="response"),
        pytest.param(encode_get(0, b"public", -5, [SYS_UPTIME]), -5, id="v1-get"),
        pytest.param(encode_getbulk(b"p", 2**31 - 1, 0, 10, [SYS_UPTIME]), 2**31 - 1, id="bulk"),
        pytest.param(VALID[:23], 0x1234, id="cut-after-request-id"),
        pytest.param(message(VB, pdu_tag=0xA8), 42, id="report"),
        pytest.param(b"", None, id="empty"),
        pytest.param(b"\x30", None, id="tag-only"),
        pytest.param(VALID[:22], None, id="cut-inside-request-id"),
        pytest.param(b"\x30\x03\x02\x01\x01", None, id="no-community"),
        pytest.param(message(VB, pdu_tag=0x30), None, id="pdu-not-context"),
        pytest.param(message(VB, header=b"\x06\x01\x2b"), None, id="v1-trap-shape"),
        pytest.param(b"GET / HTTP/1.1\r\n\r\n", None, id="junk"),
    ],
)
def test_peek_request_id(data: bytes, expected: int | None) -> None:
    assert peek_request_id(data) == expected


# ---------------------------------------------------------------------------------------------
# VarBind helpers


def test_varbind_predicates() -> None:
    kinds = {vb.tag: (vb.is_exception, vb.is_counter) for vb in sample_varbinds()}
    assert kinds[Tag.NO_SUCH_OBJECT] == kinds[Tag.END_OF_MIB_VIEW] == (True, False)
    assert kinds[Tag.NO_SUCH_INSTANCE] == (True, False)
    assert kinds[Tag.COUNTER32] == kinds[Tag.COUNTER64] == (False, True)
    assert kinds[Tag.GAUGE32] == kinds[Tag.NULL] == kinds[Tag.INTEGER] == (False, False)


@pytest.mark.parametrize(
    ("tag", "value", "number", "text"),
    [
        (Tag.COUNTER64, U64, float(U64), str(U64)),
        (Tag.INTEGER, -3, -3.0, "-3"),
        (Tag.TIMETICKS, 100, 100.0, "100"),
        (Tag.OCTET_STRING, b" 0.15 ", 0.15, " 0.15 "),
        (Tag.OCTET_STRING, b"eth0", None, "eth0"),
        (Tag.OCTET_STRING, b"nan", None, "nan"),
        (Tag.OCTET_STRING, b"-inf", None, "-inf"),
        (Tag.OCTET_STRING, b"caf\xc3\xa9 \xff", None, "caf\u00e9 \ufffd"),
        (Tag.OPAQUE, b"1", None, "1"),
        (Tag.IP_ADDRESS, b"\x0a\x00\x00\xfe", None, "10.0.0.254"),
        (Tag.OBJECT_IDENTIFIER, (1, 3, 6), None, "1.3.6"),
        (Tag.NULL, None, None, ""),
        (Tag.NO_SUCH_INSTANCE, None, None, ""),
    ],
)
def test_varbind_as_float_and_as_text(
    tag: int, value: Any, number: float | None, text: str
) -> None:
    vb = VarBind((1, 3), tag, value)
    assert vb.as_float() == number
    assert vb.as_text() == text
