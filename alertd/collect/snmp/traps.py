"""SNMP traps and informs -> alert events (incidents) and device events (the events log).

Pure part: ``trap_to_outcome`` turns one received notification (trap OID, varbinds as text,
sender, the sender's target labels) into a ``TrapOutcome``: ``AlertEvent``s that open or
resolve incidents, or a ``DeviceEvent`` to record. Built in:

  linkDown  1.3.6.1.6.3.1.1.5.3   FIRING ``snmp_trap_link_down`` (major), one per ifIndex
  linkUp    1.3.6.1.6.3.1.1.5.4   RESOLVED of the same fingerprint
  coldStart 1.3.6.1.6.3.1.1.5.1   device event ``cold_start``
  warmStart 1.3.6.1.6.3.1.1.5.2   device event ``warm_start``

A ``TrapMapping`` (``traps.mappings`` in the config) fires ``snmp_trap_<name>`` at its level,
and its ``clear_oid`` resolves it; a mapping for a built-in OID replaces the built-in. Any
other trap OID is recorded as a minor ``unknown_trap`` device event. Varbind values are data:
they are put into labels and template *variables*, never rendered as templates.

I/O part: ``TrapReceiver`` runs a pysnmp notification receiver on one UDP socket. Each
datagram is checked before pysnmp sees it: a sender that is neither a configured SNMP target
nor in ``allowed_sources`` is dropped (``on_drop("unknown_source")``), so an inform from it
is not acknowledged either. pysnmp then checks the community or the USM user (informs are
acknowledged by pysnmp); what it rejects is observed through its statistics counters and
reported as ``on_drop("bad_credentials")``, undecodable input as ``on_drop("malformed")``.
A v3 notification below the user's configured security level is dropped here (pysnmp accepts
a noAuthNoPriv trap for an authPriv user when the sender is the authoritative engine).

SNMPv3 engine IDs: a TRAP's authoritative engine is the sender, so USM keys must be localized
with the sender's engine ID: each ``TrapV3User.engine_ids`` entry adds the user for that
engine. An INFORM's authoritative engine is this receiver (``TrapsConfig.engine_id``, which
senders discover); the user is always added for it too. A v3 trap from a configured user but
an engine ID not listed is dropped as bad_credentials, and the log names the engine ID to add.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Template
from jinja2.sandbox import SandboxedEnvironment

# pysnmp and pyasn1 ship no type information (mypy override in pyproject.toml): this module
# is their adapter for traps.
from pyasn1.codec.ber import decoder as ber_decoder
from pysnmp.carrier.asyncio.dgram import udp, udp6
from pysnmp.entity import config as snmp_config
from pysnmp.entity.engine import SnmpEngine
from pysnmp.entity.rfc3413.ntfrcv import NotificationReceiver
from pysnmp.proto.api import v2c
from pysnmp.proto.mpmod.rfc3412 import SNMPv3Message
from pysnmp.proto.secmod.rfc3414.service import UsmSecurityParameters

from alertd.clock import Clock
from alertd.config.traps import TrapMapping, TrapsConfig, TrapV3User
from alertd.errors import CollectError, ConfigError, ConfigProblem
from alertd.model import (
    AlertEvent,
    EventKind,
    Labels,
    Level,
    fingerprint,
    make_labels,
    merge_labels,
)
from alertd.state.events import DeviceEvent

log = logging.getLogger(__name__)

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SNMP_TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"
SNMP_TRAP_ADDRESS = "1.3.6.1.6.3.18.1.3.0"  # v1 agent-addr, added by the v1 -> v2 conversion
SNMP_TRAP_COMMUNITY = "1.3.6.1.6.3.18.1.4.0"  # v1 community, same: a secret, never kept
SNMP_TRAP_ENTERPRISE = "1.3.6.1.6.3.1.1.4.3.0"
COLD_START = "1.3.6.1.6.3.1.1.5.1"
WARM_START = "1.3.6.1.6.3.1.1.5.2"
LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
LINK_UP = "1.3.6.1.6.3.1.1.5.4"
IF_ENTRY = "1.3.6.1.2.1.2.2.1"
IF_INDEX = IF_ENTRY + ".1"
IF_DESCR = IF_ENTRY + ".2"
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"

TRAP_METRIC = "snmp_trap"
LINK_DOWN_RULE = "snmp_trap_link_down"
BUILTIN_NAMES = {
    COLD_START: "coldStart",
    WARM_START: "warmStart",
    LINK_DOWN: "linkDown",
    LINK_UP: "linkUp",
}
_HEADER = frozenset({SYS_UPTIME, SNMP_TRAP_OID, SNMP_TRAP_COMMUNITY})

MAX_VALUE_CHARS = 256
MAX_DETAIL_CHARS = 2000
MAX_SUMMARY_CHARS = 500
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_ENV = SandboxedEnvironment(autoescape=False)


# -- pure part ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrapOutcome:
    """What one notification means: alert events to apply, or a device event to record."""

    events: tuple[AlertEvent, ...] = ()
    device_event: DeviceEvent | None = None
    name: str = ""  # linkDown, a mapping's name, or "" for an unknown OID (for the log)


def clean_value(text: str) -> str:
    """Return a varbind value fit for labels, summaries and logs: one line, bounded length."""
    text = _CONTROL.sub(" ", text).strip()
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _under(oid: str, prefix: str) -> bool:
    return oid == prefix or oid.startswith(prefix + ".")


def _first_under(varbinds: Mapping[str, str], prefix: str) -> str | None:
    return next((value for oid, value in varbinds.items() if _under(oid, prefix)), None)


def _detail(varbinds: Mapping[str, str]) -> str:
    text = "; ".join(f"{oid}={value}" for oid, value in varbinds.items() if oid not in _HEADER)
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 1] + "…"


def _interface(varbinds: Mapping[str, str]) -> tuple[str | None, str | None]:
    """Return (ifIndex, a display name) from a linkDown/linkUp trap's varbinds."""
    if_index = _first_under(varbinds, IF_INDEX)
    if if_index is not None and not if_index.isdigit():
        if_index = None  # a sender's text must not mint a new incident per packet
    if not if_index:  # RFC 2863 sends ifIndex; some agents send only ifAdmin/OperStatus.N
        for oid in varbinds:
            if oid.startswith(IF_ENTRY + "."):
                _column, _, index = oid[len(IF_ENTRY) + 1 :].partition(".")
                if index.isdigit():
                    if_index = index
                    break
    if not if_index:
        return None, None
    name = (
        varbinds.get(f"{IF_NAME}.{if_index}")
        or varbinds.get(f"{IF_DESCR}.{if_index}")
        or _first_under(varbinds, IF_NAME)
        or _first_under(varbinds, IF_DESCR)
    )
    return if_index, name or None


