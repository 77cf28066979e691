"""server.yaml: every file setting must name a file; relative paths are the config dir's."""

from __future__ import annotations

from pathlib import Path

import pytest

from alertd.config.load import load_config
from alertd.config.server import ServerFile, reload_warnings
from alertd.errors import ConfigError


def test_missing_files_are_named_with_their_key(tmp_path: Path) -> None:
    (tmp_path / "thresholds.yaml").write_text("rules: []\n")
    (tmp_path / "server.yaml").write_text(
        "link_secret_file: links.key\ntls: {cert_file: tls.crt, key_file: tls.key}\n"
    )
    (tmp_path / "tls.crt").write_text("x")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    text = str(caught.value)
    assert "server.yaml:1:19: link_secret_file: cannot read links.key: no such file" in text
    assert "server.yaml:2:37: tls.key_file: cannot read tls.key: no such file" in text
    assert "cert_file" not in text


def test_relative_files_resolve_against_the_config_dir(tmp_path: Path) -> None:
    (tmp_path / "thresholds.yaml").write_text("rules: []\n")
    (tmp_path / "channels.yaml").write_text("channels: {log: {type: log}}\n")
    for name in ("links.key", "tls.crt", "tls.key"):
        (tmp_path / name).write_text("x" * 16 + "\n")
    (tmp_path / "server.yaml").write_text(
        "link_secret_file: links.key\ntls: {cert_file: tls.crt, key_file: tls.key}\n"
    )
    server = load_config(tmp_path).server
    assert server.link_secret_file == tmp_path / "links.key"
    assert server.tls is not None
    assert server.tls.key_file == tmp_path / "tls.key"
    assert server.read_link_secret() == b"x" * 16


def test_a_reload_that_opens_the_api_or_turns_links_off_is_warned_of() -> None:
    """Admin user test: a truncated server.yaml opened the API without a word."""
    guarded = ServerFile.model_validate(
        {
            "public_url": "https://alertd.example",
            "link_secret": "k" * 32,
            "tokens": {"ops": {"sha256": "0" * 64, "scopes": ["admin"]}},
        }
    )
    warnings = reload_warnings(guarded, ServerFile())
    assert [w.split(":")[0] for w in warnings] == [
        "server.yaml has no API tokens any more",
        "acknowledge links are off now (no public_url or link secret)",
    ]
    assert reload_warnings(guarded, guarded) == []
    assert reload_warnings(ServerFile(), guarded) == []  # guarding more is no surprise
