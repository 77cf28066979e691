"""``walk.get`` and ``walk.walk_columns`` against the in-process fake agent serving a recorded walk.

The walk (``tests/data/snmp/localhost-if-mib.walk``) comes from a real net-snmp snmpd; the fake
answers GET/GETNEXT/GETBULK from it in lexicographic order, so whatever a refresh records, the
expected rows are read from the same data the agent serves.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

import pytest

from alertd.collect.snmp.ber import OID, Tag, VarBind, parse_oid
from alertd.collect.snmp.transport import SnmpRequestError, SnmpTransport
from alertd.collect.snmp.walk import GET_BATCH, Session, get, walk_columns
from alertd.errors import CollectError, CollectTimeoutError
from tests.fake_snmp_agent import FakeSnmpAgent, decode_request, load_varbinds

SYS_UPTIME = parse_oid("1.3.6.1.2.1.1.3.0")
SYS_NAME = parse_oid("1.3.6.1.2.1.1.5.0")
IF_ENTRY = parse_oid("1.3.6.1.2.1.2.2.1")
IFX_ENTRY = parse_oid("1.3.6.1.2.1.31.1.1.1")
IF_DESCR = parse_oid("1.3.6.1.2.1.2.2.1.2")
IF_HC_IN_OCTETS = parse_oid("1.3.6.1.2.1.31.1.1.1.6")
RECORDED = load_varbinds()
LAST_OID = max(RECORDED)
LAST_COLUMN = LAST_OID[:-1]  # the last object in the recording (a scalar's ".0" parent)
V1, V2C = 0, 1


def columns_under(entry: OID) -> list[OID]:
    """Every column of a table entry present in the recording, in order."""
    return sorted({oid[: len(entry) + 1] for oid in RECORDED if oid[: len(entry)] == entry})


def recorded_rows(column: OID) -> dict[OID, VarBind]:
    return {oid[len(column) :]: vb for oid, vb in RECORDED.items() if oid[: len(column)] == column}


IF_COLUMNS = columns_under(IF_ENTRY)
IFX_COLUMNS = columns_under(IFX_ENTRY)


@pytest.fixture
async def agent() -> AsyncIterator[FakeSnmpAgent]:
    async with FakeSnmpAgent() as a:
        yield a


@pytest.fixture
async def transport() -> AsyncIterator[SnmpTransport]:
    t = SnmpTransport(max_in_flight=10)
    await t.start()
    yield t
    t.close()


def session(
    agent: FakeSnmpAgent,
    transport: SnmpTransport,
    *,
    version: int = V2C,
    max_repetitions: int = 25,
    timeout: float = 0.2,
    retries: int = 0,
    community: bytes = b"public",
) -> Session:
    return Session(
        transport=transport,
        address=agent.address,
        version=version,
        community=community,
        timeout=timeout,
        retries=retries,
        max_repetitions=max_repetitions,
    )


def test_recording_has_the_tables_the_tests_walk() -> None:
    # a refresh that lost ifTable/ifXTable or its interfaces would make the tests below vacuous
    assert len(IF_COLUMNS) >= 20
    assert len(IFX_COLUMNS) >= 15
    assert len(recorded_rows(IF_DESCR)) >= 2
    assert RECORDED[SYS_UPTIME].tag == Tag.TIMETICKS
    assert RECORDED[(*IF_HC_IN_OCTETS, 1)].tag == Tag.COUNTER64


# ---------------------------------------------------------------------------------------------
# The fake itself: requests it decodes are the ones the collector's encoder builds


def test_fake_decodes_the_collectors_requests() -> None:
    from alertd.collect.snmp import ber

    oids = [SYS_UPTIME, IF_DESCR]
    got = decode_request(ber.encode_getbulk(b"c", 77, 1, 9, oids))
    assert got is not None
    assert (got.pdu, got.request_id, got.non_repeaters, got.max_repetitions) == (0xA5, 77, 1, 9)
    assert got.oids == tuple(oids)
    assert got.community == b"c"
    assert got.version == V2C
    got = decode_request(ber.encode_getnext(V1, b"c", -5, oids))
    assert got is not None
    assert (got.pdu, got.request_id, got.version) == (0xA1, -5, V1)
    assert decode_request(b"\x30\x03\x02\x01") is None
    assert decode_request(ber.encode_response(V2C, b"c", 1, [])) is None  # not a request


# ---------------------------------------------------------------------------------------------
# GET


@pytest.mark.parametrize("version", [V1, V2C])
async def test_scalars_are_batched_into_few_gets(agent, transport, version) -> None:
    oids = sorted(RECORDED)  # every recorded OID, as if each were a scalar
    got = await get(session(agent, transport, version=version), oids)
    assert got == RECORDED
    assert agent.requests["get"] == math.ceil(len(oids) / GET_BATCH)
    assert set(agent.requests) == {"get"}


async def test_v2c_missing_scalars_are_left_out(agent, transport) -> None:
    missing_instance = parse_oid("1.3.6.1.2.1.1.5.1")  # sysName exists, .1 doesn't
    missing_object = parse_oid("1.3.6.1.2.1.1.99.0")
    got = await get(
        session(agent, transport), [SYS_UPTIME, missing_instance, missing_object, SYS_NAME]
    )
    assert got == {SYS_UPTIME: RECORDED[SYS_UPTIME], SYS_NAME: RECORDED[SYS_NAME]}
    assert agent.requests["get"] == 1  # exceptions come back in the same PDU


async def test_v1_missing_scalars_are_dropped_and_the_rest_asked_again(agent, transport) -> None:
    missing = [parse_oid("1.3.6.1.2.1.1.5.1"), parse_oid("1.3.6.1.2.1.1.99.0")]
    got = await get(
        session(agent, transport, version=V1), [missing[0], SYS_UPTIME, missing[1], SYS_NAME]
    )
    assert got == {SYS_UPTIME: RECORDED[SYS_UPTIME], SYS_NAME: RECORDED[SYS_NAME]}
    assert agent.requests["get"] == 3  # noSuchName twice (one per missing OID), then the answer


async def test_v1_get_of_nothing_that_exists_returns_empty(agent, transport) -> None:
    got = await get(session(agent, transport, version=V1), [parse_oid("1.3.6.1.2.1.1.99.0")])
    assert got == {}


async def test_no_such_object_everywhere_gives_nothing_and_no_error(agent, transport) -> None:
    agent.fault = "no_such_object"
    s = session(agent, transport)
    assert await get(s, [SYS_UPTIME, SYS_NAME]) == {}
    assert await walk_columns(s, [IF_DESCR, IF_HC_IN_OCTETS]) == {IF_DESCR: {}, IF_HC_IN_OCTETS: {}}
    assert transport.dropped == {"no_such_object": 2}  # the GET's two; a walk just ends


async def test_a_reply_that_only_comes_after_the_timeout_still_counts_on_retry(
    agent, transport
) -> None:
    agent.delay = 0.3  # later than the first try's 0.2 s: answered during the retry
    got = await get(session(agent, transport, retries=1), [SYS_UPTIME])
    assert got == {SYS_UPTIME: RECORDED[SYS_UPTIME]}
    assert agent.requests["get"] == 2  # same request id on both tries
    await asyncio.sleep(0.35)  # the answer to the retry arrives late and is unmatched
    assert transport.dropped == {"unknown_request_id": 1}


async def test_dropped_request_is_retried(agent, transport) -> None:
    agent.drop_next = 1
    got = await get(session(agent, transport, retries=1), [SYS_UPTIME])
    assert got == {SYS_UPTIME: RECORDED[SYS_UPTIME]}


async def test_wrong_community_is_a_timeout(agent, transport) -> None:
    s = session(agent, transport, retries=1, community=b"wrong")
    async with asyncio.timeout(2):
        with pytest.raises(CollectTimeoutError, match=r"timeout after 0\.2s"):
            await get(s, [SYS_UPTIME])
    assert agent.requests["get"] == 2


# ---------------------------------------------------------------------------------------------
# Column walks


@pytest.mark.parametrize("max_repetitions", [1, 3, 25, 200])
@pytest.mark.parametrize("entry", [IF_ENTRY, IFX_ENTRY], ids=["ifTable", "ifXTable"])
async def test_getbulk_walk_returns_exactly_the_recorded_rows(
    agent, transport, entry, max_repetitions
) -> None:
    columns = columns_under(entry)
    walked = await walk_columns(session(agent, transport, max_repetitions=max_repetitions), columns)
    assert walked == {c: recorded_rows(c) for c in columns}
    assert set(agent.requests) == {"getbulk"}


async def test_both_interface_tables_in_one_walk_take_a_handful_of_pdus(agent, transport) -> None:
    columns = IF_COLUMNS + IFX_COLUMNS
    walked = await walk_columns(session(agent, transport, max_repetitions=200), columns)
    assert walked == {c: recorded_rows(c) for c in columns}
    rows = max(len(recorded_rows(c)) for c in columns)
    # 200 // 41 columns = 4 rows a PDU, plus the PDU that sees every column end
    assert agent.requests["getbulk"] <= math.ceil(rows / (200 // len(columns))) + 1


@pytest.mark.parametrize("entry", [IF_ENTRY, IFX_ENTRY], ids=["ifTable", "ifXTable"])
async def test_v1_walks_with_getnext(agent, transport, entry) -> None:
    columns = columns_under(entry)
    walked = await walk_columns(session(agent, transport, version=V1), columns)
    assert walked == {c: recorded_rows(c) for c in columns}
    assert set(agent.requests) == {"getnext"}
    assert agent.requests["getnext"] == max(len(recorded_rows(c)) for c in columns) + 1


async def test_v1_no_such_name_at_the_end_of_the_mib_ends_that_column(agent, transport) -> None:
    walked = await walk_columns(session(agent, transport, version=V1), [LAST_COLUMN, IF_DESCR])
    assert walked == {LAST_COLUMN: recorded_rows(LAST_COLUMN), IF_DESCR: recorded_rows(IF_DESCR)}


async def test_v1_column_past_the_end_of_the_mib_is_empty(agent, transport) -> None:
    beyond = parse_oid("1.3.6.1.6.3.1")
    walked = await walk_columns(session(agent, transport, version=V1), [beyond])
    assert walked == {beyond: {}}
    assert agent.requests["getnext"] == 1


@pytest.mark.parametrize("max_repetitions", [1, 25])
async def test_end_of_mib_view_ends_the_walk(agent, transport, max_repetitions) -> None:
    beyond = parse_oid("1.3.6.1.6.3.1")
    s = session(agent, transport, max_repetitions=max_repetitions)
    async with asyncio.timeout(5):
        walked = await walk_columns(s, [LAST_COLUMN, beyond, IF_DESCR])
    assert walked == {
        LAST_COLUMN: recorded_rows(LAST_COLUMN),
        beyond: {},
        IF_DESCR: recorded_rows(IF_DESCR),
    }


async def test_a_column_the_agent_lacks_is_empty(agent, transport) -> None:
    assert agent.remove(IF_HC_IN_OCTETS) > 0
    walked = await walk_columns(session(agent, transport), [IF_HC_IN_OCTETS, IF_DESCR])
    assert walked == {IF_HC_IN_OCTETS: {}, IF_DESCR: recorded_rows(IF_DESCR)}


async def test_too_big_halves_the_repetitions_and_still_completes(agent, transport) -> None:
    agent.fault = "too_big"
    agent.too_big_above = 5
    walked = await walk_columns(session(agent, transport, max_repetitions=25), [IF_DESCR])
    assert walked == {IF_DESCR: recorded_rows(IF_DESCR)}
    assert agent.bulk_repetitions[:3] == [25, 12, 6]
    assert all(r <= 5 for r in agent.bulk_repetitions[3:])


async def test_too_big_even_at_one_repetition_is_an_error(agent, transport) -> None:
    agent.fault = "too_big"
    agent.too_big_above = 0
    async with asyncio.timeout(5):
        with pytest.raises(SnmpRequestError) as err:
            await walk_columns(session(agent, transport, max_repetitions=25), [IF_DESCR])
    assert err.value.reason == "error_status"
    assert agent.bulk_repetitions == [25, 12, 6, 3, 1]


@pytest.mark.parametrize("version", [V1, V2C])
@pytest.mark.parametrize("max_repetitions", [1, 25])
async def test_oids_that_stop_increasing_end_the_walk_with_an_error(
    agent, transport, version, max_repetitions
) -> None:
    agent.fault = "loop"
    s = session(agent, transport, version=version, max_repetitions=max_repetitions)
    async with asyncio.timeout(5):  # never a hang
        with pytest.raises(SnmpRequestError) as err:
            await walk_columns(s, [IF_DESCR, IF_HC_IN_OCTETS])
    assert err.value.reason == "oid_not_increasing"
    assert isinstance(err.value, CollectError)
    assert sum(agent.requests.values()) <= 2


async def test_truncated_reply_in_a_walk_is_an_error_at_once(agent, transport) -> None:
    agent.fault = "truncated"
    s = session(agent, transport, timeout=5.0, retries=3)  # the error must not wait for these
    async with asyncio.timeout(1):
        with pytest.raises(SnmpRequestError) as err:
            await walk_columns(s, [IF_DESCR])
    assert err.value.reason == "truncated"
    assert transport.dropped == {"truncated": 1}
