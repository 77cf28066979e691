"""A real net-snmp ``snmpd`` for integration tests, and recorded walks for unit tests.

``SnmpAgent`` runs Debian's ``/usr/sbin/snmpd`` as a child process on ``udp:127.0.0.1:<port>``
(port picked at run time), in the foreground, with a generated ``snmpd.conf`` and everything it
writes kept in one work directory:

* a v2c read-only community (random token, ``.community``) and one v3 authPriv user
  (``.v3_user`` / ``.v3_auth_proto`` / ``.v3_auth_key`` / ``.v3_priv_proto`` / ``.v3_priv_key``),
  both with a view of the whole tree;
* the machine's real interfaces in IF-MIB ifTable/ifXTable, HOST-RESOURCES-MIB hrStorage and
  hrProcessorLoad, UCD-SNMP-MIB laTable/memory and SNMPv2-MIB system, with ``sysName`` and
  ``sysLocation`` set to known values.

How snmpd is kept away from the machine's own configuration and state:

* ``SNMPCONFPATH=<work>/conf:<work>/persist`` instead of ``-C -c FILE``: when SNMPCONFPATH is
  set, snmpd reads only those directories (not ``/etc/snmp``, ``~/.snmp`` or
  ``/var/lib/snmp``). ``-C`` would also skip the persistent file, so every start would get a
  new random engineID and engineBoots 1; reading ``<work>/persist`` keeps the engineID and
  counts engineBoots up across ``restart()``, as a real device does.
* ``SNMP_PERSISTENT_DIR=<work>/persist``: where snmpd writes engineBoots/usmUser on shutdown.
  The CLI tools get their own (``client_env()``) because even ``snmpget`` creates
  ``<persistent dir>/cert_indexes`` on first use, by default under ``/var/lib/snmp``.
* ``MIBS=`` (empty): no MIB files are parsed, by the agent or the CLI tools; OIDs are numeric.
* ``-I <modules>``: only the MIB modules the tests need are initialised. The default set
  includes ``smux``, which listens on TCP 0.0.0.0:199 (a fixed port, on every interface).
* ``-f -A -Lf <work>/snmpd.log -p <work>/snmpd.pid``: foreground, log to a file (``-A``
  appends: without it snmpd truncates the log on every start, losing the runs before a
  ``restart()``), pid file in the work directory.

``agent_or_skip()`` makes a (not yet started) agent, or skips the test when net-snmp is not
installed -- or fails it when ``ALERTD_REQUIRE_PEERS=1`` (set by CI), so CI cannot silently skip.

``record_walk()`` / ``load_walk()`` write and read the text walks in ``tests/data/snmp/``;
``python -m tests.snmp_agent --record`` refreshes them from a real agent.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime as dt
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

HOST = "127.0.0.1"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
SYS_LOCATION = "1.3.6.1.2.1.1.6.0"
SNMP_ENGINE_ID = "1.3.6.1.6.3.10.2.1.1.0"
SNMP_ENGINE_BOOTS = "1.3.6.1.6.3.10.2.1.2.0"

# MIB modules (snmpd ``-I``) the tests need. Names are net-snmp's init names, as printed by
# ``snmpd -Dmib_init``. v3 needs usm*/snmpEngine/vacm*; hrProcessorLoad needs hr_device + cpu.
DEFAULT_MODULES: tuple[str, ...] = (
    # SNMPv2-MIB system, sysORTable, snmp counters
    "system_mib",
    "sysORTable",
    "snmp_mib",
    # access control and SNMPv3 USM (rocommunity/rouser/createUser)
    "vacm_vars",
    "vacm_conf",
    "usmConf",
    "usmUser",
    "usmStats",
    "snmpEngine",
    "snmpMPDStats",
    "setSerialNo",
    # IF-MIB
    "interface",
    "ifTable",
    "ifXTable",
    # HOST-RESOURCES-MIB
    "hr_system",
    "hr_device",
    "hr_proc",
    "hrh_storage",
    "hw_mem",
    "hw_fsys",
    "cpu",
    "cpu_linux",
    # UCD-SNMP-MIB laTable, memory, systemStats (ssCpuRaw*)
    "loadave",
    "memory",
    "vmstat",
)

# Auth/priv protocols (createUser and the CLI's -a/-x) that Debian's net-snmp 5.9.3 accepts,
# all checked with snmpget: no 3DES. AES-192/AES-256 use the Blumenthal key extension,
# AES-192-C/AES-256-C the Reeder ("Cisco") one.
AUTH_PROTOCOLS = ("MD5", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512")
PRIV_PROTOCOLS = ("DES", "AES", "AES-128", "AES-192", "AES-256", "AES-192-C", "AES-256-C")
# What an agent built without SHA-2 would fall back to when no protocol was asked for.
_AUTO_AUTH = ("SHA-256", "SHA")
_AUTO_PRIV = ("AES",)

_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 5.0
_LIVE: weakref.WeakSet[SnmpAgent] = weakref.WeakSet()


class SnmpAgentError(RuntimeError):
    """snmpd did not start, or did not accept its configuration."""


@dataclass(frozen=True, slots=True)
class V3User:
    """An SNMPv3 authPriv user as created in snmpd.conf (passphrases, not localized keys)."""

    name: str
    auth_proto: str
    auth_key: str
    priv_proto: str
    priv_key: str

    def cli_args(self, *, auth_key: str | None = None, priv_key: str | None = None) -> list[str]:
        """Arguments for the net-snmp CLI tools; override a key to test a wrong one."""
        return [
            "-v3",
            "-l",
            "authPriv",
            "-u",
            self.name,
            "-a",
            self.auth_proto,
            "-A",
            self.auth_key if auth_key is None else auth_key,
            "-x",
            self.priv_proto,
            "-X",
            self.priv_key if priv_key is None else priv_key,
        ]


def find_tool(name: str) -> str | None:
    """Path of a net-snmp binary, also looking in the sbin dirs a non-root PATH lacks."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/sbin"])
    return shutil.which(name, path=path)


