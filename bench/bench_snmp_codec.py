#!/usr/bin/env python3
"""CPU cost of the SNMP v1/v2c BER codec (alertd.collect.snmp.ber) next to pysnmp's (pyasn1).

No sockets and no agent: this isolates the codec, the part that costs pysnmp 77-80 % of its
134-300 ms of CPU per 48-port device poll (../shared/peer-bench/README.md). The message is
a 50-varbind GETBULK Response as an agent sends it for an interface table walk: 10 rows of
ifHCInOctets (Counter64), ifInErrors (Counter32), ifHighSpeed (Gauge32), ifName (OCTET
STRING) and ifOperStatus (INTEGER), encoded once by pysnmp so both decoders read the same
bytes (and checked to decode to the same values).

Measured, in µs per message (median of --repeats runs, each a timed loop of ~--seconds):

  decode      alertd: ``decode_response`` to VarBinds with Python values.
              pysnmp: ``pyasn1 decoder.decode(data, asn1Spec=Message())`` plus
              ``apiPDU.get_varbinds``, the least a pysnmp-based poller pays; the values are
              still pyasn1 objects, so pysnmp's real figure is higher.
  encode      building and encoding that 50-varbind Response (``encode_response`` vs the
              pysnmp PDU/Message API and the pyasn1 encoder).
  encode_req  a GETBULK request for 5 table columns, what the poller sends per PDU.

``poll_ms`` scales decode + encode_req to one 48-port ifTable + ifXTable walk of the peer
bench (1,960 OIDs in 50-varbind PDUs), the codec's share of a device poll.

Usage: .venv/bin/python bench/bench_snmp_codec.py [--varbinds 50] [--seconds 0.3] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from benchlib import median, result, table
from pyasn1.codec.ber import decoder as asn1_decoder
from pyasn1.codec.ber import encoder as asn1_encoder
from pysnmp.proto import api

from alertd.collect.snmp.ber import (
    OID,
    Tag,
    VarBind,
    decode_response,
    encode_getbulk,
    encode_response,
)

V2C = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
OIDS_PER_DEVICE_POLL = 1960  # 48-port ifTable + ifXTable walk in the peer bench
IF_X = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)
IF = (1, 3, 6, 1, 2, 1, 2, 2, 1)
COLUMNS: list[tuple[OID, int]] = [
    ((*IF_X, 6), Tag.COUNTER64),  # ifHCInOctets
    ((*IF, 14), Tag.COUNTER32),  # ifInErrors
    ((*IF_X, 15), Tag.GAUGE32),  # ifHighSpeed
    ((*IF_X, 1), Tag.OCTET_STRING),  # ifName
    ((*IF, 8), Tag.INTEGER),  # ifOperStatus
]
PYSNMP_TYPES: dict[int, Any] = {
    Tag.COUNTER64: V2C.Counter64,
    Tag.COUNTER32: V2C.Counter32,
    Tag.GAUGE32: V2C.Gauge32,
    Tag.OCTET_STRING: V2C.OctetString,
    Tag.INTEGER: V2C.Integer,
}


def response_varbinds(count: int) -> list[VarBind]:
    """``count`` varbinds cycling through the five columns, ifIndex 1001, 1002, ..."""
    out = []
    for n in range(count):
        column, tag = COLUMNS[n % len(COLUMNS)]
        row = 1001 + n // len(COLUMNS)
        value: int | bytes = {
            Tag.COUNTER64: 7_301_234_567_890 + row * 977,
            Tag.COUNTER32: 3_900_000_000 + row,
            Tag.GAUGE32: 10_000,
            Tag.OCTET_STRING: f"GigabitEthernet1/0/{row - 1000}".encode(),
            Tag.INTEGER: 1 + row % 2,
        }[tag]
        out.append(VarBind((*column, row), tag, value))
    return out


def pysnmp_encode_response(request_id: int, vbs: list[VarBind]) -> bytes:
    pdu = V2C.GetResponsePDU()
    V2C.apiPDU.set_defaults(pdu)
    V2C.apiPDU.set_request_id(pdu, request_id)
    V2C.apiPDU.set_varbinds(pdu, [(vb.oid, PYSNMP_TYPES[vb.tag](vb.value)) for vb in vbs])
    msg = V2C.Message()
    V2C.apiMessage.set_defaults(msg)
    V2C.apiMessage.set_community(msg, b"public")
    V2C.apiMessage.set_pdu(msg, pdu)
    data: bytes = asn1_encoder.encode(msg)
    return data


def pysnmp_encode_getbulk(request_id: int, oids: list[OID], repetitions: int) -> bytes:
    pdu = V2C.GetBulkRequestPDU()
    V2C.apiBulkPDU.set_defaults(pdu)
    V2C.apiBulkPDU.set_request_id(pdu, request_id)
    V2C.apiBulkPDU.set_non_repeaters(pdu, 0)
    V2C.apiBulkPDU.set_max_repetitions(pdu, repetitions)
    V2C.apiBulkPDU.set_varbinds(pdu, [(oid, V2C.null) for oid in oids])
    msg = V2C.Message()
    V2C.apiMessage.set_defaults(msg)
    V2C.apiMessage.set_community(msg, b"public")
    V2C.apiMessage.set_pdu(msg, pdu)
    data: bytes = asn1_encoder.encode(msg)
    return data


def pysnmp_decode(data: bytes) -> list[tuple[Any, Any]]:
    msg, _ = asn1_decoder.decode(data, asn1Spec=V2C.Message())
    varbinds: list[tuple[Any, Any]] = V2C.apiPDU.get_varbinds(V2C.apiMessage.get_pdu(msg))
    return varbinds


def per_call_us(fn: Callable[[], object], seconds: float, repeats: int) -> float:
    """Median over ``repeats`` of CPU µs per call, each run a loop of about ``seconds``."""
    fn()
    start = time.process_time()
    calls = 0
    while time.process_time() - start < 0.05:
        fn()
        calls += 1
    loops = max(1, int(calls * seconds / 0.05))
    runs = []
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(loops):
            fn()
        runs.append((time.process_time() - start) / loops * 1e6)
    return median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--varbinds", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=0.3, help="per timed run")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    vbs = response_varbinds(args.varbinds)
    wire = pysnmp_encode_response(0x1234ABCD, vbs)
    ours = decode_response(wire)
    if ours.varbinds != tuple(vbs) or ours.request_id != 0x1234ABCD:
        raise SystemExit("!! alertd decodes pysnmp's message differently")
    if decode_response(encode_response(1, b"public", 0x1234ABCD, vbs)) != ours:
        raise SystemExit("!! alertd's own encoding does not round-trip")
    theirs = [(tuple(oid), value) for oid, value in pysnmp_decode(wire)]
    if [oid for oid, _ in theirs] != [vb.oid for vb in vbs]:
        raise SystemExit("!! pysnmp decodes a different OID list")
    columns = [column for column, _ in COLUMNS]
    repetitions = max(1, args.varbinds // len(columns))
    print(
        f"# {args.varbinds}-varbind GETBULK response, {len(wire)} bytes;"
        f" GETBULK request of {len(columns)} columns x {repetitions} repetitions",
        flush=True,
    )

    pdus_per_poll = OIDS_PER_DEVICE_POLL / args.varbinds
    impls: dict[str, dict[str, Callable[[], object]]] = {
        "alertd": {
            "decode": lambda: decode_response(wire),
            "encode": lambda: encode_response(1, b"public", 0x1234ABCD, vbs),
            "encode_req": lambda: encode_getbulk(b"public", 0x1234ABCD, 0, repetitions, columns),
        },
        "pysnmp": {
            "decode": lambda: pysnmp_decode(wire),
            "encode": lambda: pysnmp_encode_response(0x1234ABCD, vbs),
            "encode_req": lambda: pysnmp_encode_getbulk(0x1234ABCD, columns, repetitions),
        },
    }
    figures: dict[str, dict[str, float]] = {}
    for impl, ops in impls.items():
        got = {op: per_call_us(fn, args.seconds, args.repeats) for op, fn in ops.items()}
        got["poll_ms"] = (got["decode"] + got["encode_req"]) * pdus_per_poll / 1000
        figures[impl] = got
        result(
            "snmp_codec",
            impl=impl,
            varbinds=args.varbinds,
            decode_us=got["decode"],
            encode_us=got["encode"],
            encode_req_us=got["encode_req"],
            poll_ms=got["poll_ms"],
        )
    mine, ref = figures["alertd"], figures["pysnmp"]
    result(
        "snmp_codec_ratio",
        pysnmp_over_alertd_decode=ref["decode"] / mine["decode"],
        pysnmp_over_alertd_encode=ref["encode"] / mine["encode"],
        pysnmp_over_alertd_encode_req=ref["encode_req"] / mine["encode_req"],
        decode_us_per_varbind=mine["decode"] / args.varbinds,
    )
    print()
    table(
        ["impl", "decode µs", "encode µs", "encode_req µs", "codec ms / 1,960-OID poll"],
        [
            [impl, got["decode"], got["encode"], got["encode_req"], got["poll_ms"]]
            for impl, got in figures.items()
        ],
    )


if __name__ == "__main__":
    main()
