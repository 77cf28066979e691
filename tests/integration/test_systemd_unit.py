"""The systemd unit as `make install` lays it down: verified, audited, and its sandbox checked.

``systemd-analyze verify`` checks that every Exec*= binary exists and is executable, so the unit
is taken from a staged install -- ``make install DESTDIR=<tmp>/root PREFIX=<tmp>/opt
INSTALL_VENV=no``, which rewrites ``/opt/alertd`` to PREFIX exactly as it would for a real
PREFIX -- with ``<tmp>/opt/bin/alertd`` a symlink to this checkout's ``alertd`` entry point.
Everything else in the file is byte-for-byte the repository's. ``--root=`` is no alternative:
it wants a whole OS tree (sysinit.target, /bin/kill) under the root.

No systemd runs here (PID 1 is not systemd), but ``systemd-analyze`` (Debian package
``systemd``) works offline. Without it these tests skip -- or fail with
``ALERTD_REQUIRE_PEERS=1``, as CI runs them.

``MemoryDenyWriteExecute=yes`` is checked with the kernel's own W^X switch (``PR_SET_MDWE``,
Linux 6.3+), which refuses the same write+execute mappings as systemd's seccomp filter.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "alertd.service"
DROPIN = REPO / "systemd" / "alertd.service.d" / "traps-on-162.conf.example"
MAX_EXPOSURE = 2.0
_EXPOSURE = re.compile(r"Overall exposure level for alertd\.service: (\d+\.\d+)")
_ENV = {**os.environ, "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": "cat", "LC_ALL": "C.UTF-8"}


def require(tool: str, package: str) -> str:
    """Path of ``tool``; skip if missing, or fail when ``ALERTD_REQUIRE_PEERS=1`` (CI)."""
    path = shutil.which(tool, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/bin"]))
    if path is None:
        reason = f"{tool} not installed (apt-get install {package})"
        if os.environ.get("ALERTD_REQUIRE_PEERS") == "1":
            pytest.fail(f"ALERTD_REQUIRE_PEERS=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    return path


def analyze(*args: str | Path) -> subprocess.CompletedProcess[str]:
    tool = require("systemd-analyze", "systemd")
    return subprocess.run(
        [tool, *map(str, args)], capture_output=True, text=True, env=_ENV, timeout=60
    )


def exposure(unit: Path) -> tuple[float, str]:
    """The overall exposure ``systemd-analyze security --offline=true`` gives ``unit``."""
    result = analyze("security", "--offline=true", unit)
    match = _EXPOSURE.search(result.stdout)
    assert match, f"no 'Overall exposure level' line:\n{result.stdout}\n{result.stderr}"
    return float(match.group(1)), result.stdout


@dataclass(frozen=True)
class Staged:
    destdir: Path
    prefix: Path

    @property
    def unit(self) -> Path:
        return self.destdir / "etc/systemd/system/alertd.service"

    @property
    def confdir(self) -> Path:
        return self.destdir / "etc/alertd"


def make_install(destdir: Path, prefix: Path) -> subprocess.CompletedProcess[str]:
    make = require("make", "make")
    args = ["install", f"DESTDIR={destdir}", f"PREFIX={prefix}", "INSTALL_VENV=no"]
    return subprocess.run(
        [make, "-s", "-C", str(REPO), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


@pytest.fixture
def staged(tmp_path: Path) -> Staged:
    s = Staged(tmp_path / "root", tmp_path / "opt")
    make_install(s.destdir, s.prefix)
    (s.prefix / "bin").mkdir(parents=True)
    entry_point = Path(sys.executable).with_name("alertd")
    assert entry_point.exists(), f"{entry_point}: run `pip install -e .` first"
    (s.prefix / "bin" / "alertd").symlink_to(entry_point)
    return s


def unit_settings(text: str) -> dict[str, list[str]]:
    """KEY -> values in file order (a key may repeat), comments and sections dropped."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


# -- make install --------------------------------------------------------------------------------


def test_make_install_lays_down_unit_and_config_and_keeps_local_edits(staged: Staged) -> None:
    unit = staged.unit.read_text()
    # the only change from the repository's unit is the prefix
    assert unit == UNIT.read_text().replace("/opt/alertd", str(staged.prefix))
    assert f"ExecStart={staged.prefix}/bin/alertd run " in unit
    for name in ("thresholds.yaml", "channels.yaml", "rules/processes.yaml"):
        assert (staged.confdir / name).read_bytes() == (REPO / name).read_bytes()
        assert (staged.confdir / name).stat().st_mode & 0o777 == 0o644  # the dynamic user reads
    example = staged.destdir / str(staged.prefix).lstrip("/") / "share/alertd/systemd"
    assert (example / DROPIN.name).read_bytes() == DROPIN.read_bytes()

    edited = staged.confdir / "thresholds.yaml"
    edited.write_text("# a site's own thresholds\n")
    again = make_install(staged.destdir, staged.prefix)
    assert edited.read_text() == "# a site's own thresholds\n"
    assert "kept /etc/alertd/thresholds.yaml" in again.stdout


# -- systemd-analyze -----------------------------------------------------------------------------