def free_udp_port(host: str = HOST) -> int:
    """Return a UDP port that was free a moment ago (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port


def _secret() -> str:
    # hex: never starts with "-" (the CLI would take it for an option), >= 8 chars for USM
    return secrets.token_hex(12)


class SnmpAgent:
    """One net-snmp snmpd on 127.0.0.1, started and stopped by the test.

    ``workdir`` (e.g. pytest's ``tmp_path``) is kept; without it a temporary directory is made
    and removed by ``close()``. The port is picked on the first ``start()`` and kept by
    ``restart()``. Use as a context manager (``with SnmpAgent() as agent:``) or call
    ``start()`` and ``close()`` in a ``try``/``finally``.
    """

    def __init__(
        self,
        *,
        workdir: Path | None = None,
        sys_name: str = "alertd-test-agent",
        sys_location: str = "alertd test bench",
        sys_contact: str = "alertd-tests@localhost",
        v3_user: str = "alertd",
        auth_proto: str | None = None,
        priv_proto: str | None = None,
        modules: Sequence[str] = DEFAULT_MODULES,
        extra_conf: str = "",
        start_timeout: float = _START_TIMEOUT_S,
    ) -> None:
        if auth_proto is not None and auth_proto not in AUTH_PROTOCOLS:
            raise ValueError(f"auth_proto {auth_proto!r} not one of {AUTH_PROTOCOLS}")
        if priv_proto is not None and priv_proto not in PRIV_PROTOCOLS:
            raise ValueError(f"priv_proto {priv_proto!r} not one of {PRIV_PROTOCOLS}")
        self._own_dir = workdir is None
        self.workdir = (
            Path(tempfile.mkdtemp(prefix="alertd-snmpd-")) if workdir is None else workdir
        )
        self.conf_dir = self.workdir / "conf"
        self.persist_dir = self.workdir / "persist"
        self.client_dir = self.workdir / "client"
        self.conf_path = self.conf_dir / "snmpd.conf"
        self.log_path = self.workdir / "snmpd.log"
        self.pid_path = self.workdir / "snmpd.pid"
        for d in (self.conf_dir, self.persist_dir, self.client_dir / "persist"):
            d.mkdir(parents=True, exist_ok=True)

        self.sys_name = sys_name
        self.sys_location = sys_location
        self.sys_contact = sys_contact
        self.community = "c" + secrets.token_hex(8)
        self.v3_user = v3_user
        self.v3_auth_key = _secret()
        self.v3_priv_key = _secret()
        self._auth_choices = (auth_proto,) if auth_proto else _AUTO_AUTH
        self._priv_choices = (priv_proto,) if priv_proto else _AUTO_PRIV
        self.v3_auth_proto = self._auth_choices[0]
        self.v3_priv_proto = self._priv_choices[0]
        self.modules = tuple(modules)
        self.extra_conf = extra_conf
        self.start_timeout = start_timeout

        self.snmpd = find_tool("snmpd")
        self.snmpget = find_tool("snmpget")
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._paused = False
        self._log_offset = 0
        _LIVE.add(self)

    # -- what tests read ---------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) the agent listens on (UDP)."""
        if self.port is None:
            raise SnmpAgentError("agent not started yet: no port")
        return (HOST, self.port)

    @property
    def target(self) -> str:
        """The agent as the net-snmp CLI spells it: ``udp:127.0.0.1:PORT``."""
        host, port = self.address
        return f"udp:{host}:{port}"

    @property
    def v3(self) -> V3User:
        return V3User(
            self.v3_user, self.v3_auth_proto, self.v3_auth_key, self.v3_priv_proto, self.v3_priv_key
        )

    @property
    def pid(self) -> int | None:
        """Pid of the running snmpd, None when stopped."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    @property
    def paused(self) -> bool:
        return self._paused

    def log_text(self) -> str:
        """Everything snmpd logged (its -Lf file, which also receives its stdout/stderr)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    # -- the CLI tools -----------------------------------------------------------------------

    def client_env(self) -> dict[str, str]:
        """Environment for net-snmp CLI tools: no MIBs, no user/system snmp.conf, own state dir."""
        env = dict(os.environ)
        env.pop("SNMP_PERSISTENT_FILE", None)
        env.update(
            MIBS="",
            SNMPCONFPATH=str(self.client_dir),
            SNMP_PERSISTENT_DIR=str(self.client_dir / "persist"),
        )
        return env

    def v2c_args(self, community: str | None = None) -> list[str]:
        return ["-v2c", "-c", self.community if community is None else community]

    def v3_args(self, *, auth_key: str | None = None, priv_key: str | None = None) -> list[str]:
        return self.v3.cli_args(auth_key=auth_key, priv_key=priv_key)

    def cli(self, tool: str, *args: str, timeout: float = 15.0) -> subprocess.CompletedProcess[str]:
        """Run a net-snmp CLI tool (``snmpget``, ``snmpbulkwalk``, ...) with ``client_env()``.

        The target is not added: pass ``agent.target`` among ``args``.
        """
        path = find_tool(tool)
        if path is None:
            raise SnmpAgentError(f"{tool} not installed (apt-get install snmp)")
        return subprocess.run(
            [path, *args],
            env=self.client_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def get(
        self,
        *oids: str,
        v3: bool = False,
        timeout: float = 1.0,
        retries: int = 0,
        extra: Sequence[str] = (),
    ) -> subprocess.CompletedProcess[str]:
        """``snmpget`` (numeric OIDs out, ``-On``) of ``oids``; v2c unless ``v3``."""
        auth = self.v3_args() if v3 else self.v2c_args()
        return self.cli(
            "snmpget",
            *auth,
            "-On",
            "-t",
            str(timeout),
            "-r",
            str(retries),
            *extra,
            self.target,
            *oids,
            timeout=timeout * (retries + 1) + 10,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def render_conf(self) -> str:
        """The snmpd.conf for this agent's port, community and v3 user."""
        if self.port is None:
            raise SnmpAgentError("no port yet")
        lines = [
            "# generated by tests/snmp_agent.py -- do not edit",
            f"agentAddress udp:{HOST}:{self.port}",
            "master no",
            "dontLogTCPWrappersConnects yes",
            "view all included .1",
            f"rocommunity {self.community} {HOST} -V all",
            f"createUser {self.v3_user} {self.v3_auth_proto} {self.v3_auth_key}"
            f" {self.v3_priv_proto} {self.v3_priv_key}",
            f"rouser {self.v3_user} authpriv -V all",
            f"sysName {self.sys_name}",
            f"sysLocation {self.sys_location}",
            f"sysContact {self.sys_contact}",
            "sysServices 72",
        ]
        if self.extra_conf:
            lines.append(self.extra_conf.rstrip("\n"))
        return "\n".join(lines) + "\n"

    def command(self) -> list[str]:
        """The snmpd command line (environment: ``agent_env()``)."""
        if self.snmpd is None:
            raise SnmpAgentError("snmpd not installed (apt-get install snmpd snmp)")
        return [
            self.snmpd,
            "-f",
            "-A",
            "-Lf",
            str(self.log_path),
            "-p",
            str(self.pid_path),
            "-I",
            ",".join(self.modules),
        ]

    def agent_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("SNMP_PERSISTENT_FILE", None)
        env.update(
            MIBS="",
            SNMPCONFPATH=f"{self.conf_dir}{os.pathsep}{self.persist_dir}",
            SNMP_PERSISTENT_DIR=str(self.persist_dir),
        )
        return env

    def start(self) -> None:
        """Start snmpd and wait until it answers a v2c GET of sysUpTime.0.

        On the first start, a port taken between picking and binding is retried with another
        one. A v3 protocol this net-snmp does not know (only when none was asked for) falls
        back to SHA/AES. Raises ``SnmpAgentError`` with the log tail otherwise.
        """
        if self.running:
            raise SnmpAgentError(f"snmpd already running (pid {self.pid})")
        first = self.port is None
        for _attempt in range(3 if first else 1):
            if first:
                self.port = free_udp_port()
            try:
                self._start_once()
                return
            except _PortInUse:
                if not first:
                    raise SnmpAgentError(
                        f"port {self.port} was taken while snmpd was down\n{self.log_tail()}"
                    ) from None
        raise SnmpAgentError(f"no free port after 3 attempts\n{self.log_tail()}")

    def _start_once(self) -> None:
        while True:
            self.conf_path.write_text(self.render_conf())
            self._spawn()
            self._wait_ready()
            bad_proto = self._unknown_protocol()
            if bad_proto is None:
                return
            self.stop()
            if not self._fall_back(bad_proto):
                self._fail(f"snmpd rejected {bad_proto} in createUser")

    def _spawn(self) -> None:
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self.command(),
                env=self.agent_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.workdir,
            )
        self._paused = False

    def _this_run_log(self) -> str:
        return self.log_text()[self._log_offset :]

    def _wait_ready(self) -> None:
        if self.snmpget is None:
            self.stop()
            raise SnmpAgentError("snmpget not installed (apt-get install snmp)")
        deadline = time.monotonic() + self.start_timeout
        while True:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                rc = None if proc is None else proc.returncode
                self._proc = None
                if "Error opening specified endpoint" in self._this_run_log():
                    raise _PortInUse
                self._fail(f"snmpd exited with {rc} while starting")
            answer = self.get(SYS_UPTIME, timeout=0.3)
            if answer.returncode == 0 and "Timeticks" in answer.stdout:
                break
            if time.monotonic() > deadline:
                self.stop()
                self._fail(f"snmpd did not answer within {self.start_timeout:g} s")
        errors = re.findall(r".*: line \d+: (?:Error|Warning): .*", self._this_run_log())
        if errors and self._unknown_protocol() is None:
            self.stop()
            self._fail("snmpd did not accept its configuration: " + "; ".join(errors))

    def _unknown_protocol(self) -> str | None:
        match = re.search(r"Error: unknown (auth|priv)Protocol", self._this_run_log())
        if match is None:
            return None
        return self.v3_auth_proto if match.group(1) == "auth" else self.v3_priv_proto

    def _fall_back(self, rejected: str) -> bool:
        for attr, choices in (
            ("v3_auth_proto", self._auth_choices),
            ("v3_priv_proto", self._priv_choices),
        ):
            current = getattr(self, attr)
            if current == rejected and choices.index(current) + 1 < len(choices):
                setattr(self, attr, choices[choices.index(current) + 1])
                return True
        return False

    def _fail(self, why: str) -> NoReturn:
        raise SnmpAgentError(
            f"{why}\ncommand: {' '.join(self.command())}\nlog {self.log_path}:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """SIGTERM (after SIGCONT if paused), wait, SIGKILL if it hangs. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            if self._paused:
                proc.send_signal(signal.SIGCONT)  # a stopped process acts on SIGTERM only then
            try:
                proc.wait(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._paused = False

    def restart(self) -> None:
        """Stop and start again on the same port with the same conf (engineID kept, boots + 1)."""
        self.stop()
        self.start()

    def pause(self) -> None:
        """SIGSTOP: the agent stops answering but keeps its state (requests queue in its socket)."""
        if self._proc is None or self._proc.poll() is not None:
            raise SnmpAgentError("snmpd not running")
        self._proc.send_signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """SIGCONT: the agent answers again, first whatever queued while it was paused."""
        if self._proc is None or self._proc.poll() is not None:
            raise SnmpAgentError("snmpd not running")
        self._proc.send_signal(signal.SIGCONT)
        self._paused = False

    def close(self) -> None:
        """Stop and remove the work directory if this agent made it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> SnmpAgent:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SnmpAgent(port={self.port}, pid={self.pid}, workdir={str(self.workdir)!r})"


class _PortInUse(Exception):
    pass


@atexit.register
def _stop_leftovers() -> None:
    """Last resort when a test run is interrupted: no snmpd outlives the Python process."""
    for agent in list(_LIVE):
        with contextlib.suppress(Exception):
            agent.stop()


def require_net_snmp(*tools: str) -> None:
    """Skip the test unless snmpd/snmpget (and ``tools``, e.g. "snmptrap") are installed.

    With ``ALERTD_REQUIRE_PEERS=1`` (CI) a missing binary fails the test instead.
    """
    import pytest  # only the test-side entry points need pytest

    missing = [tool for tool in ("snmpd", "snmpget", *tools) if find_tool(tool) is None]
    if missing:
        reason = f"{' and '.join(missing)} not installed (apt-get install snmpd snmp)"
        if os.environ.get("ALERTD_REQUIRE_PEERS") == "1":
            pytest.fail(f"ALERTD_REQUIRE_PEERS=1 but {reason}", pytrace=False)
        pytest.skip(reason)


def agent_or_skip(**kwargs: Any) -> SnmpAgent:
    """A new, not yet started ``SnmpAgent`` (kwargs go to it) -- or skip the test if net-snmp
    is not installed; with ``ALERTD_REQUIRE_PEERS=1`` (CI) fail it instead.

    Start it with ``with agent_or_skip(...) as agent:`` or ``start()`` + ``close()`` in
    ``try``/``finally``: without ``workdir`` it owns a temp directory that ``close()`` removes.
    """
    require_net_snmp()
    return SnmpAgent(**kwargs)


# -- recorded walks ----------------------------------------------------------------------------
#
# File format (tests/data/snmp/*.walk): '#' lines are comments; every other line is one
# varbind "<oid> <type> <value>", split on the first two spaces. The OID is numeric without a
# leading dot. Types and values:
#   INTEGER, Counter32, Gauge32, Counter64, Timeticks   decimal (Timeticks in 1/100 s)
#   STRING       printable ASCII, no leading/trailing blank, taken literally (may be empty)
#   Hex-STRING   any other OCTET STRING, lowercase hex without separators (02fc00000001)
#   OID          numeric, no leading dot
#   IpAddress    dotted quad
#   Opaque-Float net-snmp's Opaque-wrapped float (UCD laLoadFloat), as snmpd printed it
# Values are the real ones at record time; nothing is rewritten (host-specific hrStorage rows
# are left out, see HOST_SPECIFIC_MOUNTS). The fields listed in
# VOLATILE_PREFIXES change between recordings: unit tests must not pin them (use normalise()
# or set the values they need).

WALK_DIR = Path(__file__).parent / "data" / "snmp"
LOCALHOST_WALK = WALK_DIR / "localhost-if-mib.walk"
LOCALHOST_SUBTREES: tuple[tuple[str, str], ...] = (
    ("1.3.6.1.2.1.1", "SNMPv2-MIB system"),
    ("1.3.6.1.2.1.2.2", "IF-MIB ifTable"),
    ("1.3.6.1.2.1.31.1.1", "IF-MIB ifXTable"),
    ("1.3.6.1.2.1.25.3.3.1.2", "HOST-RESOURCES-MIB hrProcessorLoad"),
    ("1.3.6.1.2.1.25.2.3", "HOST-RESOURCES-MIB hrStorageTable"),
    ("1.3.6.1.4.1.2021.10", "UCD-SNMP-MIB laTable"),
    ("1.3.6.1.4.1.2021.4", "UCD-SNMP-MIB memory"),
)
HR_PROCESSOR_LOAD = "1.3.6.1.2.1.25.3.3.1.2"

WALK_TYPES = frozenset(
    {
        "INTEGER",
        "Counter32",
        "Gauge32",
        "Counter64",
        "Timeticks",
        "STRING",
        "Hex-STRING",
        "OID",
        "IpAddress",
        "Opaque-Float",
    }
)
_INT_TYPES = frozenset({"INTEGER", "Counter32", "Gauge32", "Counter64", "Timeticks"})

# OID prefixes whose values move on their own (uptime, traffic counters, load, memory use).
VOLATILE_PREFIXES: tuple[str, ...] = (
    "1.3.6.1.2.1.1.3.",  # sysUpTime
    *(f"1.3.6.1.2.1.2.2.1.{col}." for col in range(9, 22)),  # ifLastChange .. ifOutQLen
    *(f"1.3.6.1.2.1.31.1.1.1.{col}." for col in (*range(2, 14), 19)),  # ifX counters
    "1.3.6.1.2.1.25.3.3.1.2.",  # hrProcessorLoad
    "1.3.6.1.2.1.25.2.3.1.5.",  # hrStorageSize (tmpfs, swap)
    "1.3.6.1.2.1.25.2.3.1.6.",  # hrStorageUsed
    "1.3.6.1.2.1.25.2.3.1.7.",  # hrStorageAllocationFailures
    "1.3.6.1.4.1.2021.10.1.3.",  # laLoad
    "1.3.6.1.4.1.2021.10.1.5.",  # laLoadInt
    "1.3.6.1.4.1.2021.10.1.6.",  # laLoadFloat
    *(f"1.3.6.1.4.1.2021.4.{col}." for col in range(3, 28)),  # memory sizes
)
_PLACEHOLDER = {
    "STRING": "0.00",
    "Hex-STRING": "",
    "OID": "0.0",
    "IpAddress": "0.0.0.0",
    "Opaque-Float": "0.0",
}

_LINE = re.compile(r"^\.(\d+(?:\.\d+)*) = (.*)$")
_NO_VALUE = ("No Such Object", "No Such Instance", "No more variables")

WalkRow = tuple[str, str, str]


def _octets_row(oid: str, data: bytes) -> WalkRow:
    printable = all(0x20 <= b < 0x7F for b in data)
    if printable and data == data.strip(b" "):
        return (oid, "STRING", data.decode("ascii"))
    return (oid, "Hex-STRING", data.hex())


def _parse_value(oid: str, text: str) -> WalkRow | None:
    if text.startswith(_NO_VALUE):
        return None
    if text == '""':
        return (oid, "STRING", "")
    kind, sep, value = text.partition(": ")
    if not sep:
        raise ValueError(f"unparsed snmpbulkwalk value for {oid}: {text!r}")
    if kind == "Hex-STRING":
        return _octets_row(oid, bytes.fromhex(value))
    if kind == "STRING":  # only without -Ox; kept for safety
        return _octets_row(oid, value.strip('"').encode())
    if kind == "Timeticks":
        ticks = re.match(r"\((\d+)\)", value)
        if ticks is None:
            raise ValueError(f"unparsed Timeticks for {oid}: {text!r}")
        return (oid, "Timeticks", ticks.group(1))
    if kind in ("INTEGER", "Counter32", "Gauge32", "Counter64"):
        return (oid, kind, str(int(value.split()[0])))
    if kind == "OID":
        return (oid, "OID", value.removeprefix("."))
    if kind == "IpAddress":
        return (oid, "IpAddress", value)
    if kind == "Opaque" and value.startswith("Float: "):
        return (oid, "Opaque-Float", value.removeprefix("Float: "))
    raise ValueError(f"snmpbulkwalk type not handled for {oid}: {text!r}")


def parse_walk_output(text: str) -> list[WalkRow]:
    """Rows from ``snmpbulkwalk -On -Ox`` output (hex strings wrap onto continuation lines)."""
    records: list[tuple[str, str]] = []
    for line in text.splitlines():
        match = _LINE.match(line)
        if match:
            records.append((match.group(1), match.group(2).rstrip()))
        elif line.strip() and records and records[-1][1].startswith("Hex-STRING: "):
            oid, value = records[-1]
            records[-1] = (oid, f"{value} {line.strip()}")
        elif line.strip():
            raise ValueError(f"unexpected snmpbulkwalk line: {line!r}")
    rows = [_parse_value(oid, value) for oid, value in records]
    return [row for row in rows if row is not None]


def walk(agent: SnmpAgent, subtree: str, *, max_repetitions: int = 25) -> list[WalkRow]:
    """GETBULK-walk one subtree over v2c with ``snmpbulkwalk``; empty if the agent has none."""
    result = agent.cli(
        "snmpbulkwalk",
        *agent.v2c_args(),
        "-On",
        "-Ox",
        "-t",
        "2",
        "-r",
        "1",
        f"-Cr{max_repetitions}",
        agent.target,
        "." + subtree.lstrip("."),
    )
    if result.returncode != 0:
        raise SnmpAgentError(f"snmpbulkwalk {subtree} failed: {result.stderr.strip()}")
    return parse_walk_output(result.stdout)


HR_STORAGE_ENTRY = "1.3.6.1.2.1.25.2.3.1"
# Mounts that belong to the recording machine, not to anything alertd looks at (container and
# sandbox plumbing, cgroupfs): left out of recordings so a refresh on another machine doesn't
# churn the file. hrStorage rows of "/" and "/dev/shm" and the memory rows are kept.
HOST_SPECIFIC_MOUNTS = re.compile(r"^/(?:mnt|sys|run|proc|snap)(?:/|$)")


def drop_host_specific_storage(rows: list[WalkRow]) -> list[WalkRow]:
    """Rows without the hrStorageTable entries whose hrStorageDescr matches HOST_SPECIFIC_MOUNTS."""
    descr = HR_STORAGE_ENTRY + ".3."
    dropped = {
        oid.removeprefix(descr)
        for oid, kind, value in rows
        if oid.startswith(descr) and kind == "STRING" and HOST_SPECIFIC_MOUNTS.match(value)
    }
    return [
        row
        for row in rows
        if not (
            row[0].startswith(HR_STORAGE_ENTRY + ".")
            and row[0].removeprefix(HR_STORAGE_ENTRY + ".").split(".", 1)[1] in dropped
        )
    ]


def record_walk(
    agent: SnmpAgent,
    oids: Iterable[str | tuple[str, str]],
    path: Path,
    *,
    note: str = "",
    keep: Callable[[list[WalkRow]], list[WalkRow]] = drop_host_specific_storage,
) -> list[WalkRow]:
    """Walk each subtree (an OID, or (OID, label)) from ``agent``, filter with ``keep``, write
    ``path`` and return the rows written.

    Raises if a subtree comes back empty, so a refresh can't silently lose a table.
    """
    subtrees = [(o, "") if isinstance(o, str) else o for o in oids]
    rows: list[WalkRow] = []
    for oid, label in subtrees:
        got = walk(agent, oid)
        if not got:
            raise SnmpAgentError(f"subtree {oid} {label} is empty on {agent.target}")
        rows.extend(got)
    rows = keep(rows)
    version = agent.cli("snmpget", "-V").stderr.strip() or "net-snmp"
    header = [
        "# SNMP walk recorded from a real net-snmp snmpd (tests/snmp_agent.py).",
        "# Refresh: .venv/bin/python -m tests.snmp_agent --record",
        f"# Recorded {dt.datetime.now(dt.UTC):%Y-%m-%d} with {version}, snmpbulkwalk -v2c -On -Ox.",
        "# Format: '<oid> <type> <value>'; see the comment above WALK_DIR in tests/snmp_agent.py.",
        "# Values are real; those under VOLATILE_PREFIXES (uptime, counters, load, memory)",
        "# change between recordings: don't pin them in tests. hrStorage rows of host-specific",
        "# mounts (HOST_SPECIFIC_MOUNTS) are left out; nothing else is filtered or rewritten.",
    ]
    if note:
        header.extend(f"# {line}" for line in note.splitlines())
    header.append("# Subtrees:")
    header.extend(f"#   {oid}  {label}".rstrip() for oid, label in subtrees)
    body = [f"{oid} {kind} {value}" if value else f"{oid} {kind}" for oid, kind, value in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([*header, *body]) + "\n")
    return rows


def load_walk(path: Path) -> list[WalkRow]:
    """(oid, type, value) rows of a recorded walk, in file order; validates every line."""
    rows: list[WalkRow] = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        if not raw or raw.startswith("#"):
            continue
        parts = raw.split(" ", 2)
        if len(parts) < 2 or parts[1] not in WALK_TYPES:
            raise ValueError(f"{path}:{number}: not '<oid> <type> <value>': {raw!r}")
        oid, kind = parts[0], parts[1]
        value = parts[2] if len(parts) == 3 else ""
        if not re.fullmatch(r"\d+(?:\.\d+)+", oid):
            raise ValueError(f"{path}:{number}: bad OID {oid!r}")
        try:
            walk_value(kind, value)
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: bad {kind} value {value!r}") from exc
        rows.append((oid, kind, value))
    return rows


def walk_value(kind: str, value: str) -> int | float | bytes | str:
    """Python value of one row: int, bytes (OCTET STRING), float (Opaque-Float), str (OID/IP)."""
    if kind in _INT_TYPES:
        return int(value)
    if kind == "STRING":
        return value.encode("ascii")
    if kind == "Hex-STRING":
        return bytes.fromhex(value)
    if kind == "Opaque-Float":
        return float(value)
    if kind == "OID":
        if not re.fullmatch(r"\d+(?:\.\d+)+", value):
            raise ValueError(f"bad OID {value!r}")
        return value
    if kind == "IpAddress":
        socket.inet_aton(value)  # raises OSError (a ValueError-alike) on junk
        return value
    raise ValueError(f"unknown walk type {kind!r}")


def is_volatile(oid: str) -> bool:
    return (oid + ".").startswith(VOLATILE_PREFIXES)


def normalise(rows: Iterable[WalkRow]) -> list[WalkRow]:
    """Rows with volatile values replaced by fixed ones of the same type (0, "0.00", ...)."""
    return [
        (oid, kind, _PLACEHOLDER.get(kind, "0") if is_volatile(oid) else value)
        for oid, kind, value in rows
    ]


def wait_for_subtree(agent: SnmpAgent, subtree: str, *, timeout: float) -> list[WalkRow]:
    """Poll a subtree until it has rows (hrProcessorLoad needs ~1 min of CPU history)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = walk(agent, subtree)
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.snmp_agent",
        description="Run the test snmpd, or refresh the recorded walks in tests/data/snmp/.",
    )
    parser.add_argument("--record", action="store_true", help="refresh the recorded walks")
    parser.add_argument("--out", type=Path, default=LOCALHOST_WALK, help="walk file to write")
    parser.add_argument(
        "--serve", action="store_true", help="start an agent, print how to reach it, wait"
    )
    args = parser.parse_args(argv)
    if not (args.record or args.serve):
        parser.error("pass --record or --serve")

    with SnmpAgent() as agent:
        print(f"snmpd pid {agent.pid} on {agent.target}, community {agent.community}")
        if args.serve:
            print("v3:", " ".join(agent.v3_args()))
            print("CLI env: MIBS= SNMPCONFPATH=... (see client_env()); Ctrl-C to stop")
            with contextlib.suppress(KeyboardInterrupt):
                while agent.running:
                    time.sleep(1)
            return 0
        # net-snmp serves hrProcessorLoad only once it has a minute of CPU samples (taken
        # every 5 s); before that the column is absent.
        print("waiting for hrProcessorLoad (snmpd needs ~60 s of CPU history) ...", flush=True)
        if not wait_for_subtree(agent, HR_PROCESSOR_LOAD, timeout=90):
            print("hrProcessorLoad never appeared:\n" + agent.log_tail())
            return 1
        rows = record_walk(
            agent,
            LOCALHOST_SUBTREES,
            args.out,
            note=f"Agent: sysName {agent.sys_name!r}, sysLocation {agent.sys_location!r}.",
        )
        print(f"wrote {len(rows)} varbinds to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
