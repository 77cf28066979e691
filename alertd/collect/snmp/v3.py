"""SNMPv3 (USM) polling through pysnmp: the adapter between pysnmp and the ``Accessor`` seam.

This is the only polling module that imports pysnmp (it ships no type information; mypy
ignores its imports, and everything it hands back is turned into our own ``VarBind``s here).
v1/v2c polling keeps our own BER codec (``walk.py``); v3 needs USM -- engine discovery, time
windows, key localization, HMAC-SHA-2, AES -- which is pysnmp's strength.

Engines. A pysnmp ``SnmpEngine`` costs ~70 ms of CPU to build, owns a UDP socket and runs a
0.1 s timer task for as long as it lives, so the daemon shares engines: one pool per event
loop (the loop the engine's socket and timer are bound to; tests get a new loop per test).
The limit is pysnmp's USM table, indexed by (engine ID, user name): a user name is registered
once per engine, and registering it again with other keys (which its command generator's
configurator does silently) deletes the first registration -- and every key localized from it
-- under any request still in flight. So an engine holds each user name with one set of
credentials; targets with the same credentials share it, and a target whose user name is
already taken on every engine with other keys gets a new engine. With one monitoring
credential for the whole network (the common case) the daemon runs one engine; with per-device
keys under one user name it runs one per device. A target that changes keys (key file
rotated) gives up its old registration, which is dropped once no target uses it.

Requests go through pysnmp's command generators directly rather than ``get_cmd``/
``bulk_cmd``: those resolve every request OID against a MIB view (~30% of the CPU per PDU),
which numeric OIDs don't need. Responses are read without MIB lookups too.

Secrets: auth/priv keys are read at connect (``*_file`` ones from disk, trailing newline
stripped), handed to pysnmp and never put in a message, log line or repr: the dataclasses
holding them hide them, and text that comes from pysnmp is scrubbed of them before it goes
into an exception. pysnmp's own debug logging (which prints localized keys) is never enabled.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyasn1.type import univ
from pysnmp.entity.engine import SnmpEngine
from pysnmp.entity.rfc3413 import cmdgen
from pysnmp.error import PySnmpError
from pysnmp.hlapi.v3arch.asyncio import (
    USM_AUTH_HMAC96_MD5,
    USM_AUTH_HMAC96_SHA,
    USM_AUTH_HMAC128_SHA224,
    USM_AUTH_HMAC192_SHA256,
    USM_AUTH_HMAC256_SHA384,
    USM_AUTH_HMAC384_SHA512,
    USM_PRIV_CBC56_DES,
    USM_PRIV_CFB128_AES,
    USM_PRIV_CFB192_AES_BLUMENTHAL,
    USM_PRIV_CFB256_AES_BLUMENTHAL,
    UdpTransportTarget,
    UsmUserData,
)
from pysnmp.hlapi.v3arch.asyncio.lcd import CommandGeneratorLcdConfigurator
from pysnmp.proto import errind, rfc1902, rfc1905
from pysnmp.proto.error import StatusInformation

from alertd.collect.snmp.ber import OID, Tag, VarBind, format_oid
from alertd.collect.snmp.collector import Connector, resolve_ipv4
from alertd.collect.snmp.transport import SnmpRequestError
from alertd.collect.snmp.walk import (
    ERROR_TOO_BIG,
    GET_BATCH,
    MAX_PDUS_PER_WALK,
    Accessor,
    ColumnWalk,
    Row,
)
from alertd.config.collectors import SnmpTarget
from alertd.config.snmp_v3 import SnmpV3User
from alertd.errors import CollectError, CollectTimeoutError

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 100  # v3 requests outstanding at once, over all targets of one event loop
MIN_KEY_LENGTH = 8  # RFC 3414 section 11.2: shorter passphrases are refused by agents

# Our config names -> pysnmp protocol OIDs. net-snmp's "AES-192"/"AES-256" (what our AES192 /
# AES256 mean, as on most devices) stretch the key the Blumenthal way
# (draft-blumenthal-aes-usm-04); pysnmp's plain USM_PRIV_CFB192_AES/..256 are the Reeder
# ("Cisco", net-snmp's AES-192-C) variant. tests/integration/test_snmp_v3.py checks both
# against snmpd.
AUTH_PROTOCOLS: dict[str, Any] = {
    "MD5": USM_AUTH_HMAC96_MD5,
    "SHA": USM_AUTH_HMAC96_SHA,
    "SHA224": USM_AUTH_HMAC128_SHA224,
    "SHA256": USM_AUTH_HMAC192_SHA256,
    "SHA384": USM_AUTH_HMAC256_SHA384,
    "SHA512": USM_AUTH_HMAC384_SHA512,
}
PRIV_PROTOCOLS: dict[str, Any] = {
    "DES": USM_PRIV_CBC56_DES,
    "AES": USM_PRIV_CFB128_AES,
    "AES192": USM_PRIV_CFB192_AES_BLUMENTHAL,
    "AES256": USM_PRIV_CFB256_AES_BLUMENTHAL,
}

# pysnmp value types -> our BER tags, by pyasn1 tag set (Integer/Integer32, Gauge32/Unsigned32,
# OctetString/Bits and ObjectIdentifier/ObjectName share theirs).
_TAGS: dict[Any, Tag] = {
    rfc1902.Integer32.tagSet: Tag.INTEGER,
    rfc1902.OctetString.tagSet: Tag.OCTET_STRING,
    univ.Null.tagSet: Tag.NULL,
    rfc1902.ObjectIdentifier.tagSet: Tag.OBJECT_IDENTIFIER,
    rfc1902.IpAddress.tagSet: Tag.IP_ADDRESS,
    rfc1902.Counter32.tagSet: Tag.COUNTER32,
    rfc1902.Gauge32.tagSet: Tag.GAUGE32,
    rfc1902.TimeTicks.tagSet: Tag.TIMETICKS,
    rfc1902.Opaque.tagSet: Tag.OPAQUE,
    rfc1902.Counter64.tagSet: Tag.COUNTER64,
    rfc1905.NoSuchObject.tagSet: Tag.NO_SUCH_OBJECT,
    rfc1905.NoSuchInstance.tagSet: Tag.NO_SUCH_INSTANCE,
    rfc1905.EndOfMibView.tagSet: Tag.END_OF_MIB_VIEW,
}
_BYTES_TAGS = frozenset({Tag.OCTET_STRING, Tag.OPAQUE, Tag.IP_ADDRESS})
_NONE_TAGS = frozenset({Tag.NULL, Tag.NO_SUCH_OBJECT, Tag.NO_SUCH_INSTANCE, Tag.END_OF_MIB_VIEW})

# errorIndications that mean "these credentials are not accepted" -> (metric reason, hint).
_AUTH_FAILURES: tuple[tuple[type[Any], str, str], ...] = (
    (errind.WrongDigest, "wrong_digest", "wrong auth key or protocol?"),
    (errind.AuthenticationFailure, "wrong_digest", "wrong auth key or protocol?"),
    (errind.AuthenticationError, "wrong_digest", "wrong auth key or protocol?"),
    (errind.DecryptionError, "decryption_error", "wrong priv key or protocol?"),
    (errind.UnknownUserName, "unknown_user", "the agent does not know this user"),
    (errind.UnknownSecurityName, "unknown_user", "the agent does not know this user"),
    (
        errind.UnsupportedSecurityLevel,
        "unsupported_security_level",
        "the agent does not allow this security level for the user",
    ),
)


class SnmpV3AuthError(CollectError):
    """The agent refused our USM credentials; ``reason`` is a stable label for metrics."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Credentials:
    """A USM user with its keys read; the keys never show in ``repr``."""

    user: str
    security_level: str
    auth_protocol: str
    priv_protocol: str
    context: str
    auth_key: str = field(default="", repr=False)
    priv_key: str = field(default="", repr=False)

    def secrets(self) -> tuple[str, ...]:
        return tuple(key for key in (self.auth_key, self.priv_key) if key)

    def fingerprint(self) -> bytes:
        """A digest that tells credential sets apart without keeping the keys in the pool."""
        parts = (
            self.user,
            self.security_level,
            self.auth_protocol,
            self.auth_key,
            self.priv_protocol,
            self.priv_key,
        )
        return hashlib.sha256("\0".join(parts).encode()).digest()

    def usm(self) -> Any:
        """The pysnmp ``UsmUserData`` (its repr shows <AUTHKEY>/<PRIVKEY>, not the keys)."""
        if self.security_level == "noAuthNoPriv":
            return UsmUserData(self.user)
        auth = AUTH_PROTOCOLS[self.auth_protocol]
        if self.security_level == "authNoPriv":
            return UsmUserData(self.user, self.auth_key, authProtocol=auth)
        priv = PRIV_PROTOCOLS[self.priv_protocol]
        return UsmUserData(
            self.user, self.auth_key, self.priv_key, authProtocol=auth, privProtocol=priv
        )


