"""tests/snmp_agent.py against a real net-snmp snmpd, checked with the net-snmp CLI tools."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import snmp_agent
from tests.snmp_agent import (
    HOST_SPECIFIC_MOUNTS,
    HR_STORAGE_ENTRY,
    LOCALHOST_SUBTREES,
    LOCALHOST_WALK,
    SNMP_ENGINE_BOOTS,
    SNMP_ENGINE_ID,
    SYS_LOCATION,
    SYS_NAME,
    SYS_UPTIME,
    SnmpAgent,
    SnmpAgentError,
    agent_or_skip,
    drop_host_specific_storage,
    load_walk,
    normalise,
    parse_walk_output,
    record_walk,
    require_net_snmp,
    walk,
    walk_value,
)

pytestmark = pytest.mark.integration

IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"
IF_HC_IN_OCTETS = "1.3.6.1.2.1.31.1.1.1.6"


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[SnmpAgent]:
    agent = agent_or_skip(workdir=tmp_path)
    try:
        agent.start()
        yield agent
    finally:
        agent.close()


def _value(stdout: str) -> str:
    """The value part of one ``snmpget -On`` line."""
    return stdout.strip().split(" = ", 1)[1]


def _ticks(stdout: str) -> int:
    return int(_value(stdout).split("(", 1)[1].split(")", 1)[0])


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_v2c_get_answers_with_configured_sysname_on_runtime_port(agent: SnmpAgent) -> None:
    host, port = agent.address
    assert host == "127.0.0.1"
    assert port not in (161, 1611, 16161)
    assert f"agentAddress udp:127.0.0.1:{port}\n" in agent.conf_path.read_text()

    answer = agent.get(SYS_NAME, SYS_LOCATION)

    assert answer.returncode == 0, answer.stderr
    lines = answer.stdout.strip().splitlines()
    assert lines[0] == f'.{SYS_NAME} = STRING: "{agent.sys_name}"'
    assert lines[1] == f'.{SYS_LOCATION} = STRING: "{agent.sys_location}"'


def test_wrong_community_gets_no_answer(agent: SnmpAgent) -> None:
    answer = agent.get(SYS_NAME, extra=["-c", "public"])
    assert answer.returncode != 0
    assert "Timeout" in answer.stdout + answer.stderr


def test_iftable_walk_lists_loopback_with_hc_counters(agent: SnmpAgent) -> None:
    descrs = [walk_value(kind, value) for _, kind, value in walk(agent, IF_DESCR)]
    names = [walk_value(kind, value) for _, kind, value in walk(agent, IF_NAME)]
    hc_in = walk(agent, IF_HC_IN_OCTETS)

    assert b"lo" in descrs
    assert b"lo" in names
    assert {kind for _, kind, _ in hc_in} == {"Counter64"}
    assert len(hc_in) == len(descrs)


def test_v3_authpriv_with_the_right_keys_answers(agent: SnmpAgent) -> None:
    assert (agent.v3_auth_proto, agent.v3_priv_proto) == ("SHA-256", "AES")

    answer = agent.get(SYS_NAME, v3=True)

    assert answer.returncode == 0, answer.stderr
    assert _value(answer.stdout) == f'STRING: "{agent.sys_name}"'


def test_v3_wrong_auth_key_is_refused(agent: SnmpAgent) -> None:
    answer = agent.cli(
        "snmpget",
        *agent.v3_args(auth_key="0" * 24),
        "-t",
        "1",
        "-r",
        "0",
        agent.target,
        SYS_NAME,
    )

    assert answer.returncode != 0
    assert "Authentication failure" in answer.stderr
    assert agent.sys_name not in answer.stdout


def test_v3_wrong_priv_key_gets_no_answer(agent: SnmpAgent) -> None:
    # net-snmp cannot decrypt the scopedPDU and drops the request: the client times out.
    answer = agent.cli(
        "snmpget",
        *agent.v3_args(priv_key="0" * 24),
        "-t",
        "1",
        "-r",
        "0",
        agent.target,
        SYS_NAME,
    )

    assert answer.returncode != 0
    assert "Timeout" in answer.stdout + answer.stderr
    assert "error parsing ScopedPDU" in agent.log_text()


def test_pause_makes_the_agent_silent_and_resume_brings_it_back(agent: SnmpAgent) -> None:
    pid = agent.pid
    agent.pause()
    try:
        assert agent.paused
        started = time.monotonic()
        silent = agent.get(SYS_UPTIME, timeout=1, retries=0)
        assert silent.returncode != 0
        assert "Timeout" in silent.stdout + silent.stderr
        assert time.monotonic() - started < 5
    finally:
        agent.resume()

    answer = agent.get(SYS_UPTIME)
    assert answer.returncode == 0, answer.stderr
    assert agent.pid == pid


def test_restart_keeps_port_and_engine_id_and_resets_uptime(agent: SnmpAgent) -> None:
    port, old_pid = agent.port, agent.pid
    time.sleep(1.2)
    before = agent.get(SYS_UPTIME, SNMP_ENGINE_ID, SNMP_ENGINE_BOOTS)
    assert before.returncode == 0, before.stderr
    uptime, engine_id, boots = before.stdout.strip().split("\n.")[:3]
    assert _ticks(uptime) >= 100

    agent.restart()

    assert agent.port == port
    assert agent.pid is not None
    assert agent.pid != old_pid
    assert old_pid is not None
    assert _gone(old_pid)
    after = agent.get(SYS_UPTIME, SNMP_ENGINE_ID, SNMP_ENGINE_BOOTS)
    assert after.returncode == 0, after.stderr
    new_uptime, new_engine_id, new_boots = after.stdout.strip().split("\n.")[:3]
    assert _ticks(new_uptime) < _ticks(uptime)
    # the persistent dir keeps the engineID and counts engineBoots, as on a real device
    assert _value(new_engine_id) == _value(engine_id)
    assert int(_value(new_boots).split()[-1]) == int(_value(boots).split()[-1]) + 1
    assert agent.get(SYS_NAME, v3=True).returncode == 0


def test_stop_leaves_no_process(agent: SnmpAgent) -> None:
    pid = agent.pid
    assert pid is not None

    agent.stop()

    assert agent.pid is None
    assert not agent.running
    assert _gone(pid)
    agent.stop()  # idempotent


def test_stop_while_paused_still_ends_the_process(agent: SnmpAgent) -> None:
    pid = agent.pid
    assert pid is not None
    agent.pause()

    started = time.monotonic()
    agent.stop()

    assert _gone(pid)
    assert time.monotonic() - started < 3  # SIGTERM acted on, no SIGKILL wait


def test_bad_config_fails_start_with_the_log_and_leaves_nothing_running(tmp_path: Path) -> None:
    agent = agent_or_skip(workdir=tmp_path, extra_conf="noSuchSnmpdToken 1")
    try:
        with pytest.raises(SnmpAgentError, match="noSuchSnmpdToken"):
            agent.start()
        assert agent.pid is None
    finally:
        agent.close()


def test_context_manager_stops_and_removes_its_own_dir() -> None:
    with agent_or_skip() as agent:
        pid, workdir = agent.pid, agent.workdir
        assert pid is not None
        assert agent.get(SYS_NAME).returncode == 0
    assert _gone(pid)
    assert not workdir.exists()


def test_agent_or_skip_skips_or_fails_without_snmpd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snmp_agent, "find_tool", lambda name: None)

    monkeypatch.delenv("ALERTD_REQUIRE_PEERS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install snmpd snmp"):
        agent_or_skip()

    monkeypatch.setenv("ALERTD_REQUIRE_PEERS", "1")
    with pytest.raises(pytest.fail.Exception, match="ALERTD_REQUIRE_PEERS=1"):
        agent_or_skip()
    with pytest.raises(pytest.fail.Exception, match="snmptrap"):
        require_net_snmp("snmptrap")


def test_record_walk_round_trips_through_load_walk(agent: SnmpAgent, tmp_path: Path) -> None:
    path = tmp_path / "walk" / "agent.walk"
    subtrees = [(oid, label) for oid, label in LOCALHOST_SUBTREES if "hrProcessorLoad" not in label]

    rows = record_walk(agent, subtrees, path)

    loaded = load_walk(path)
    assert loaded == rows
    kinds = {kind for _, kind, _ in loaded}
    assert {"Counter32", "Counter64", "Gauge32", "INTEGER", "STRING", "Timeticks", "OID"} <= kinds
    assert "Hex-STRING" in kinds  # ifPhysAddress
    assert (SYS_NAME, "STRING", agent.sys_name) in loaded
    for oid, _label in subtrees:
        assert any(row[0].startswith(oid + ".") for row in loaded), oid


def test_checked_in_localhost_walk_is_complete() -> None:
    rows = load_walk(LOCALHOST_WALK)

    for oid, label in LOCALHOST_SUBTREES:
        assert any(row[0].startswith(oid + ".") for row in rows), label
    if_descr = {walk_value(k, v) for o, k, v in rows if o.startswith(IF_DESCR + ".")}
    assert b"lo" in if_descr
    kinds = {kind for _, kind, _ in rows}
    assert {"Counter32", "Counter64", "Gauge32", "INTEGER", "STRING", "Hex-STRING"} <= kinds
    # normalise() pins what moves between recordings and leaves the rest alone
    real = {o: v for o, _, v in rows}
    pinned = {o: v for o, _, v in normalise(rows)}
    assert pinned[SYS_UPTIME] == "0"
    assert pinned[SYS_NAME] == real[SYS_NAME]
    storage = {v for o, _, v in rows if o.startswith(HR_STORAGE_ENTRY + ".3.")}
    assert "/" in storage
    assert not any(HOST_SPECIFIC_MOUNTS.match(descr) for descr in storage)


def test_drop_host_specific_storage_drops_whole_entries() -> None:
    rows = [
        (f"{HR_STORAGE_ENTRY}.3.36", "STRING", "/"),
        (f"{HR_STORAGE_ENTRY}.3.38", "STRING", "/sys/fs/cgroup"),
        (f"{HR_STORAGE_ENTRY}.6.36", "INTEGER", "5"),
        (f"{HR_STORAGE_ENTRY}.6.38", "INTEGER", "0"),
        (SYS_NAME, "STRING", "x"),
    ]

    assert drop_host_specific_storage(rows) == [rows[0], rows[2], rows[4]]


def test_parse_walk_output_handles_wrapped_hex_empty_and_opaque() -> None:
    text = (
        ".1.3.6.1.2.1.1.1.0 = Hex-STRING: 4C 69 6E 75 78 20 76 6D 20 36 2E 31 38 2E 34 34 \n"
        "2D 66 63 \n"
        ".1.3.6.1.2.1.1.3.0 = Timeticks: (4242) 0:00:42.42\n"
        '.1.3.6.1.2.1.2.2.1.6.1 = ""\n'
        ".1.3.6.1.2.1.2.2.1.6.4 = Hex-STRING: 02 FC 00 00 00 01 \n"
        ".1.3.6.1.2.1.31.1.1.1.18.4 = Hex-STRING: 20 75 70 6C 69 6E 6B 20 \n"
        ".1.3.6.1.4.1.2021.10.1.6.1 = Opaque: Float: 0.443848\n"
        ".1.3.6.1.2.1.1.2.0 = OID: .1.3.6.1.4.1.8072.3.2.10\n"
        ".1.3.6.1.2.1.25.3.3.1.2 = No Such Instance currently exists at this OID\n"
    )

    assert parse_walk_output(text) == [
        ("1.3.6.1.2.1.1.1.0", "STRING", "Linux vm 6.18.44-fc"),
        ("1.3.6.1.2.1.1.3.0", "Timeticks", "4242"),
        ("1.3.6.1.2.1.2.2.1.6.1", "STRING", ""),
        ("1.3.6.1.2.1.2.2.1.6.4", "Hex-STRING", "02fc00000001"),
        ("1.3.6.1.2.1.31.1.1.1.18.4", "Hex-STRING", "2075706c696e6b20"),  # edge blanks
        ("1.3.6.1.4.1.2021.10.1.6.1", "Opaque-Float", "0.443848"),
        ("1.3.6.1.2.1.1.2.0", "OID", "1.3.6.1.4.1.8072.3.2.10"),
    ]