@functools.lru_cache(maxsize=256)
def _template(source: str) -> Template | None:
    try:
        return _ENV.from_string(source)
    except Exception:  # validated at config load; a broken one just falls back
        return None


def _render(
    mapping: TrapMapping,
    fallback: str,
    context: dict[str, Any],
) -> str:
    template = _template(mapping.summary) if mapping.summary else None
    if template is not None:
        try:
            text = " ".join(template.render(context).split())
        except Exception:  # a broken template must never lose the alert
            log.debug("summary template of trap mapping %s failed", mapping.name, exc_info=True)
        else:
            if text:
                return text[:MAX_SUMMARY_CHARS]
    return fallback


def _event(
    kind: EventKind, rule: str, labels: Labels, level: Level | None, summary: str, now: float
) -> AlertEvent:
    return AlertEvent(
        kind=kind,
        rule=rule,
        metric=TRAP_METRIC,
        labels=labels,
        level=level,
        previous_level=None,
        value=None,
        summary=summary,
        ts=now,
        fingerprint=fingerprint(rule, labels),
    )


def mapping_rule(mapping: TrapMapping) -> str:
    """The rule name (and fingerprint prefix) of a mapped trap's alerts."""
    return f"snmp_trap_{mapping.name}"


def trap_to_outcome(
    trap_oid: str,
    varbinds: Mapping[str, str],
    source_ip: str,
    target_labels: Labels | None,
    mappings: Sequence[TrapMapping],
    now: float,
) -> TrapOutcome:
    """Decide what one trap or inform means.

    ``varbinds`` maps numeric OIDs (no leading dot) to value text, in the order received.
    ``target_labels`` are the labels of the SNMP target at ``source_ip`` (with ``instance``);
    ``None`` for a sender allowed by ``allowed_sources`` only, which gets
    ``{instance: source_ip}``. ``now`` is the wall-clock time of receipt.
    """
    trap_oid = trap_oid.removeprefix(".")
    data = {
        oid.removeprefix("."): clean_value(value)
        for oid, value in varbinds.items()
        if oid.removeprefix(".") != SNMP_TRAP_COMMUNITY
    }
    base = target_labels if target_labels is not None else make_labels({"instance": source_ip})
    instance = dict(base).get("instance") or source_ip

    fired = next((m for m in mappings if m.oid == trap_oid), None)
    cleared = [m for m in mappings if m.clear_oid == trap_oid]
    if fired is not None or cleared:
        return _mapped(trap_oid, data, source_ip, base, instance, fired, cleared, now)
    if trap_oid in (LINK_DOWN, LINK_UP):
        return _link(trap_oid, data, base, instance, now)
    if trap_oid in (COLD_START, WARM_START):
        kind = "cold_start" if trap_oid == COLD_START else "warm_start"
        uptime = data.get(SYS_UPTIME)
        detail = f"{BUILTIN_NAMES[trap_oid]} (sysUpTime {uptime or '?'})"
        if rest := _detail(data):
            detail += f": {rest}"
        event = DeviceEvent(now, source_ip, instance, kind, trap_oid, detail[:MAX_DETAIL_CHARS])
        return TrapOutcome(device_event=event, name=BUILTIN_NAMES[trap_oid])
    event = DeviceEvent(
        now, source_ip, instance, "unknown_trap", trap_oid, _detail(data), Level.MINOR
    )
    return TrapOutcome(device_event=event)


