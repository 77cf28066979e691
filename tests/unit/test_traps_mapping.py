"""Unit tests of what a trap means (``trap_to_outcome``), the ``traps:`` schema and the
device events log. No sockets: the receiver is tested against net-snmp in
``tests/integration/test_snmp_traps.py``."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from pydantic import ValidationError

from alertd.collect.snmp.traps import (
    COLD_START,
    LINK_DOWN,
    LINK_DOWN_RULE,
    LINK_UP,
    SNMP_TRAP_COMMUNITY,
    SNMP_TRAP_OID,
    SYS_UPTIME,
    WARM_START,
    TrapOutcome,
    clean_value,
    normalise_ip,
    trap_to_outcome,
)
from alertd.config.traps import TrapMapping, TrapsConfig
from alertd.model import AlertEvent, EventKind, Level, fingerprint, make_labels
from alertd.state.events import (
    DeviceEvent,
    prune_device_events,
    recent_device_events,
    record_device_event,
)
from tests.unit.conftest import T0

SOURCE = "192.0.2.10"
TARGET = make_labels({"instance": "sw1", "site": "dc1", "criticality": "high"})
IF_INDEX = "1.3.6.1.2.1.2.2.1.1"
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
IF_OPER = "1.3.6.1.2.1.2.2.1.8"
PSU_TRAP = "1.3.6.1.4.1.9999.0.1"
PSU_CLEAR = "1.3.6.1.4.1.9999.0.2"
PSU_INDEX = "1.3.6.1.4.1.9999.1.1.1"
PSU_STATE = "1.3.6.1.4.1.9999.1.1.2"


def varbinds(trap_oid: str, *pairs: tuple[str, str]) -> dict[str, str]:
    """The varbinds of a v2c trap as the receiver hands them over: header first."""
    return {SYS_UPTIME: "12345", SNMP_TRAP_OID: trap_oid, **dict(pairs)}


def outcome(
    trap_oid: str,
    *pairs: tuple[str, str],
    labels: Any = TARGET,
    mappings: list[TrapMapping] | None = None,
) -> TrapOutcome:
    return trap_to_outcome(trap_oid, varbinds(trap_oid, *pairs), SOURCE, labels, mappings or [], T0)


def only_event(result: TrapOutcome) -> AlertEvent:
    assert result.device_event is None
    assert len(result.events) == 1
    return result.events[0]


def psu_mapping(**fields: Any) -> TrapMapping:
    data: dict[str, Any] = {
        "oid": PSU_TRAP,
        "name": "psu_failed",
        "level": "critical",
        "clear_oid": PSU_CLEAR,
        "labels_from": {"psu": PSU_INDEX},
        "summary": "PSU {{ labels.psu }} on {{ instance }} is {{ varbinds['" + PSU_STATE + "'] }}",
    }
    data.update(fields)
    return TrapMapping.model_validate(data)


# -- linkDown / linkUp -----------------------------------------------------------------------------


def test_link_down_fires_per_interface_and_link_up_resolves_the_same_fingerprint() -> None:
    down = only_event(outcome(LINK_DOWN, (f"{IF_INDEX}.2", "2"), (f"{IF_DESCR}.2", "eth0")))
    up = only_event(outcome(LINK_UP, (f"{IF_INDEX}.2", "2"), (f"{IF_DESCR}.2", "eth0")))

    assert down.kind is EventKind.FIRING
    assert down.rule == LINK_DOWN_RULE
    assert down.level is Level.MAJOR
    assert down.labels == make_labels({**dict(TARGET), "ifIndex": "2"})
    assert down.fingerprint == fingerprint(LINK_DOWN_RULE, down.labels)
    assert down.summary == "Interface eth0 (ifIndex 2) down on sw1 (trap)"
    assert down.ts == T0
    assert up.kind is EventKind.RESOLVED
    assert up.level is None
    assert up.fingerprint == down.fingerprint
    assert up.summary == "Interface eth0 (ifIndex 2) up on sw1 (trap)"


def test_each_interface_is_its_own_alert() -> None:
    eth0 = only_event(outcome(LINK_DOWN, (f"{IF_INDEX}.2", "2")))
    eth1 = only_event(outcome(LINK_DOWN, (f"{IF_INDEX}.3", "3")))
    other_device = only_event(
        outcome(LINK_DOWN, (f"{IF_INDEX}.2", "2"), labels=make_labels({"instance": "sw2"}))
    )
    assert len({eth0.fingerprint, eth1.fingerprint, other_device.fingerprint}) == 3
    assert eth1.summary == "Interface 3 down on sw1 (trap)"


def test_if_index_from_the_oid_when_the_agent_sends_only_the_status_columns() -> None:
    event = only_event(outcome(LINK_DOWN, (f"{IF_OPER}.7", "2")))
    assert dict(event.labels)["ifIndex"] == "7"


def test_link_down_without_any_interface_varbind_is_one_alert_per_device() -> None:
    event = only_event(outcome(LINK_DOWN))
    assert event.labels == TARGET
    assert event.summary == "Interface ? down on sw1 (trap)"


def test_a_sender_allowed_but_not_a_target_is_its_own_instance() -> None:
    event = only_event(outcome(LINK_DOWN, (f"{IF_INDEX}.2", "2"), labels=None))
    assert event.labels == make_labels({"instance": SOURCE, "ifIndex": "2"})
    assert event.summary == f"Interface 2 down on {SOURCE} (trap)"


# -- device events ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("oid", "kind"), [(COLD_START, "cold_start"), (WARM_START, "warm_start")])
def test_restarts_are_device_events(oid: str, kind: str) -> None:
    result = outcome(oid)
    assert result.events == ()
    assert result.device_event == DeviceEvent(
        ts=T0,
        source=SOURCE,
        instance="sw1",
        kind=kind,
        trap_oid=oid,
        detail=f"{'coldStart' if oid == COLD_START else 'warmStart'} (sysUpTime 12345)",
        level=None,
    )


def test_an_unknown_trap_oid_is_a_minor_device_event_with_its_varbinds() -> None:
    result = outcome(
        "1.3.6.1.4.1.8072.2.3.0.1",
        ("1.3.6.1.4.1.8072.2.3.2.1", "42"),
        (SNMP_TRAP_COMMUNITY, "s3cret-community"),  # a v1 trap's community: never kept
    )
    assert result.events == ()
    event = result.device_event
    assert event is not None
    assert (event.kind, event.level, event.trap_oid) == (
        "unknown_trap",
        Level.MINOR,
        "1.3.6.1.4.1.8072.2.3.0.1",
    )
    assert event.detail == "1.3.6.1.4.1.8072.2.3.2.1=42"
    assert "s3cret" not in repr(result)


# -- mappings --------------------------------------------------------------------------------------


def test_a_mapped_oid_fires_at_its_level_with_its_summary_and_labels() -> None:
    result = outcome(
        PSU_TRAP, (f"{PSU_INDEX}.1", "1"), (f"{PSU_STATE}.1", "failed"), mappings=[psu_mapping()]
    )
    event = only_event(result)
    assert event.kind is EventKind.FIRING
    assert event.level is Level.CRITICAL
    assert event.rule == "snmp_trap_psu_failed"
    assert event.labels == make_labels({**dict(TARGET), "psu": "1"})
    assert result.name == "psu_failed"


def test_the_summary_template_sees_varbinds_source_and_trap_oid() -> None:
    mapping = psu_mapping(
        summary="{{ name }} from {{ source }} ({{ trap_oid }}): {{ varbinds['" + PSU_STATE + "'] }}"
    )
    event = only_event(outcome(PSU_TRAP, (PSU_STATE, "failed"), mappings=[mapping]))
    assert event.summary == f"psu_failed from {SOURCE} ({PSU_TRAP}): failed"


@pytest.mark.parametrize(
    "template",
    [
        "{{ varbinds.missing.deeper }}",  # undefined attribute of undefined: UndefinedError
        "{{ ''.__class__.__mro__ }}",  # the sandbox says no
        "{{ 1 / 0 }}",
        "   ",  # renders empty
    ],
)
def test_a_failing_template_falls_back_to_a_plain_summary(template: str) -> None:
    event = only_event(outcome(PSU_TRAP, mappings=[psu_mapping(summary=template)]))
    assert event.summary == f"psu_failed on sw1 (trap {PSU_TRAP})"
    assert event.level is Level.CRITICAL


def test_clear_oid_resolves_the_same_fingerprint() -> None:
    mappings = [psu_mapping()]
    fired = only_event(outcome(PSU_TRAP, (f"{PSU_INDEX}.2", "2"), mappings=mappings))
    cleared = only_event(outcome(PSU_CLEAR, (f"{PSU_INDEX}.2", "2"), mappings=mappings))
    other_psu = only_event(outcome(PSU_CLEAR, (f"{PSU_INDEX}.1", "1"), mappings=mappings))
    assert cleared.kind is EventKind.RESOLVED
    assert cleared.level is None
    assert cleared.fingerprint == fired.fingerprint
    assert other_psu.fingerprint != fired.fingerprint
    assert cleared.summary == "psu_failed cleared on sw1 (trap)"


def test_a_mapping_replaces_a_built_in() -> None:
    mapping = TrapMapping.model_validate(
        {"oid": LINK_DOWN, "name": "uplink_down", "level": "critical", "clear_oid": LINK_UP}
    )
    down = only_event(outcome(LINK_DOWN, (f"{IF_INDEX}.2", "2"), mappings=[mapping]))
    up = only_event(outcome(LINK_UP, (f"{IF_INDEX}.2", "2"), mappings=[mapping]))
    assert (down.rule, down.level, down.labels) == ("snmp_trap_uplink_down", Level.CRITICAL, TARGET)
    assert up.kind is EventKind.RESOLVED
    assert up.fingerprint == down.fingerprint


def test_varbind_values_are_data_never_templates() -> None:
    evil = "{{ 7*7 }}{% for x in range(3) %}x{% endfor %}"
    mapping = psu_mapping(summary="PSU {{ labels.psu }}: {{ varbinds['" + PSU_STATE + "'] }}")
    event = only_event(
        outcome(PSU_TRAP, (f"{PSU_INDEX}.1", evil), (PSU_STATE, evil), mappings=[mapping])
    )
    assert dict(event.labels)["psu"] == evil
    assert event.summary == f"PSU {evil}: {evil}"

    down = only_event(outcome(LINK_DOWN, (f"{IF_INDEX}.2", "2"), (f"{IF_DESCR}.2", evil)))
    assert down.summary == f"Interface {evil} (ifIndex 2) down on sw1 (trap)"


def test_values_are_one_bounded_line() -> None:
    assert clean_value("eth0\r\nINFO forged log line") == "eth0 INFO forged log line"
    long = clean_value("x" * 10_000)
    assert len(long) == 256
    assert long.endswith("…")


def test_ip_addresses_are_normalised() -> None:
    assert normalise_ip("::ffff:192.0.2.1") == "192.0.2.1"
    assert normalise_ip("fe80::1%eth0") == "fe80::1"
    assert normalise_ip("2001:DB8::1") == "2001:db8::1"


# -- the traps: schema -----------------------------------------------------------------------------


def test_config_defaults_and_normalisation() -> None:
    cfg = TrapsConfig.model_validate(
        {
            "engine_id": "0x80001F88:80",
            "communities": ["public-ish"],
            "v3_users": [
                {
                    "user": "traps",
                    "auth_key": "authpass123",
                    "priv_key": "privpass123",
                    "engine_ids": ["0x8000000001020304", "8000000001020304"],
                }
            ],
            "allowed_sources": ["10.0.0.0/24", " 192.0.2.7 "],
            "mappings": [{"oid": ".1.3.6.1.4.1.9.0.1", "name": "x", "labels_from": {"a": ".1.3"}}],
        }
    )
    assert TrapsConfig().listen_address == ("127.0.0.1", 9162)
    assert cfg.engine_id == "80001f8880"
    assert cfg.v3_users[0].engine_ids == ["8000000001020304"]
    assert cfg.v3_users[0].security_level == "authPriv"
    assert cfg.allowed_sources == ["10.0.0.0/24", "192.0.2.7"]
    assert cfg.mappings[0].oid == "1.3.6.1.4.1.9.0.1"
    assert cfg.mappings[0].labels_from == {"a": "1.3"}
    assert cfg.mappings[0].level == "major"
    assert "public-ish" not in repr(cfg)
    assert TrapsConfig(listen="[::1]:162").listen_address == ("::1", 162)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"listen": "localhost:162"}, "must be an IP address"),
        ({"listen": "127.0.0.1"}, "expected HOST:PORT"),
        ({"listen": "127.0.0.1:70000"}, "port must be"),
        ({"listen": "::1:162"}, "IPv6"),
        ({"engine_id": "0x1234"}, "5 to 32 octets"),
        ({"communities": [""]}, "must not be empty"),
        ({"allowed_sources": ["sw1.example.com"]}, "not an IP address"),
        ({"mappings": [{"oid": "IF-MIB::linkDown", "name": "x"}]}, "not a numeric OID"),
        ({"mappings": [{"oid": "1.3.6", "name": "x", "summary": "{{ x"}]}, "summary template"),
        ({"mappings": [{"oid": "1.3.6", "name": "x", "clear_oid": "1.3.6"}]}, "must differ"),
        ({"mappings": [{"oid": "1.3.6", "name": "x", "level": "warning"}]}, "critical"),
        (
            {"mappings": [{"oid": "1.3.6", "name": "x", "labels_from": {"instance": "1.3"}}]},
            "instance label",
        ),
        ({"mappings": [{"oid": "1.3.6", "name": "x"}, {"oid": "1.3.7", "name": "x"}]}, "twice"),
        ({"mappings": [{"oid": "1.3.6", "name": "x"}, {"oid": "1.3.6", "name": "y"}]}, "twice"),
        (
            {
                "mappings": [
                    {"oid": "1.3.6", "name": "x"},
                    {"oid": "1.3.7", "name": "y", "clear_oid": "1.3.6"},
                ]
            },
            "also the oid",
        ),
        ({"v3_users": [{"user": "u", "auth_key": "a" * 8}]}, "priv_key"),
        (
            {"v3_users": [{"user": "u", "security_level": "noAuthNoPriv", "engine_ids": ["zz"]}]},
            "hex",
        ),
        ({"mappings": [{"oid": "1.3.6", "name": "x", "typo": 1}]}, "Extra inputs"),
    ],
)
def test_config_errors(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TrapsConfig.model_validate(data)


# -- the device events log -------------------------------------------------------------------------


def test_device_events_round_trip_newest_first(conn: sqlite3.Connection) -> None:
    restart = outcome(COLD_START).device_event
    unknown = trap_to_outcome("1.3.6.1.4.1.1.0.9", {}, "192.0.2.99", None, [], T0 + 5).device_event
    assert restart is not None
    assert unknown is not None
    record_device_event(conn, restart)
    record_device_event(conn, unknown)

    assert recent_device_events(conn, 10) == [unknown, restart]
    assert recent_device_events(conn, 1) == [unknown]
    assert recent_device_events(conn, 10, instance="sw1") == [restart]
    assert prune_device_events(conn, before=T0 + 1) == 1
    assert recent_device_events(conn, 10) == [unknown]