def read_credentials(v3: SnmpV3User, where: str) -> Credentials:
    """Resolve inline (``${ENV}``-substituted) or ``*_file`` keys; raise ``CollectError``."""
    keys: dict[str, str] = {}
    needed = {"noAuthNoPriv": (), "authNoPriv": ("auth",), "authPriv": ("auth", "priv")}
    for kind in needed[v3.security_level]:
        inline = getattr(v3, f"{kind}_key")
        path = getattr(v3, f"{kind}_key_file")
        if inline is not None:
            key = inline.get_secret_value()
        else:
            try:
                key = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise CollectError(
                    f"snmp v3 {where}: cannot read {kind}_key_file {path}: {why}"
                ) from None
        if len(key) < MIN_KEY_LENGTH:
            raise CollectError(
                f"snmp v3 {where}: the {kind} key of user {v3.user} is shorter than "
                f"{MIN_KEY_LENGTH} characters (the USM minimum)"
            )
        keys[kind] = key
    return Credentials(
        user=v3.user,
        security_level=v3.security_level,
        auth_protocol=v3.auth_protocol,
        priv_protocol=v3.priv_protocol,
        context=v3.context,
        auth_key=keys.get("auth", ""),
        priv_key=keys.get("priv", ""),
    )


@dataclass(eq=False, slots=True)
class _Engine:
    """One pysnmp engine and the credentials registered on it, by user name."""

    engine: Any
    users: dict[str, bytes] = field(default_factory=dict)  # user -> credentials fingerprint
    get: Any = field(default_factory=cmdgen.GetCommandGenerator)
    bulk: Any = field(default_factory=cmdgen.BulkCommandGeneratorSingleRun)