def _link(
    trap_oid: str, data: Mapping[str, str], base: Labels, instance: str, now: float
) -> TrapOutcome:
    if_index, if_name = _interface(data)
    labels = merge_labels(base, {"ifIndex": if_index}) if if_index else base
    if if_name and if_index and if_name != if_index:
        what = f"Interface {if_name} (ifIndex {if_index})"
    else:
        what = f"Interface {if_name or if_index or '?'}"
    if trap_oid == LINK_DOWN:
        summary = f"{what} down on {instance} (trap)"
        event = _event(EventKind.FIRING, LINK_DOWN_RULE, labels, Level.MAJOR, summary, now)
    else:
        summary = f"{what} up on {instance} (trap)"
        event = _event(EventKind.RESOLVED, LINK_DOWN_RULE, labels, None, summary, now)
    return TrapOutcome(events=(event,), name=BUILTIN_NAMES[trap_oid])


def _mapped(
    trap_oid: str,
    data: Mapping[str, str],
    source_ip: str,
    base: Labels,
    instance: str,
    fired: TrapMapping | None,
    cleared: Iterable[TrapMapping],
    now: float,
) -> TrapOutcome:
    def labels_of(mapping: TrapMapping) -> Labels:
        extra = {
            label: value
            for label, prefix in mapping.labels_from.items()
            if (value := _first_under(data, prefix))
        }
        return merge_labels(base, extra)

    events: list[AlertEvent] = []
    for mapping in cleared:
        summary = f"{mapping.name} cleared on {instance} (trap)"
        labels = labels_of(mapping)
        events.append(_event(EventKind.RESOLVED, mapping_rule(mapping), labels, None, summary, now))
    if fired is not None:
        labels = labels_of(fired)
        context: dict[str, Any] = {
            "source": source_ip,
            "instance": instance,
            "labels": dict(labels),
            "varbinds": dict(data),
            "trap_oid": trap_oid,
            "name": fired.name,
        }
        summary = _render(fired, f"{fired.name} on {instance} (trap {trap_oid})", context)
        level = Level.parse(fired.level)
        events.append(_event(EventKind.FIRING, mapping_rule(fired), labels, level, summary, now))
    name = fired.name if fired is not None else ", ".join(m.name for m in cleared) + " (clear)"
    return TrapOutcome(events=tuple(events), name=name)


# -- I/O part: the pysnmp notification receiver -------------------------------------------------

