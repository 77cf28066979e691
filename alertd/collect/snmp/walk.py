"""SNMP operations a poll needs: GET of scalars, and a walk of table columns.

Scalars are batched into as few GETs as possible. Columns are walked together with GETBULK
(v2c) or GETNEXT (v1), one varbind per still-active column per repetition, so a 10-column
table of 48 rows takes a handful of PDUs. Every walk is bounded: a column whose OIDs stop
increasing (a broken agent) ends with an error instead of looping.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from alertd.collect.snmp.ber import (
    OID,
    Tag,
    VarBind,
    encode_get,
    encode_getbulk,
    encode_getnext,
)
from alertd.collect.snmp.transport import Address, SnmpRequestError, SnmpTransport

GET_BATCH = 40  # varbinds per GET; well under any agent's PDU limit
MAX_PDUS_PER_WALK = 2000
ERROR_TOO_BIG = 1
ERROR_NO_SUCH_NAME = 2  # v1's way of saying "not there" / "end of MIB"
Row = dict[OID, VarBind]  # index -> value
_EXCEPTION_REASON: dict[int, str] = {
    Tag.NO_SUCH_OBJECT: "no_such_object",
    Tag.NO_SUCH_INSTANCE: "no_such_instance",
    Tag.END_OF_MIB_VIEW: "end_of_mib_view",
}


class Accessor(Protocol):
    """What a poll needs from an agent, whatever the SNMP version and library behind it."""

    def where(self) -> str:
        """``host:port``, for messages."""
        ...

    async def get(self, oids: Sequence[OID]) -> dict[OID, VarBind]:
        """Return the value of each OID the agent has (missing ones are left out)."""
        ...

    async def walk_columns(self, columns: Sequence[OID]) -> dict[OID, Row]:
        """Walk every column to its end; return column -> {index: varbind}."""
        ...


@dataclass(frozen=True, slots=True)
class Session:
    """How to talk to one v1/v2c agent through our own codec and transport."""

    transport: SnmpTransport
    address: Address
    version: int  # 0 = v1, 1 = v2c
    community: bytes
    timeout: float
    retries: int
    max_repetitions: int

    def where(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"

    async def get(self, oids: Sequence[OID]) -> dict[OID, VarBind]:
        return await get(self, oids)

    async def walk_columns(self, columns: Sequence[OID]) -> dict[OID, Row]:
        return await walk_columns(self, columns)


async def get(session: Session, oids: Sequence[OID]) -> dict[OID, VarBind]:
    """Return the value of each OID the agent has (missing ones are left out)."""
    found: dict[OID, VarBind] = {}
    for start in range(0, len(oids), GET_BATCH):
        batch = list(oids[start : start + GET_BATCH])
        while batch:
            response = await session.transport.request(
                session.address,
                _get_pdu(session, list(batch)),
                timeout=session.timeout,
                retries=session.retries,
            )
            if response.error_status == ERROR_NO_SUCH_NAME and 0 < response.error_index <= len(
                batch
            ):
                del batch[response.error_index - 1]  # v1: drop the missing one, ask again
                continue
            if response.error_status:
                session.transport.note_drop("error_status")
                raise SnmpRequestError(
                    f"snmp get {session.where()}: error status {response.error_status} "
                    f"at index {response.error_index}",
                    "error_status",
                )
            for vb in response.varbinds:
                if vb.is_exception:
                    session.transport.note_drop(_EXCEPTION_REASON.get(vb.tag, "exception"))
                else:
                    found[vb.oid] = vb
            break
    return found


class ColumnWalk:
    """Several table columns walked together: what came back and where each column stands.

    Shared by the v1/v2c walk below and the v3 one in ``v3.py``: only how a request is sent
    differs between them.
    """

    def __init__(self, columns: Sequence[OID], where: str) -> None:
        self.rows: dict[OID, Row] = {c: {} for c in columns}
        self.cursor: dict[OID, OID] = {c: c for c in columns}
        self.active = list(dict.fromkeys(columns))
        self.where = where

    def next_oids(self) -> list[OID]:
        """The OID to continue each active column from."""
        return [self.cursor[c] for c in self.active]

    def absorb(self, error_status: int, varbinds: Sequence[VarBind]) -> None:
        """Fold one GETBULK/GETNEXT answer in.

        Varbinds come row-major, one per active column per repetition. A column ends when it
        leaves its subtree or hits endOfMibView; one whose OIDs stop increasing is refused.
        """
        if error_status:
            raise SnmpRequestError(
                f"snmp walk {self.where}: error status {error_status}", "error_status"
            )
        if not varbinds:
            raise SnmpRequestError(f"snmp walk {self.where}: empty reply", "empty_reply")
        finished: set[OID] = set()
        width = len(self.active)
        for k, vb in enumerate(varbinds):
            column = self.active[k % width]
            if column in finished:
                continue
            if vb.is_exception or not _under(vb.oid, column):
                finished.add(column)
                continue
            if vb.oid <= self.cursor[column]:
                raise SnmpRequestError(
                    f"snmp walk {self.where}: OIDs not increasing in a column walk",
                    "oid_not_increasing",
                )
            self.cursor[column] = vb.oid
            self.rows[column][vb.oid[len(column) :]] = vb
        self.active = [c for c in self.active if c not in finished]

    def too_long(self) -> SnmpRequestError:
        return SnmpRequestError(
            f"snmp walk {self.where}: more than {MAX_PDUS_PER_WALK} requests", "walk_too_long"
        )


def _get_pdu(session: Session, oids: list[OID]) -> Callable[[int], bytes]:
    return lambda rid: encode_get(session.version, session.community, rid, oids)


def _getnext_pdu(session: Session, oids: list[OID]) -> Callable[[int], bytes]:
    return lambda rid: encode_getnext(session.version, session.community, rid, oids)


def _getbulk_pdu(session: Session, oids: list[OID], repetitions: int) -> Callable[[int], bytes]:
    return lambda rid: encode_getbulk(session.community, rid, 0, repetitions, oids)


def _under(oid: OID, column: OID) -> bool:
    return len(oid) > len(column) and oid[: len(column)] == column


async def walk_columns(session: Session, columns: Sequence[OID]) -> dict[OID, Row]:
    """Walk every column to its end; return column -> {index: varbind}."""
    walk = ColumnWalk(columns, session.where())
    repetitions = session.max_repetitions
    for _ in range(MAX_PDUS_PER_WALK):
        if not walk.active:
            return walk.rows
        asked = walk.next_oids()
        if session.version == 0:
            response = await session.transport.request(
                session.address,
                _getnext_pdu(session, asked),
                timeout=session.timeout,
                retries=session.retries,
            )
            if response.error_status == ERROR_NO_SUCH_NAME:
                index = response.error_index
                if 0 < index <= len(walk.active):
                    del walk.active[index - 1]  # that column ran off the end of the MIB
                    continue
        else:
            per = max(1, repetitions // len(walk.active))
            response = await session.transport.request(
                session.address,
                _getbulk_pdu(session, asked, per),
                timeout=session.timeout,
                retries=session.retries,
            )
            if response.error_status == ERROR_TOO_BIG and repetitions > 1:
                repetitions //= 2
                continue
        try:
            walk.absorb(response.error_status, response.varbinds)
        except SnmpRequestError as exc:
            session.transport.note_drop(exc.reason)
            raise
    raise walk.too_long()
