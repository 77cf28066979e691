"""Loading good configs: the shipped example, ``${VAR}`` substitution, durations, merge keys."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

import pytest

from alertd.cli import main
from alertd.config.load import DEFAULT_EVALUATION_INTERVAL, Config, load_config
from alertd.config.types import format_duration, parse_duration
from alertd.errors import ConfigError
from alertd.notify.email.config import EmailChannelConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
BASE = Path(__file__).parent.parent / "data" / "config" / "base"


def make_config(tmp_path: Path, files: Mapping[str, str]) -> Path:
    """Copy the valid base config to ``tmp_path`` and replace ``files`` in it."""
    directory = tmp_path / "config"
    shutil.copytree(BASE, directory)
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return directory


def email(config: Config, name: str = "ops-mail") -> EmailChannelConfig:
    channel = config.channels.channels[name]
    assert isinstance(channel, EmailChannelConfig)
    return channel


# --- the example config at the repo root ------------------------------------------------------


def test_repo_config_loads() -> None:
    config = load_config(REPO_ROOT, env={})
    assert config.files[0] == "thresholds.yaml"
    assert "channels.yaml" in config.files
    assert any(f.startswith("rules/") for f in config.files)
    assert any(f.startswith("collectors/") for f in config.files)
    assert config.rules
    assert config.hosts
    assert config.snmp == ()
    assert sorted(config.profiles) == ["host-resources", "if-mib", "system", "ucd"]
    assert all(f"collectors/profiles/{name}.yaml" in config.files for name in config.profiles)
    assert config.evaluation_interval == 15.0
    # No SMTP host in the environment: the mail channel is kept but not configured.
    assert email(config).configured is False


def test_repo_config_rules_know_their_files() -> None:
    config = load_config(REPO_ROOT, env={})
    files = {src.file for src in config.rules}
    assert "thresholds.yaml" in files
    assert files <= set(config.files)
    names = [src.rule.rule_name for src in config.rules]
    assert len(names) == len(set(names))


def test_repo_config_with_smtp_host_is_configured() -> None:
    config = load_config(REPO_ROOT, env={"ALERTD_SMTP_HOST": "smtp.example.net"})
    assert email(config).host == "smtp.example.net"
    assert email(config).configured is True


def test_check_config_on_repo_config(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ALERTD_SMTP_HOST", raising=False)
    assert main(["check-config", str(REPO_ROOT)]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("config OK: ")
    assert ", 1 host targets, 0 SNMP targets, 4 SNMP profiles, 2 channels, " in lines[0]
    assert err == ""


def test_summary_counts(tmp_path: Path) -> None:
    config = load_config(BASE, env={})
    assert config.summary() == (
        "config OK: 4 files, 3 rules, 1 host targets, 0 SNMP targets, 0 SNMP profiles, "
        "2 channels, 1 teams, 2 routes"
    )
    assert config.files == (
        "thresholds.yaml",
        "rules/network.yaml",
        "collectors/local.yaml",
        "channels.yaml",
    )
    assert [src.file for src in config.rules] == [
        "thresholds.yaml",
        "thresholds.yaml",
        "rules/network.yaml",
    ]


def test_summary_counts_snmp_targets_and_profiles(tmp_path: Path) -> None:
    collectors = (
        (BASE / "collectors" / "local.yaml").read_text()
        + "snmp:\n  - address: 192.0.2.1\n    community: ${SNMP_COMMUNITY}\n"
        + "    profiles: [system]\n  - address: 192.0.2.2\n    community: public\n"
        + "    profiles: [system]\n"
    )
    directory = make_config(
        tmp_path,
        {
            "collectors/local.yaml": collectors,
            "collectors/profiles/system.yaml": (
                REPO_ROOT / "collectors" / "profiles" / "system.yaml"
            ).read_text(),
        },
    )
    config = load_config(directory, env={"SNMP_COMMUNITY": "s3cret"})
    assert config.summary() == (
        "config OK: 5 files, 3 rules, 1 host targets, 2 SNMP targets, 1 SNMP profiles, "
        "2 channels, 1 teams, 2 routes"
    )
    assert config.files[2:4] == ("collectors/local.yaml", "collectors/profiles/system.yaml")
    assert [t.address for t in config.snmp] == ["192.0.2.1", "192.0.2.2"]
    assert list(config.profiles) == ["system"]


def test_channels_yaml_is_required(tmp_path: Path) -> None:
    """Without it nobody is told of an incident: a config that says so is refused (user
    test: a channels.yaml renamed to .yml loaded, and every page went to nobody)."""
    directory = make_config(tmp_path, {})
    (directory / "channels.yaml").rename(directory / "channels.yml")
    with pytest.raises(ConfigError) as info:
        load_config(directory, env={})
    assert [str(p) for p in info.value.problems] == [
        "channels.yaml: file not found: it says who is told about incidents, and without it "
        "nobody would be"
    ]


def test_evaluation_interval_defaults(tmp_path: Path) -> None:
    directory = make_config(tmp_path, {"thresholds.yaml": "rules: []\n"})
    assert load_config(directory, env={}).evaluation_interval == DEFAULT_EVALUATION_INTERVAL


# --- ${VAR} substitution -------------------------------------------------------------------------

CHANNELS = (
    "channels:\n"
    "  log: {{type: log}}\n"
    "  ops-mail:\n"
    "    type: email\n"
    "    host: {host}\n"
    "    port: {port}\n"
    "    from: alertd@example.com\n"
    "    subject_prefix: {prefix}\n"
)


def load_channels(tmp_path: Path, env: Mapping[str, str], **fields: str) -> EmailChannelConfig:
    values = {"host": "smtp.example.com", "port": "587", "prefix": "''"} | fields
    directory = make_config(tmp_path, {"channels.yaml": CHANNELS.format(**values)})
    return email(load_config(directory, env=env))


@pytest.mark.parametrize(
    ("env", "host"),
    [
        ({}, "fallback.example.com"),
        ({"SMTP_HOST": "mail.example.org"}, "mail.example.org"),
        ({"OTHER": "x"}, "fallback.example.com"),
    ],
)
def test_variable_with_default(tmp_path: Path, env: dict[str, str], host: str) -> None:
    channel = load_channels(tmp_path, env, host="${SMTP_HOST:-fallback.example.com}")
    assert channel.host == host


def test_variable_with_empty_default(tmp_path: Path) -> None:
    channel = load_channels(tmp_path, {}, host="'${SMTP_HOST:-}'")
    assert channel.host == ""
    assert channel.configured is False


def test_variable_substitutes_into_typed_field(tmp_path: Path) -> None:
    """Substitution happens on the YAML text of a scalar; pydantic then parses it."""
    channel = load_channels(tmp_path, {"SMTP_PORT": "2525"}, port="${SMTP_PORT:-587}")
    assert channel.port == 2525
    assert load_channels(tmp_path / "b", {}, port="${SMTP_PORT:-587}").port == 587


def test_several_variables_in_one_scalar(tmp_path: Path) -> None:
    env = {"SITE": "dc1", "ENV": "prod"}
    channel = load_channels(tmp_path, env, prefix="'[${ENV}/${SITE}/${ZONE:-z1}] '")
    assert channel.subject_prefix == "[prod/dc1/z1] "


def test_variable_value_is_not_substituted_again(tmp_path: Path) -> None:
    channel = load_channels(tmp_path, {"A": "${B}", "B": "no"}, prefix="'${A}'")
    assert channel.subject_prefix == "${B}"


def test_keys_and_comments_are_not_substituted(tmp_path: Path) -> None:
    text = "# host: ${NOT_SET}\nchannels:\n  log: {type: log}  # ${ALSO_NOT_SET}\n"
    config = load_config(make_config(tmp_path, {"channels.yaml": text}), env={})
    assert set(config.channels.channels) == {"log"}


def test_env_defaults_to_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALERTD_TEST_SMTP_HOST", "from-environ.example.com")
    directory = make_config(
        tmp_path,
        {"channels.yaml": CHANNELS.format(host="${ALERTD_TEST_SMTP_HOST}", port=25, prefix="x")},
    )
    assert email(load_config(directory)).host == "from-environ.example.com"


def test_variable_set_but_empty_uses_default(tmp_path: Path) -> None:
    """As in the shell and compose: ``:-`` uses the default when VAR is unset or empty."""
    channel = load_channels(tmp_path, {"SMTP_HOST": ""}, host="${SMTP_HOST:-fallback.example.com}")
    assert channel.host == "fallback.example.com"


def test_variable_set_but_empty_without_default_is_empty(tmp_path: Path) -> None:
    """Set-but-empty is not "unset": no problem, the value is just empty."""
    channel = load_channels(tmp_path, {"SMTP_HOST": ""}, host="'${SMTP_HOST}'")
    assert channel.host == ""
    assert channel.configured is False


# --- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),
        ("30s", 30.0),
        ("2m", 120.0),
        ("1h30m", 5400.0),
        ("1.5m", 90.0),
        ("500ms", 0.5),
        ("1d", 86400.0),
        ("1w", 604800.0),
        ("0", 0.0),
    ],
)
def test_durations_in_yaml(tmp_path: Path, text: str, seconds: float) -> None:
    thresholds = (
        f"evaluation_interval: {text}\n"
        f"rules:\n  - metric: cpu\n    above: {{major: 1}}\n    for: {text}\n"
    )
    if seconds == 0:
        thresholds = thresholds.replace(f"evaluation_interval: {text}\n", "")
    config = load_config(make_config(tmp_path, {"thresholds.yaml": thresholds}), env={})
    (cpu,) = [src.rule for src in config.rules if src.rule.metric == "cpu"]
    assert cpu.for_ == seconds
    if seconds:
        assert config.evaluation_interval == seconds


@pytest.mark.parametrize("value", [90, 90.0, " 2m ", "1h30m"])
def test_parse_duration_accepts(value: object) -> None:
    assert parse_duration(value) in {90.0, 120.0, 5400.0}


@pytest.mark.parametrize(
    ("env", "seconds"),
    [({}, 90.0), ({"EVAL_INTERVAL": "30"}, 30.0), ({"EVAL_INTERVAL": "2m"}, 120.0)],
)
def test_duration_from_variable(tmp_path: Path, env: dict[str, str], seconds: float) -> None:
    """Substitution always yields a string, so "90" (no unit) must read as 90 seconds."""
    thresholds = "evaluation_interval: ${EVAL_INTERVAL:-90}\nrules: []\n"
    directory = make_config(tmp_path, {"thresholds.yaml": thresholds})
    assert load_config(directory, env=env).evaluation_interval == seconds


@pytest.mark.parametrize(
    "value",
    [
        *("", "5 minutes", "2M", "m", "1h 30m", "30s5", "-1s", "1x", True, None, [1], -5),
        *("-5", "nan", "inf", "-inf", "1e400"),
    ],
)
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("seconds", "text"), [(7200.0, "2h"), (120.0, "2m"), (90.0, "90s"), (0.5, "0.5s"), (0, "0s")]
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


# --- YAML merge keys -----------------------------------------------------------------------------


def test_merge_key_in_rule(tmp_path: Path) -> None:
    # The schema has no place for a free-standing anchor, so the first rule carries it.
    text = (
        "rules:\n"
        "  - &common\n    metric: cpu\n    above: {major: 90}\n    for: 3m\n    clear: 1.5\n"
        "  - <<: *common\n    name: cpu_again\n"
    )
    config = load_config(make_config(tmp_path, {"thresholds.yaml": text}), env={})
    first, second = (src.rule for src in config.rules if src.rule.metric == "cpu")
    assert second.rule_name == "cpu_again"
    assert (second.for_, second.clear, second.above) == (first.for_, first.clear, first.above)


def test_merge_key_with_a_list_of_mappings(tmp_path: Path) -> None:
    text = (
        "rules:\n"
        "  - &a\n    metric: cpu\n    above: {major: 90}\n"
        "  - &b\n    metric: mem\n    above: {major: 80}\n    for: 1m\n"
        "  - <<: [*a, *b]\n    name: merged\n"
    )
    config = load_config(make_config(tmp_path, {"thresholds.yaml": text}), env={})
    merged = next(src.rule for src in config.rules if src.rule.rule_name == "merged")
    # The first mapping in the list wins a key both have; the others fill in the rest.
    assert merged.metric == "cpu"
    assert merged.above is not None
    assert merged.above.major == 90
    assert merged.for_ == 60.0


MERGE_BASE = "rules:\n  - &base\n    metric: cpu\n    above: {major: 90}\n    for: 1m\n"


@pytest.mark.parametrize(
    "merging",
    [
        pytest.param("  - <<: *base\n    name: cpu_slow\n    for: 10m\n", id="merge-first"),
        pytest.param("  - name: cpu_slow\n    for: 10m\n    <<: *base\n", id="merge-last"),
        pytest.param("  - {<<: *base, for: 10m, name: cpu_slow}\n", id="flow"),
        pytest.param("  - <<: [*base]\n    name: cpu_slow\n    for: 10m\n", id="merge-list"),
    ],
)
def test_merge_key_then_override(tmp_path: Path, merging: str) -> None:
    """A key written next to ``<<`` wins over the merged one, wherever it stands; no duplicate."""
    text = MERGE_BASE + merging
    config = load_config(make_config(tmp_path, {"thresholds.yaml": text}), env={})
    base = next(src.rule for src in config.rules if src.rule.rule_name == "cpu")
    slow = next(src.rule for src in config.rules if src.rule.rule_name == "cpu_slow")
    assert slow.for_ == 600.0
    assert (slow.metric, slow.above) == ("cpu", base.above)  # the rest is merged in
    assert base.for_ == 60.0  # the anchored mapping itself is unchanged


def test_merge_key_override_error_points_at_the_override(tmp_path: Path) -> None:
    text = MERGE_BASE + "  - <<: *base\n    name: cpu_slow\n    for: soon\n"
    with pytest.raises(ConfigError) as info:
        load_config(make_config(tmp_path, {"thresholds.yaml": text}), env={})
    assert [str(p) for p in info.value.problems] == [
        "thresholds.yaml:8:10: rules[1].for: invalid duration 'soon' (use e.g. 30s, 2m, 1h30m)"
    ]


def test_merge_key_last_override_error_points_at_the_override(tmp_path: Path) -> None:
    text = MERGE_BASE + "  - name: cpu_slow\n    for: soon\n    <<: *base\n"
    with pytest.raises(ConfigError) as info:
        load_config(make_config(tmp_path, {"thresholds.yaml": text}), env={})
    assert [str(p) for p in info.value.problems] == [
        "thresholds.yaml:7:10: rules[1].for: invalid duration 'soon' (use e.g. 30s, 2m, 1h30m)"
    ]


def test_duplicate_key_after_merge_still_reported_once_per_explicit_key(tmp_path: Path) -> None:
    """Two explicit ``for`` keys next to a merge are a duplicate, whatever the merge holds."""
    text = (
        "rules:\n"
        "  - &base\n    metric: cpu\n    above: {major: 90}\n"
        "  - <<: *base\n    name: b\n    for: 1m\n    for: 2m\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(make_config(tmp_path, {"thresholds.yaml": text}), env={})
    assert [str(p) for p in info.value.problems] == [
        "thresholds.yaml:8:5: rules[1].for: duplicate key (first defined at line 7)"
    ]


# --- email channel without a server ------------------------------------------------------------


@pytest.mark.parametrize("host", ["''", '"   "', "'${NO_SUCH_HOST:-}'"])
def test_email_with_empty_host_is_not_configured(tmp_path: Path, host: str) -> None:
    channel = load_channels(tmp_path, {}, host=host)
    assert channel.configured is False


def test_email_tls_defaults(tmp_path: Path) -> None:
    text = (
        "channels:\n"
        "  log: {type: log}\n"
        "  a: {type: email, host: h, from: a@example.com}\n"
        "  b: {type: email, host: h, from: a@example.com, tls: true}\n"
        "  c: {type: email, host: h, from: a@example.com, tls: true, port: 2465}\n"
    )
    config = load_config(make_config(tmp_path, {"channels.yaml": text}), env={})
    a, b, c = (email(config, name) for name in "abc")
    assert (a.port, a.starttls, a.tls) == (587, True, False)
    assert (b.port, b.starttls, b.tls) == (465, False, True)
    assert (c.port, c.starttls, c.tls) == (2465, False, True)