_AUTH = {
    "MD5": snmp_config.USM_AUTH_HMAC96_MD5,
    "SHA": snmp_config.USM_AUTH_HMAC96_SHA,
    "SHA224": snmp_config.USM_AUTH_HMAC128_SHA224,
    "SHA256": snmp_config.USM_AUTH_HMAC192_SHA256,
    "SHA384": snmp_config.USM_AUTH_HMAC256_SHA384,
    "SHA512": snmp_config.USM_AUTH_HMAC384_SHA512,
}
# AES192/AES256 with the Blumenthal key extension, as net-snmp's AES-192/AES-256 (with SHA-256
# and longer digests the Reeder extension gives the same key)
_PRIV = {
    "DES": snmp_config.USM_PRIV_CBC56_DES,
    "AES": snmp_config.USM_PRIV_CFB128_AES,
    "AES192": snmp_config.USM_PRIV_CFB192_AES_BLUMENTHAL,
    "AES256": snmp_config.USM_PRIV_CFB256_AES_BLUMENTHAL,
}
_LEVELS = {"noAuthNoPriv": 1, "authNoPriv": 2, "authPriv": 3}
_BAD_CREDENTIALS = (
    ("__SNMPv2-MIB", "snmpInBadCommunityNames"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnknownUserNames"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsWrongDigests"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsDecryptionErrors"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnsupportedSecLevels"),
)
_MALFORMED = (
    ("__SNMPv2-MIB", "snmpInASNParseErrs"),
    ("__SNMPv2-MIB", "snmpInBadVersions"),
)
_UNSUPPORTED = (("__SNMP-MPD-MIB", "snmpUnknownPDUHandlers"),)
_COMMUNITY_PREFIX = "community-"
_MAX_WARNED = 1024
MAX_TRAP_BYTES = 8192  # a real trap is a few hundred bytes; pysnmp decodes before checking
TRAP_RATE = 50.0  # traps per second per source, sustained
TRAP_BURST = 200.0  # and in one burst (a switch reporting 48 links flapping)


def normalise_ip(text: str) -> str:
    """Return the canonical text of an IP address (IPv4-mapped IPv6 as IPv4, no zone)."""
    ip = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def _value_text(value: Any) -> str:
    """Text of a pysnmp value: numbers and OIDs as such, octets as UTF-8 or hex."""
    if isinstance(value, v2c.OctetString) and not isinstance(value, v2c.IpAddress):
        octets = bytes(value.asOctets())
        try:
            text = octets.decode("utf-8").rstrip("\x00")  # C strings with their terminator
        except UnicodeDecodeError:
            return "0x" + octets.hex()
        return text if text.isprintable() else "0x" + octets.hex()
    return str(value.prettyPrint())


def _v3_sender(datagram: bytes) -> tuple[str, str] | None:
    """(engine ID hex, user name) of a v3 message, or None if it isn't one we can read."""
    try:
        message, _ = ber_decoder.decode(datagram, asn1Spec=SNMPv3Message())
        params, _ = ber_decoder.decode(
            bytes(message["msgSecurityParameters"].asOctets()), asn1Spec=UsmSecurityParameters()
        )
        engine = bytes(params["msgAuthoritativeEngineId"].asOctets()).hex()
        user = bytes(params["msgUserName"].asOctets()).decode("utf-8", "replace")
    except Exception:
        return None
    return engine, clean_value(user)