_Claim = tuple[_Engine, str, bytes]  # engine, user, fingerprint


@dataclass(eq=False, slots=True)
class _EnginePool:
    """The engines of one event loop, and which target uses which credentials where."""

    slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(MAX_IN_FLIGHT))
    engines: list[_Engine] = field(default_factory=list)
    claims: dict[tuple[str, int, str, str], _Claim] = field(default_factory=dict)
    configurator: Any = field(default_factory=CommandGeneratorLcdConfigurator)

    def engine_for(self, key: tuple[str, int, str, str], creds: Credentials) -> _Engine:
        fingerprint = creds.fingerprint()
        claim = self.claims.pop(key, None)
        if claim is not None:
            if claim[1:] == (creds.user, fingerprint):
                self.claims[key] = claim
                return claim[0]
            if claim not in self.claims.values():  # nobody else uses those credentials
                claim[0].users.pop(claim[1], None)
        for candidate in self.engines:
            if candidate.users.get(creds.user, fingerprint) == fingerprint:
                break
        else:
            candidate = _Engine(SnmpEngine())
            self.engines.append(candidate)
            if len(self.engines) > 1:
                log.debug(
                    "snmp v3: engine %d for user %s (taken with other keys on the others)",
                    len(self.engines),
                    creds.user,
                )
        candidate.users[creds.user] = fingerprint
        self.claims[key] = (candidate, creds.user, fingerprint)
        return candidate

    def close(self) -> None:
        for item in self.engines:
            item.engine.close_dispatcher()
        self.engines.clear()
        self.claims.clear()