def test_installed_unit_verifies_without_a_word(staged: Staged) -> None:
    result = analyze("verify", staged.unit)
    # unknown keys and bad values are only warnings (exit 0): any output is a finding
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_verify_reports_a_missing_binary(staged: Staged) -> None:
    """The check above is real: without the entry point, verify fails on ExecStart."""
    (staged.prefix / "bin" / "alertd").unlink()
    result = analyze("verify", staged.unit)
    assert result.returncode != 0
    assert f"{staged.prefix}/bin/alertd is not executable" in result.stderr


def test_exposure_is_at_most_2_0(staged: Staged) -> None:
    score, report = exposure(staged.unit)
    assert score <= MAX_EXPOSURE, report
    # the same bound as `make systemd-check` (--threshold is in tenths)
    assert analyze("security", "--offline=true", "--threshold=20", staged.unit).returncode == 0


def test_trap_port_dropin_applies_and_stays_under_the_bound(staged: Staged) -> None:
    base, _ = exposure(staged.unit)
    dropins = staged.unit.with_name("alertd.service.d")
    dropins.mkdir()
    shutil.copy(DROPIN, dropins / "traps-on-162.conf")
    result = analyze("verify", staged.unit)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    score, report = exposure(staged.unit)
    assert "✗ CapabilityBoundingSet=~CAP_NET_(BIND_SERVICE" in report  # the drop-in was read
    assert "✗ PrivateUsers=" in report
    assert base < score <= MAX_EXPOSURE, report


# -- what the host collector needs from the sandbox ---------------------------------------------


def test_sandbox_leaves_host_collector_its_view() -> None:
    """Settings tried and rejected (see the unit's comments); here so they are not re-added.

    ProtectProc=invisible hides other users' processes (host_process_running would say every
    watched process is down); ProcSubset=pid hides /proc/stat, /proc/meminfo, /proc/net/dev;
    ProtectHome=yes overmounts /home, so statvfs reports the overlay, not the filesystem.
    """
    settings = unit_settings(UNIT.read_text())
    assert settings["Type"] == ["notify"]
    assert settings["NotifyAccess"] == ["main"]
    assert settings["WatchdogSec"] == ["30s"]
    assert settings.get("ProtectProc", ["default"]) == ["default"]
    assert settings.get("ProcSubset", ["all"]) == ["all"]
    assert settings["ProtectHome"] == ["read-only"]
    assert settings["MemoryDenyWriteExecute"] == ["yes"]


# -- MemoryDenyWriteExecute=yes with the real dependency set ---------------------------------

PR_SET_MDWE, PR_GET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 66, 1

# Sets W^X for this process and its children, then runs the rest of argv (exec keeps it).
_UNDER_MDWE = f"""
import ctypes, os, sys
if ctypes.CDLL(None, use_errno=True).prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0):
    sys.exit(f"PR_SET_MDWE: errno {{ctypes.get_errno()}}")
os.execv(sys.argv[1], sys.argv[1:])
"""

# What the daemon does at run time, minus the network: every dependency imported, psutil
# reads, pysnmp's privacy ciphers (cryptography), a template render.
_WORKLOAD = """
import os
import alertd.app, alertd.collect.snmp.v3, alertd.collect.snmp.traps
from alertd.clock import SystemClock
from alertd.collect.host import HostCollector
from alertd.model import make_labels
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
import jinja2
host = HostCollector(labels=make_labels({"instance": "t"}), clock=SystemClock())
host.collect(); samples = host.collect()
assert any(s.metric == "host_memory_used_percent" for s in samples), samples
enc = Cipher(algorithms.AES(os.urandom(16)), modes.CBC(os.urandom(16))).encryptor()
assert len(enc.update(b"x" * 16) + enc.finalize()) == 16
assert jinja2.Environment(autoescape=True).from_string("{{ a }}").render(a="<b>") == "&lt;b&gt;"
print("workload ok")
"""

# Old-style cffi callbacks need write+execute memory: the control that W^X is really on.
_CFFI_CALLBACK = """
import cffi
ffi = cffi.FFI()
ffi.callback("int(void)", lambda: 1)
"""


def _mdwe_supported() -> bool:
    # PR_GET_MDWE fails with EINVAL before Linux 6.3
    return bool(ctypes.CDLL(None).prctl(PR_GET_MDWE, 0, 0, 0, 0) >= 0)


def under_mdwe(*argv: str) -> subprocess.CompletedProcess[str]:
    if not _mdwe_supported():
        pytest.skip("kernel without PR_SET_MDWE (Linux >= 6.3)")
    return subprocess.run(
        [sys.executable, "-c", _UNDER_MDWE, sys.executable, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


def test_dependency_set_runs_with_write_xor_execute() -> None:
    control = under_mdwe("-c", _CFFI_CALLBACK)
    assert control.returncode != 0
    assert "Cannot allocate write+execute memory" in control.stderr

    check = under_mdwe("-m", "alertd", "check-config", str(REPO))
    assert check.returncode == 0, check.stdout + check.stderr
    work = under_mdwe("-c", _WORKLOAD)
    assert (work.returncode, work.stdout.strip()) == (0, "workload ok"), work.stderr