def _read_secret(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")  # as the v3 poller reads keys
    except OSError as exc:
        raise ConfigError([ConfigProblem(path, 0, 0, "", f"cannot read: {exc.strerror}")]) from exc


class _GuardedTransport:
    """Mixin for pysnmp's asyncio UDP transports: hand each datagram to the receiver first."""

    guard: Callable[[Any, bytes, Any], None]

    def datagram_received(self, datagram: bytes, address: Any) -> None:
        self.guard(self, datagram, address)


class _GuardedUdp(_GuardedTransport, udp.UdpAsyncioTransport):  # type: ignore[misc]
    pass


class _GuardedUdp6(_GuardedTransport, udp6.Udp6AsyncioTransport):  # type: ignore[misc]
    pass


@dataclass(slots=True)
class _Current:
    """The datagram being processed: who sent it and whether pysnmp delivered it."""

    ip: str
    labels: Labels | None
    delivered: bool = False
    dropped: bool = False


class TrapReceiver:
    """Listens for SNMP traps and informs and reports what they mean through callbacks.

    ``targets_by_ip`` maps the IP address of each configured SNMP target to its labels (with
    ``instance``). ``on_events`` gets the ``AlertEvent``s of one trap (feed them to the
    incident manager), ``on_device_event`` the ``DeviceEvent``s to record, ``on_drop`` the
    reason of each dropped datagram (``unknown_source``, ``bad_credentials``, ``malformed``,
    ``unsupported_pdu``). Callbacks run on the event loop and must not block.
    """

    def __init__(
        self,
        config: TrapsConfig,
        targets_by_ip: Mapping[str, Labels],
        *,
        on_events: Callable[[list[AlertEvent]], None],
        on_device_event: Callable[[DeviceEvent], None],
        on_drop: Callable[[str], None],
        clock: Clock,
    ) -> None:
        self.config = config
        self.targets = {normalise_ip(ip): labels for ip, labels in targets_by_ip.items()}
        self.allowed = [ipaddress.ip_network(s, strict=False) for s in config.allowed_sources]
        self.on_events = on_events
        self.on_device_event = on_device_event
        self.on_drop = on_drop
        self.clock = clock
        self.address: tuple[str, int] | None = None  # bound (host, port), after start()
        self._engine: Any = None
        self._receiver: Any = None
        self._current: _Current | None = None
        self._counters: dict[str, list[Any]] = {}
        self._v3_levels: dict[str, int] = {}
        self._warned: set[tuple[str, str]] = set()
        self._warned_at: dict[str, float] = {}
        self._buckets: dict[str, tuple[float, float]] = {}

    # -- lifecycle

    async def start(self) -> None:
        """Bind the socket and start receiving; raise ``CollectError`` if it can't bind."""
        host, port = self.config.listen_address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            hint = " (ports below 1024 need CAP_NET_BIND_SERVICE)" if port < 1024 else ""
            raise CollectError(
                f"snmp traps: cannot listen on {self.config.listen}: {exc.strerror}{hint}"
            ) from exc
        self.address = sock.getsockname()[:2]
        try:
            self._start_engine(sock, family)
        except BaseException:
            self.close()
            sock.close()
            raise
        if not self.config.communities and not self.config.community_files:
            if not self.config.v3_users:
                log.warning("snmp traps: no communities and no v3_users: every trap is dropped")
        else:
            log.warning("snmp traps: v1/v2c communities accepted (cleartext, unauthenticated)")
        for user in self.config.v3_users:
            if user.security_level != "authPriv":
                log.warning("snmp traps: v3 user %s is %s", user.user, user.security_level)
        log.info(
            "snmp traps: listening on %s:%d (%d targets, %d allowed sources, %d mappings)",
            *self.address,
            len(self.targets),
            len(self.allowed),
            len(self.config.mappings),
        )

    def _start_engine(self, sock: socket.socket, family: int) -> None:
        cfg = self.config
        engine = self._engine = SnmpEngine()
        self._set_engine_identity(engine)
        transport_cls = _GuardedUdp6 if family == socket.AF_INET6 else _GuardedUdp
        domain = udp6.DOMAIN_NAME if family == socket.AF_INET6 else udp.DOMAIN_NAME
        transport = transport_cls()
        transport.guard = self._datagram
        snmp_config.add_transport(engine, domain, transport.open_server_mode(sock=sock))
        communities = [c.get_secret_value() for c in cfg.communities]
        communities += [_read_secret(path) for path in cfg.community_files]
        for index, community in enumerate(dict.fromkeys(communities), start=1):
            snmp_config.add_v1_system(engine, f"{_COMMUNITY_PREFIX}{index}", community)
        for user in cfg.v3_users:
            self._add_v3_user(engine, user)
        mib = engine.get_mib_builder()
        self._counters = {
            reason: [mib.import_symbols(module, name)[0] for module, name in symbols]
            for reason, symbols in (
                ("bad_credentials", _BAD_CREDENTIALS),
                ("malformed", _MALFORMED),
                ("unsupported_pdu", _UNSUPPORTED),
            )
        }
        self._receiver = NotificationReceiver(engine, self._notification)

    def _set_engine_identity(self, engine: Any) -> None:
        """Set this receiver's engine ID (informs) and boots, without pysnmp's boots file.

        ``SnmpEngine(snmpEngineID=...)`` would keep engine boots in /tmp/__pysnmp/<id>/ (a
        shared directory, and it leaks a file handle). Instead boots is the number of minutes
        since the epoch: it grows across restarts without a state file, as RFC 3414 wants of
        an authoritative engine with a fixed engine ID (a replayed inform from before a
        restart falls outside the time window).
        """
        mib = engine.get_mib_builder()
        (boots,) = mib.import_symbols("__SNMP-FRAMEWORK-MIB", "snmpEngineBoots")
        boots.syntax = boots.syntax.clone(max(1, min(int(self.clock.now() // 60), 2**31 - 1)))
        if self.config.engine_id:
            (engine_id,) = mib.import_symbols("__SNMP-FRAMEWORK-MIB", "snmpEngineID")
            engine_id.syntax = engine_id.syntax.clone(bytes.fromhex(self.config.engine_id))
            engine.snmpEngineID = engine_id.syntax

    def _add_v3_user(self, engine: Any, user: TrapV3User) -> None:
        def key(inline: Any, file: str | None) -> str | None:
            if inline is not None:
                return str(inline.get_secret_value())
            return _read_secret(file) if file is not None else None

        level = user.security_level
        auth = _AUTH[user.auth_protocol] if level != "noAuthNoPriv" else None
        priv = _PRIV[user.priv_protocol] if level == "authPriv" else None
        args: dict[str, Any] = {
            "authProtocol": auth or snmp_config.USM_AUTH_NONE,
            "authKey": key(user.auth_key, user.auth_key_file) if auth else None,
            "privProtocol": priv or snmp_config.USM_PRIV_NONE,
            "privKey": key(user.priv_key, user.priv_key_file) if priv else None,
        }
        snmp_config.add_v3_user(engine, user.user, **args)  # this engine: informs
        for engine_id in user.engine_ids:  # the senders' engines: traps
            security_engine = v2c.OctetString(hexValue=engine_id)
            snmp_config.add_v3_user(engine, user.user, securityEngineId=security_engine, **args)
        self._v3_levels[user.user] = _LEVELS[level]

    def close(self) -> None:
        """Stop receiving and release the socket. Idempotent."""
        engine, self._engine = self._engine, None
        if engine is None:
            return
        if self._receiver is not None:
            self._receiver.close(engine)
            self._receiver = None
        if engine.transport_dispatcher is not None:
            engine.transport_dispatcher.close_dispatcher()

    # -- per datagram

    def _datagram(self, transport: Any, datagram: bytes, address: Any) -> None:
        """Check the sender, run pysnmp on the datagram, and count what it rejected."""
        try:
            ip = normalise_ip(str(address[0]))
        except (ValueError, IndexError):
            self._drop("malformed", str(address))
            return
        allowed, labels = self._sender(ip)
        if not allowed:
            self._drop("unknown_source", ip)
            return
        if len(datagram) > MAX_TRAP_BYTES:  # pysnmp decodes all of it before any check
            self._drop("too_large", ip)
            return
        if not self._bucket(ip):
            self._drop("rate_limited", ip)
            return
        before = {reason: self._sum(reason) for reason in self._counters}
        current = self._current = _Current(ip, labels)
        try:
            transport._callback_function(transport, address, datagram)
        except Exception:
            log.debug("snmp traps: datagram from %s not processed", ip, exc_info=True)
            if not current.delivered:
                self._drop("malformed", ip)
            return
        finally:
            self._current = None
        if current.delivered or current.dropped:
            return
        for reason, count in before.items():
            if self._sum(reason) > count:
                why = self._why_rejected(datagram) if reason == "bad_credentials" else ""
                self._drop(reason, ip, why)
                return
        # otherwise a step of the v3 protocol (engine ID discovery, time sync): no drop

    def _bucket(self, ip: str) -> bool:
        """A token bucket per source: a storm from one device can't hold the event loop."""
        now = time.monotonic()
        tokens, last = self._buckets.get(ip, (TRAP_BURST, now))
        tokens = min(TRAP_BURST, tokens + (now - last) * TRAP_RATE)
        if tokens < 1:
            self._buckets[ip] = (tokens, now)
            return False
        if len(self._buckets) > 10_000:
            self._buckets.clear()
        self._buckets[ip] = (tokens - 1, now)
        return True

    def _sender(self, ip: str) -> tuple[bool, Labels | None]:
        labels = self.targets.get(ip)
        if labels is not None:
            return True, labels
        address = ipaddress.ip_address(ip)
        return any(address in net for net in self.allowed), None

    def _why_rejected(self, datagram: bytes) -> str:
        sender = _v3_sender(datagram)
        if sender is None:
            return ": community not accepted"
        engine, user = sender
        known = {u.user: u for u in self.config.v3_users}.get(user)
        if known is None:
            return f": v3 user {user!r} not configured"
        if engine in known.engine_ids or engine == self.config.engine_id:
            return f": v3 user {user}, engine ID 0x{engine}: wrong auth or priv key"
        if not engine:
            return f": v3 user {user}: no engine ID (malformed)"
        return (
            f": v3 user {user}, engine ID 0x{engine} not in its engine_ids (add it if that "
            "is the sending device's snmpEngineID)"
        )

    def _sum(self, reason: str) -> int:
        return sum(int(symbol.syntax) for symbol in self._counters[reason])

    def _drop(self, reason: str, ip: str, why: str = "") -> None:
        key = (reason, ip)
        now = time.monotonic()
        # once per source and reason, and at most once a minute per reason (spoofed floods)
        recently = now - self._warned_at.get(reason, float("-inf")) < 60
        if key in self._warned or recently:
            log.debug("snmp traps: dropped datagram from %s: %s%s", ip, reason, why)
        else:
            if len(self._warned) >= _MAX_WARNED:
                self._warned.clear()
            self._warned.add(key)
            self._warned_at[reason] = now
            log.warning(
                "snmp traps: dropped datagram from %s: %s%s (further drops from it for the same "
                "reason are logged at debug level)",
                ip,
                reason,
                why,
            )
        try:
            self.on_drop(reason)
        except Exception:
            log.exception("snmp traps: on_drop callback failed")

    def _notification(
        self,
        engine: Any,
        state_reference: Any,
        context_engine_id: Any,
        context_name: Any,
        var_binds: Sequence[tuple[Any, Any]],
        cb_ctx: Any,
    ) -> None:
        """pysnmp's callback for an accepted trap or inform (informs are already answered)."""
        current = self._current
        if current is None:
            return
        current.delivered = True
        try:
            self._deliver(engine, current, var_binds)
        except Exception:
            log.exception("snmp traps: notification from %s could not be handled", current.ip)

    def _deliver(
        self, engine: Any, current: _Current, var_binds: Sequence[tuple[Any, Any]]
    ) -> None:
        context = engine.observer.get_execution_context("rfc3412.receiveMessage:request")
        model, name = int(context["securityModel"]), str(context["securityName"])
        level = int(context["securityLevel"])
        pdu = "inform" if context["pdu"].tagSet == v2c.InformRequestPDU.tagSet else "trap"
        if model == 3:
            wanted = self._v3_levels.get(name)
            if wanted is None or level < wanted:
                current.dropped = True
                self._drop("bad_credentials", current.ip, f": v3 user {name!r}, security level")
                return
            via = f"v3 user {name}"
        else:
            via = f"{'v1' if model == 1 else 'v2c'} {name}"
        varbinds = {str(oid): _value_text(value) for oid, value in var_binds}
        varbinds.pop(SNMP_TRAP_COMMUNITY, None)
        trap_oid = varbinds.get(SNMP_TRAP_OID)
        if not trap_oid:
            current.dropped = True
            self._drop("malformed", current.ip)
            return
        outcome = trap_to_outcome(
            trap_oid, varbinds, current.ip, current.labels, self.config.mappings, self.clock.now()
        )
        instance = dict(current.labels or ()).get("instance", current.ip)
        if outcome.device_event is not None:
            what = f"{outcome.device_event.kind} event"
        else:
            what = ", ".join(
                f"{e.kind.value} {e.rule}"
                + "".join(f" {k}={v}" for k, v in e.labels if k == "ifIndex")
                for e in outcome.events
            )
        log.info(
            "snmp %s %s%s from %s (%s, %s): %s",
            pdu,
            trap_oid,
            f" {outcome.name}" if outcome.name else "",
            current.ip,
            instance,
            via,
            what,
        )
        if outcome.events:
            self.on_events(list(outcome.events))
        if outcome.device_event is not None:
            self.on_device_event(outcome.device_event)