_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _EnginePool] = (
    weakref.WeakKeyDictionary()
)


def _pool() -> _EnginePool:
    loop = asyncio.get_running_loop()
    pool = _POOLS.get(loop)
    if pool is None:
        pool = _POOLS[loop] = _EnginePool()
    return pool


async def close_engines() -> None:
    """Close this event loop's pysnmp engines (their sockets and timers); call at shutdown."""
    pool = _POOLS.pop(asyncio.get_running_loop(), None)
    if pool is not None:
        pool.close()
        await asyncio.sleep(0)  # let the transports' connection_lost callbacks run


def v3_connector(target: SnmpTarget) -> Connector:
    """Return how to reach a v3 ``target``: keys are read and the name resolved per poll."""
    if target.v3 is None:
        raise ValueError("v3_connector needs a target with a v3 section")
    v3 = target.v3

    async def connect() -> Accessor:
        host, port = await resolve_ipv4(target.address, target.port)
        where = f"{host}:{port}"
        creds = read_credentials(v3, where)
        pool = _pool()
        engine = pool.engine_for((host, port, creds.user, creds.context), creds)
        usm = creds.usm()
        try:
            udp = await UdpTransportTarget.create(
                (host, port), timeout=target.timeout, retries=target.retries
            )
            address_name, _ = pool.configurator.configure(
                engine.engine, usm, udp, creds.context.encode()
            )
        except PySnmpError as exc:
            raise CollectError(
                f"snmp v3 {where}: cannot set up user {creds.user}: "
                f"{_scrub(str(exc), creds.secrets())}"
            ) from None
        return V3Session(
            engine=engine,
            address_name=address_name,
            context=creds.context.encode(),
            host=host,
            port=port,
            user=creds.user,
            security_level=creds.security_level,
            secrets=creds.secrets(),
            timeout=target.timeout,
            retries=target.retries,
            max_repetitions=target.max_repetitions,
            slots=pool.slots,
        )

    return connect


def _scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "<secret>")
    return text


def to_varbind(name: Any, value: Any) -> VarBind:
    """Turn one pysnmp (ObjectName, value) pair into our ``VarBind``."""
    oid: OID = tuple(name.asTuple())
    tag = _TAGS.get(value.tagSet)
    if tag is None:
        raise SnmpRequestError(f"snmp v3: unknown value type at {format_oid(oid)}", "bad_tag")
    if tag in _BYTES_TAGS:
        return VarBind(oid, tag, bytes(value.asOctets()))
    if tag in _NONE_TAGS:
        return VarBind(oid, tag, None)
    if tag == Tag.OBJECT_IDENTIFIER:
        return VarBind(oid, tag, tuple(value.asTuple()))
    return VarBind(oid, tag, int(value))


_NULL = univ.Null("")
_Reply = tuple[int, int, tuple[VarBind, ...]]  # error status, error index, varbinds


