"""End to end: with ``tls:`` in server.yaml the daemon serves HTTPS only, and a broken key
stops it at start with a message instead of serving plain HTTP."""

from __future__ import annotations

import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests import certs
from tests.conftest import free_port
from tests.e2e.conftest import wait_for

pytestmark = pytest.mark.e2e


def self_signed(directory: Path) -> Path:
    """A certificate for 127.0.0.1 as tls.pem and tls.key in ``directory``; its path."""
    return certs.self_signed(directory, "127.0.0.1", stem="tls").cert


def start(cfg: Path, state: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    args = ["--config-dir", str(cfg), "--state-dir", str(state), "--listen", f"127.0.0.1:{port}"]
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "alertd", "run", *args], stdout=out, stderr=subprocess.STDOUT
        )


def test_https_only_with_a_verified_certificate(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "thresholds.yaml").write_text("rules: []\n")
    (cfg / "channels.yaml").write_text("channels: {log: {type: log}}\n")
    cert = self_signed(cfg)
    (cfg / "server.yaml").write_text("tls: {cert_file: tls.pem, key_file: tls.key}\n")
    port = free_port()
    proc = start(cfg, tmp_path / "state", port, tmp_path / "daemon.log")
    trusted = ssl.create_default_context(cafile=str(cert))

    def https_ready() -> bool:
        try:
            url = f"https://127.0.0.1:{port}/-/ready"
            with urllib.request.urlopen(url, context=trusted, timeout=5) as r:
                return bool(r.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    try:
        wait_for("the daemon over HTTPS", lambda: https_ready() or proc.poll() is not None)
        assert proc.poll() is None, (tmp_path / "daemon.log").read_text()
        with pytest.raises((urllib.error.URLError, ConnectionError)):  # no plain HTTP
            urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=5)
        with pytest.raises(urllib.error.URLError):  # and the certificate is what is checked
            urllib.request.urlopen(
                f"https://127.0.0.1:{port}/-/ready", context=ssl.create_default_context()
            )
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0


def test_a_key_that_does_not_match_stops_the_daemon_at_start(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "thresholds.yaml").write_text("rules: []\n")
    (cfg / "channels.yaml").write_text("channels: {log: {type: log}}\n")
    self_signed(cfg)
    first_key = (cfg / "tls.key").read_bytes()
    self_signed(cfg)  # a new certificate; put the old key back: they no longer match
    (cfg / "tls.key").write_bytes(first_key)
    (cfg / "server.yaml").write_text("tls: {cert_file: tls.pem, key_file: tls.key}\n")
    log = tmp_path / "daemon.log"
    proc = start(cfg, tmp_path / "state", free_port(), log)
    assert proc.wait(timeout=60) == 1
    assert "tls: cannot use the certificate or key" in log.read_text()
