"""Schema of the ``traps:`` section: where the SNMP trap receiver listens, who may send to it,
and what each trap OID means.

The receiver (``alertd/collect/snmp/traps.py``) accepts v1/v2c traps and informs whose
community is in ``communities``/``community_files`` and v3 ones from ``v3_users``, from the
address of a configured SNMP target or from ``allowed_sources``; everything else is dropped
and counted. linkDown/linkUp, coldStart/warmStart are built in; ``mappings`` turn other trap
OIDs into alerts (a mapping for a built-in OID replaces the built-in).

Port 162 is privileged: binding it needs root or ``CAP_NET_BIND_SERVICE``
(systemd: ``AmbientCapabilities=CAP_NET_BIND_SERVICE``). The default listens on the
unprivileged 127.0.0.1:9162; point devices there, or forward 162 to it (e.g. an nftables
``redirect``).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal, Self

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import Field, SecretStr, field_validator, model_validator

from alertd.config.snmp_v3 import SnmpV3User
from alertd.config.types import StrictModel

_NUMERIC_OID = re.compile(r"\.?[0-2](?:\.(?:0|[1-9]\d{0,9}))+")
_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEX = re.compile(r"(?:[0-9a-f]{2})+")
_SYNTAX_CHECK = SandboxedEnvironment(autoescape=False)


def numeric_oid(text: str) -> str:
    """Return ``text`` as a dotted numeric OID without a leading dot; raise ``ValueError``."""
    value = text.strip()
    if not _NUMERIC_OID.fullmatch(value):
        raise ValueError(f"{text!r} is not a numeric OID such as 1.3.6.1.6.3.1.1.5.3")
    return value.removeprefix(".")


def parse_listen(text: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[v6-address]:PORT`` for IPv6) into an IP literal and a port."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"listen {text!r}: expected HOST:PORT such as 127.0.0.1:9162")
    bracketed = host.startswith("[") and host.endswith("]")
    if bracketed:
        host = host[1:-1]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"listen {text!r}: HOST must be an IP address (0.0.0.0 for all of IPv4)"
        ) from None
    if (ip.version == 6) != bracketed:
        raise ValueError(f"listen {text!r}: write an IPv6 address (only) as [ADDRESS]:PORT")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"listen {text!r}: port must be 0..65535")
    return host, port


def engine_id_hex(text: str) -> str:
    """Normalise an SNMP engine ID (hex, ``0x`` prefix and ``:`` separators allowed)."""
    value = text.strip().lower().removeprefix("0x").replace(":", "")
    if not _HEX.fullmatch(value) or not 5 <= len(value) // 2 <= 32:
        raise ValueError(f"engine ID {text!r}: expected 5 to 32 octets in hex, e.g. 0x80001f8880")
    return value


class TrapV3User(SnmpV3User):
    """An SNMPv3 user allowed to send traps and informs.

    For a v3 TRAP the sender is the authoritative engine, so its keys are localized with the
    sender's engine ID: list the engine IDs of the devices that send traps as this user
    (``snmpEngineID``, e.g. ``show snmp engineID`` on Cisco; net-snmp ``snmptrap -e``).
    A v3 INFORM is authenticated with the receiver's engine ID (``TrapsConfig.engine_id``),
    which the sender discovers, so informs need no ``engine_ids``.
    """

    engine_ids: list[str] = []

    @field_validator("engine_ids")
    @classmethod
    def _engine_ids(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(engine_id_hex(v) for v in value))


class TrapMapping(StrictModel):
    """Turn one trap OID into an alert (and optionally another trap OID into its recovery).

    ``summary`` is a sandboxed Jinja template with ``source`` (sender IP), ``instance``,
    ``labels``, ``varbinds`` (numeric OID -> value text), ``trap_oid`` and ``name``; the
    values are data and are never evaluated as templates. ``labels_from`` maps a label name
    to a varbind OID prefix: the first varbind under that prefix gives the label's value,
    which becomes part of the alert's identity (one incident per interface, per PSU, ...).
    """

    oid: str
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    level: Literal["critical", "major", "minor"] = "major"
    summary: str | None = None
    clear_oid: str | None = None
    labels_from: dict[str, str] = {}

    @field_validator("oid", "clear_oid")
    @classmethod
    def _oid(cls, value: str | None) -> str | None:
        return None if value is None else numeric_oid(value)

    @field_validator("labels_from")
    @classmethod
    def _labels_from(cls, value: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for label, prefix in value.items():
            if not _LABEL_NAME.fullmatch(label):
                raise ValueError(f"label name {label!r} must match [A-Za-z_][A-Za-z0-9_]*")
            if label == "instance":
                raise ValueError("the instance label comes from the sending device, not a varbind")
            out[label] = numeric_oid(prefix)
        return out

    @field_validator("summary")
    @classmethod
    def _summary(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                _SYNTAX_CHECK.parse(value)
            except TemplateSyntaxError as exc:
                raise ValueError(f"summary template: {exc.message} (line {exc.lineno})") from exc
        return value

    @model_validator(mode="after")
    def _clear_differs(self) -> Self:
        if self.clear_oid is not None and self.clear_oid == self.oid:
            raise ValueError("clear_oid must differ from oid")
        return self


class TrapsConfig(StrictModel):
    """The SNMP trap/inform receiver."""

    listen: str = "127.0.0.1:9162"
    engine_id: str | None = None  # hex; default: pysnmp's, which changes on every start
    communities: list[SecretStr] = []
    community_files: list[str] = []
    v3_users: list[TrapV3User] = []
    allowed_sources: list[str] = []
    mappings: list[TrapMapping] = []

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value.strip()

    @field_validator("engine_id")
    @classmethod
    def _engine_id(cls, value: str | None) -> str | None:
        return None if value is None else engine_id_hex(value)

    @field_validator("communities")
    @classmethod
    def _communities(cls, value: list[SecretStr]) -> list[SecretStr]:
        if any(not c.get_secret_value() for c in value):
            raise ValueError("a community must not be empty")
        return value

    @field_validator("allowed_sources")
    @classmethod
    def _sources(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item.strip(), strict=False)
            except ValueError as exc:
                raise ValueError(f"{item!r} is not an IP address or network") from exc
        return [item.strip() for item in value]

    @model_validator(mode="after")
    def _unique(self) -> Self:
        users = [u.user for u in self.v3_users]
        if dup := sorted({u for u in users if users.count(u) > 1}):
            raise ValueError(f"v3_users: user {dup[0]!r} is listed twice")
        names = [m.name for m in self.mappings]
        if dup := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"mappings: name {dup[0]!r} is used twice")
        oids = [m.oid for m in self.mappings]
        if dup := sorted({o for o in oids if oids.count(o) > 1}):
            raise ValueError(f"mappings: oid {dup[0]} is mapped twice")
        for mapping in self.mappings:
            if mapping.clear_oid in oids:
                raise ValueError(
                    f"mappings: {mapping.name}: clear_oid {mapping.clear_oid} is also the oid "
                    "of a mapping"
                )
        return self

    @property
    def listen_address(self) -> tuple[str, int]:
        """The (IP, port) to bind."""
        return parse_listen(self.listen)