@dataclass(frozen=True, slots=True)
class V3Session:
    """One poll's way to a v3 agent: the shared engine, this target's pysnmp address entry."""

    engine: _Engine = field(repr=False)
    address_name: str
    context: bytes
    host: str
    port: int
    user: str
    security_level: str
    secrets: tuple[str, ...] = field(repr=False)
    timeout: float
    retries: int
    max_repetitions: int
    slots: asyncio.Semaphore = field(repr=False)

    def where(self) -> str:
        return f"{self.host}:{self.port}"

    async def get(self, oids: Sequence[OID]) -> dict[OID, VarBind]:
        """Return the value of each OID the agent has (missing ones are left out)."""
        found: dict[OID, VarBind] = {}
        for start in range(0, len(oids), GET_BATCH):
            batch = oids[start : start + GET_BATCH]
            status, index, varbinds = await self._request(_request_varbinds(batch))
            if status:
                raise SnmpRequestError(
                    f"snmp v3 get {self.where()}: error status {status} at index {index}",
                    "error_status",
                )
            for vb in varbinds:
                if not vb.is_exception:
                    found[vb.oid] = vb
        return found

    async def walk_columns(self, columns: Sequence[OID]) -> dict[OID, Row]:
        """Walk every column to its end with GETBULK; return column -> {index: varbind}."""
        walk = ColumnWalk(columns, f"v3 {self.where()}")
        repetitions = self.max_repetitions
        for _ in range(MAX_PDUS_PER_WALK):
            if not walk.active:
                return walk.rows
            asked = _request_varbinds(walk.next_oids())
            per = max(1, repetitions // len(walk.active))
            status, _, varbinds = await self._request(asked, repetitions=per)
            if status == ERROR_TOO_BIG and repetitions > 1:
                repetitions //= 2
                continue
            walk.absorb(status, varbinds)
        raise walk.too_long()

    async def _request(self, varbinds: list[Any], repetitions: int | None = None) -> _Reply:
        """Send a GET (or a GETBULK with ``repetitions``); return the converted reply."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[Any, Any, Any, Any]] = loop.create_future()

        def done(*args: Any) -> None:  # (engine, handle, indication, status, index, vbs, ctx)
            if not future.done():
                future.set_result(args[2:6])

        engine = self.engine
        # pysnmp retries on its own (timeout, retries per target); this deadline only guards
        # against a reply that never comes back through its callback.
        deadline = self.timeout * (self.retries + 1) * 2 + 5
        async with self.slots:
            try:
                if repetitions is None:
                    engine.get.send_varbinds(
                        engine.engine, self.address_name, None, self.context, varbinds, done
                    )
                else:
                    engine.bulk.send_varbinds(
                        engine.engine,
                        self.address_name,
                        None,
                        self.context,
                        0,  # non-repeaters
                        repetitions,
                        varbinds,
                        done,
                    )
                async with asyncio.timeout(deadline):
                    indication, status, index, reply = await future
            except TimeoutError:
                raise self._timeout() from None
            except StatusInformation as exc:  # raised while building the request
                raise self._indication_error(exc.get("errorIndication")) from None
            except PySnmpError as exc:
                raise CollectError(
                    f"snmp v3 {self.where()}: {_scrub(str(exc), self.secrets)}"
                ) from None
        if indication is not None:
            raise self._indication_error(indication)
        return int(status or 0), int(index or 0), tuple(to_varbind(n, v) for n, v in reply)

    def _timeout(self) -> CollectTimeoutError:
        return CollectTimeoutError(
            f"snmp v3 {self.where()}: timeout after {self.timeout:g}s ({self.retries} retries)"
            + (
                "; a wrong priv key looks like this too"
                if self.security_level == "authPriv"
                else ""
            )
        )

    def _indication_error(self, indication: Any) -> CollectError:
        if isinstance(indication, errind.RequestTimedOut):
            return self._timeout()
        for kind, reason, hint in _AUTH_FAILURES:
            if isinstance(indication, kind):
                return SnmpV3AuthError(
                    f"snmp v3 {self.where()}: authentication failed for user {self.user} ({hint})",
                    reason,
                )
        if isinstance(indication, errind.EmptyResponse):
            return SnmpRequestError(f"snmp v3 {self.where()}: empty reply", "empty_reply")
        text = _scrub(str(indication), self.secrets)
        return CollectError(f"snmp v3 {self.where()}: {text}")


def _request_varbinds(oids: Sequence[OID]) -> list[Any]:
    return [(rfc1902.ObjectName(oid), _NULL) for oid in oids]
