"""Config errors name ``file:line:col: key.path: message``, all at once, and never a secret.

One fixture per error kind, as alertmanager's ``config/testdata/conf.*.yml``: each directory
under ``tests/data/config/errors/`` holds the file(s) that differ from the valid base config
in ``tests/data/config/base/``, and the first comment in each says what is wrong.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

import pytest

from alertd.cli import main
from alertd.config.load import load_config
from alertd.errors import ConfigError, ConfigProblem
from alertd.notify.email.config import EmailChannelConfig

KNOWN_TYPES = "email, log, sms, wecom, dingtalk, feishu, slack, teams, webhook"

DATA = Path(__file__).parent.parent / "data" / "config"
BASE = DATA / "base"
ERRORS = DATA / "errors"


def make_config(
    tmp_path: Path, case: str | None = None, files: Mapping[str, str] | None = None
) -> Path:
    """Copy the valid base config to ``tmp_path``, then lay a fixture case and files over it."""
    directory = tmp_path / "config"
    shutil.copytree(BASE, directory)
    if case is not None:
        shutil.copytree(ERRORS / case, directory, dirs_exist_ok=True)
    for name, text in (files or {}).items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return directory


def problems_of(directory: Path, env: Mapping[str, str] | None = None) -> list[str]:
    """Return the problems ``load_config`` reports for ``directory`` (it must fail)."""
    with pytest.raises(ConfigError) as info:
        load_config(directory, env={} if env is None else env)
    assert str(info.value) == "\n".join(str(p) for p in info.value.problems)
    return [str(p) for p in info.value.problems]


def test_base_config_is_valid() -> None:
    config = load_config(BASE, env={})
    assert config.summary() == (
        "config OK: 4 files, 3 rules, 1 host targets, 0 SNMP targets, 0 SNMP profiles, "
        "2 channels, 1 teams, 2 routes"
    )


# Each case: the exact problem lines, in order. Every case directory is listed here.
EXPECTED: dict[str, list[str]] = {
    "unknown_key": ["thresholds.yaml:5:5: rules[0].sumary: unknown key"],
    "wrong_type": ["thresholds.yaml:4:12: rules[0].above: expected a mapping (key: value)"],
    "above_out_of_order": [
        "thresholds.yaml:4:12: rules[0].above: critical must be above major (80 <= 90)"
    ],
    "below_out_of_order": [
        "thresholds.yaml:5:7: rules[0].below: major must be below minor (20 >= 15)"
    ],
    "above_and_below": ["thresholds.yaml:3:5: rules[0]: set exactly one of above or below"],
    "no_direction": ["thresholds.yaml:3:5: rules[0]: set exactly one of above or below"],
    "invalid_duration": [
        "thresholds.yaml:5:10: rules[0].for: invalid duration '5 minutes' (use e.g. 30s, 2m, 1h30m)"
    ],
    "duplicate_key": ["thresholds.yaml:7:5: rules[0].for: duplicate key (first defined at line 5)"],
    "override_wrong_direction": [
        "thresholds.yaml:9:16: rules[0].overrides[1].below: "
        "rule uses above; an override cannot use below"
    ],
    "evaluation_interval_in_pack": [
        "rules/network.yaml:2:22: evaluation_interval: only allowed in thresholds.yaml"
    ],
    "missing_metric": ["thresholds.yaml:3:5: rules[0].metric: required key is missing"],
    "unset_env_var": [
        "channels.yaml:6:11: channels.ops-mail.host: "
        "environment variable SMTP_HOST_UNSET is not set"
    ],
    "route_unknown_target": [
        'channels.yaml:11:21: routes[0].notify[1]: unknown team or channel "teir2" '
        "(known: log, ops-mail, tier1)"
    ],
    "team_unknown_channel": [
        'channels.yaml:7:26: teams.tier1.channels[1]: unknown channel "pager" '
        "(known: log, ops-mail)"
    ],
    "unknown_channel_type": [
        'channels.yaml:5:11: channels.oncall.type: unknown type "pager" (known: '
        + KNOWN_TYPES
        + ")"
    ],
    "email_password_file_missing": [
        "channels.yaml:7:20: channels.ops-mail.password_file: "
        "cannot read /nonexistent/alertd-test/smtp.password: no such file"
    ],
    "criticality_not_in_matrix": [
        'collectors/local.yaml:4:38: hosts[0].labels.criticality: "extreme" is not a row of '
        "the priority matrix (rows: high, medium, low)"
    ],
    "matrix_row_missing_level": [
        "channels.yaml:7:13: priorities.matrix.medium: missing level(s): minor"
    ],
    "default_impact_not_a_row": [
        'channels.yaml:5:19: priorities.default_impact: "normal" is not a row of the matrix '
        "(rows: high, medium, low)"
    ],
    "three_errors_two_files": [
        "thresholds.yaml:5:5: rules[0].sumary: unknown key",
        "thresholds.yaml:8:10: rules[1].for: invalid duration 'soon' (use e.g. 30s, 2m, 1h30m)",
        'channels.yaml:4:14: routes[0].notify[0]: unknown team or channel "nobody" (known: log)',
    ],
    "duplicate_rule_name": [
        'rules/cpu.yaml:3:13: rules[0].metric: duplicate rule name "host_cpu_usage_percent" '
        "(first at thresholds.yaml:4); give one of them a distinct name"
    ],
    "email_tls_and_starttls": [
        "channels.yaml:4:5: channels.ops-mail: "
        "tls (implicit TLS, usually port 465) and starttls are exclusive; set one to false"
    ],
    "email_password_and_file": [
        "channels.yaml:4:5: channels.ops-mail: password and password_file are exclusive; set one"
    ],
    "schema_and_names_in_one_round": [
        'channels.yaml:4:16: channels.hook.type: unknown type "webhok" (known: '
        + KNOWN_TYPES
        + ")",
        "channels.yaml:10:13: routes[0].repeat: invalid duration '5x' (use e.g. 30s, 2m, 1h30m)",
        'channels.yaml:7:27: teams.tier1.channels[2]: unknown channel "pager" (known: hook, log)',
        'channels.yaml:9:21: routes[0].notify[1]: unknown team or channel "teir2" '
        "(known: hook, log, tier1)",
        'channels.yaml:11:18: failover.hook: unknown channel "sms" (known: hook, log)',
    ],
    "route_names_a_channel_with_nobody_to_send_to": [
        "channels.yaml:12:14: routes[0].notify[0]: an SMS channel sends to team members' phones: "
        "named here it reaches nobody (name a team whose channels include it)",
        "channels.yaml:12:19: routes[0].notify[1]: this email channel has no `to`: named here it "
        "reaches nobody (set its `to`, or name a team whose channels include it)",
    ],
}


def test_every_fixture_case_is_checked() -> None:
    cases = {p.name for p in ERRORS.iterdir() if p.is_dir()}
    assert cases == set(EXPECTED)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_error_text(tmp_path: Path, case: str) -> None:
    assert problems_of(make_config(tmp_path, case)) == EXPECTED[case]


def test_duplicate_rule_name_names_both_files(tmp_path: Path) -> None:
    (problem,) = problems_of(make_config(tmp_path, "duplicate_rule_name"))
    assert problem.startswith(
        'rules/cpu.yaml:3:13: rules[0].metric: duplicate rule name "host_cpu_usage_percent" '
        "(first at thresholds.yaml:4)"
    )
    assert not problem.endswith(":")


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (
            "email_tls_and_starttls",
            "tls (implicit TLS, usually port 465) and starttls are exclusive; set one to false",
        ),
        ("email_password_and_file", "password and password_file are exclusive; set one"),
    ],
)
def test_email_combination_errors_point_at_the_channel(
    tmp_path: Path, case: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(make_config(tmp_path, case), env={})
    (problem,) = info.value.problems
    assert (problem.file, problem.line, problem.column, problem.path, problem.message) == (
        "channels.yaml",
        4,
        5,
        "channels.ops-mail",  # the channel's mapping; no ".email" discriminator tag
        message,
    )


def test_duplicate_key_names_both_lines(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(make_config(tmp_path, "duplicate_key"), env={})
    (problem,) = info.value.problems
    assert problem.line == 7
    assert "line 5" in problem.message


def test_all_problems_in_one_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(make_config(tmp_path, "three_errors_two_files"), env={})
    problems = info.value.problems
    assert len(problems) == 3
    assert [p.file for p in problems] == ["thresholds.yaml", "thresholds.yaml", "channels.yaml"]
    assert all(isinstance(p, ConfigProblem) for p in problems)


def test_problems_from_every_file_kind_at_once(tmp_path: Path) -> None:
    """One problem in each of the four file kinds: all four come back together."""
    directory = make_config(
        tmp_path,
        files={
            "thresholds.yaml": "rules:\n  - metric: cpu\n    above: {major: 1}\n    bogus: 1\n",
            "rules/network.yaml": "rules:\n  - metric: net\n    above: {major: 1}\n    for: x\n",
            "collectors/local.yaml": "hosts:\n  - interval: 0\n",
            "channels.yaml": "channels:\n  log: {type: log, level: debug}\n",
        },
    )
    problems = problems_of(directory)
    assert [p.split(":")[0] for p in problems] == [
        "thresholds.yaml",
        "rules/network.yaml",
        "collectors/local.yaml",
        "channels.yaml",
    ]


def test_unset_variable_with_default_is_fine(tmp_path: Path) -> None:
    directory = make_config(
        tmp_path,
        files={"channels.yaml": (ERRORS / "unset_env_var" / "channels.yaml").read_text()},
    )
    config = load_config(directory, env={"SMTP_HOST_UNSET": "mail.example.com"})
    channel = config.channels.channels["ops-mail"]
    assert isinstance(channel, EmailChannelConfig)
    assert channel.host == "mail.example.com"


def test_missing_thresholds_file(tmp_path: Path) -> None:
    directory = make_config(tmp_path)
    (directory / "thresholds.yaml").unlink()
    assert problems_of(directory) == ["thresholds.yaml: file not found"]


def test_not_a_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    assert problems_of(missing) == [f"{missing}: not a directory"]


@pytest.mark.parametrize("value", ["0s", "0", "'0'", "${EVAL_INTERVAL:-0}"])
def test_zero_evaluation_interval_is_rejected(tmp_path: Path, value: str) -> None:
    """A zero interval would make the evaluator busy-loop."""
    text = f"evaluation_interval: {value}\n"
    directory = make_config(tmp_path, files={"thresholds.yaml": text})
    assert problems_of(directory) == [
        "thresholds.yaml:1:22: evaluation_interval: Input should be greater than 0"
    ]


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", ".NaN"])
def test_non_finite_threshold_is_rejected(tmp_path: Path, value: str) -> None:
    """A NaN threshold is never breached; an infinite one is a typo."""
    text = f"rules:\n  - metric: cpu\n    above: {{major: {value}}}\n"
    directory = make_config(tmp_path, files={"thresholds.yaml": text})
    assert problems_of(directory) == [
        "thresholds.yaml:3:20: rules[0].above.major: must be a finite number"
    ]


@pytest.mark.parametrize(
    ("file", "text", "expected"),
    [
        (
            "thresholds.yaml",
            "rules:\n  - metric: cpu\n    above: {major: 1}\n    for: .inf\n",
            "thresholds.yaml:4:10: rules[0].for: must be a finite number",
        ),
        (
            "thresholds.yaml",
            "rules:\n  - metric: cpu\n    above: {major: 1}\n    clear: .nan\n",
            "thresholds.yaml:4:12: rules[0].clear: must be a finite number",
        ),
        (
            "thresholds.yaml",
            "rules:\n  - metric: cpu\n    above: {major: 1}\n    for: 'nan'\n",
            "thresholds.yaml:4:10: rules[0].for: "
            "duration must be a finite, non-negative number of seconds",
        ),
        (
            "collectors/local.yaml",
            "hosts:\n  - interval: .inf\n",
            "collectors/local.yaml:2:15: hosts[0].interval: must be a finite number",
        ),
    ],
)
def test_non_finite_durations_and_margins_are_rejected(
    tmp_path: Path, file: str, text: str, expected: str
) -> None:
    assert problems_of(make_config(tmp_path, files={file: text})) == [expected]


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", "'inf'"])
def test_non_finite_email_timeout_is_rejected(tmp_path: Path, value: str) -> None:
    """socket.settimeout(inf) raises OverflowError: every send would fail."""
    text = f"channels:\n  m: {{type: email, host: h, from: a@example.com, timeout: {value}}}\n"
    (problem,) = problems_of(make_config(tmp_path, files={"channels.yaml": text}))
    assert problem.startswith("channels.yaml:2:59: channels.m.timeout: ")
    assert "finite" in problem or "must not be negative" in problem


RELATIVE_PASSWORD_FILE = (
    "channels:\n  ops-mail:\n    type: email\n    host: smtp.example.com\n"
    "    username: alertd\n    password_file: smtp.password\n    from: a@example.com\n"
    "  log: {type: log}\n"
)


def test_relative_password_file_is_relative_to_config_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = make_config(
        tmp_path, files={"channels.yaml": RELATIVE_PASSWORD_FILE, "smtp.password": "pw\n"}
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(directory, env={})
    channel = config.channels.channels["ops-mail"]
    assert isinstance(channel, EmailChannelConfig)
    # The loaded config carries the resolved path, so the notifier reads the same file.
    assert channel.password_file == directory / "smtp.password"
    assert channel.resolve_password() == "pw"


def test_relative_password_file_missing_from_config_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file of that name in the CWD doesn't count: only the config directory does."""
    directory = make_config(tmp_path, files={"channels.yaml": RELATIVE_PASSWORD_FILE})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "smtp.password").write_text("pw\n")
    monkeypatch.chdir(elsewhere)
    assert problems_of(directory) == [
        "channels.yaml:6:20: channels.ops-mail.password_file: "
        "cannot read smtp.password: no such file"
    ]


# --- check-config -------------------------------------------------------------------------


def test_check_config_prints_every_problem_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SMTP_HOST_UNSET", raising=False)
    assert main(["check-config", str(make_config(tmp_path, "three_errors_two_files"))]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == EXPECTED["three_errors_two_files"]
    assert "3 problem" in err
    assert "Traceback" not in out + err


def test_check_config_ok_prints_one_summary_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check-config", str(BASE)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "config OK: 4 files, 3 rules, 1 host targets, 0 SNMP targets, 0 SNMP profiles, "
        "2 channels, 1 teams, 2 routes"
    ]
    assert err == ""


# --- secrets never appear in errors ----------------------------------------------------------

SECRET = "hunter2-s3cret"
SECRET_ENV = {"SECRET_PW": SECRET}
EMAIL = (
    "channels:\n"
    "  log: {type: log}\n"
    "  ops-mail:\n"
    "    type: email\n"
    "    host: smtp.example.com\n"
    "    username: alertd\n"
    "    password: ${SECRET_PW}\n"
)


def assert_no_secret(directory: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(directory, env=SECRET_ENV)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)
    for problem in info.value.problems:
        assert SECRET not in str(problem)
        assert SECRET not in repr(problem)
    return [str(p) for p in info.value.problems]


def test_secret_not_in_type_errors(tmp_path: Path) -> None:
    """Fields pydantic would echo with ``input_value=...``: the value stays out."""
    channels = EMAIL + (
        "    from: alertd@example.com\n"
        '    port: "${SECRET_PW}"\n'
        '    timeout: "${SECRET_PW}"\n'
        '    starttls: "${SECRET_PW}"\n'
        '    validate_certs: ["${SECRET_PW}"]\n'
        "    extra_${SECRET_PW}: 1\n"
    )
    problems = assert_no_secret(make_config(tmp_path, files={"channels.yaml": channels}))
    assert len(problems) == 5
    assert problems[0] == (
        "channels.yaml:9:11: channels.ops-mail.port: "
        "Input should be a valid integer, unable to parse string as an integer"
    )


def test_secret_not_in_repr_of_valid_channel(tmp_path: Path) -> None:
    channels = EMAIL + "    from: alertd@example.com\n"
    config = load_config(make_config(tmp_path, files={"channels.yaml": channels}), env=SECRET_ENV)
    channel = config.channels.channels["ops-mail"]
    assert isinstance(channel, EmailChannelConfig)
    assert channel.resolve_password() == SECRET  # the substitution did happen
    for text in (repr(channel), str(channel), repr(config.channels), repr(config)):
        assert SECRET not in text
    assert SECRET not in str(channel.model_dump())


CPU_RULE = "rules:\n  - metric: cpu\n    above: {major: 1}\n"

# A secret substituted into a value that a check then quotes back: the message keeps its
# shape, with the value replaced by <redacted>.
SECRET_ECHO: dict[str, tuple[dict[str, str], str]] = {
    "email-from": (
        {"channels.yaml": EMAIL + '    from: "${SECRET_PW}"\n'},
        "channels.yaml:8:11: channels.ops-mail.from: "
        "'<redacted>' is not one email address (want user@domain)",
    ),
    "email-to": (
        {"channels.yaml": EMAIL + "    from: a@example.com\n    to: ['${SECRET_PW}']\n"},
        "channels.yaml:9:9: channels.ops-mail.to: "
        "'<redacted>' is not one email address (want user@domain)",
    ),
    "duration": (
        {"thresholds.yaml": CPU_RULE + "    for: ${SECRET_PW}\n"},
        "thresholds.yaml:4:10: rules[0].for: "
        "invalid duration '<redacted>' (use e.g. 30s, 2m, 1h30m)",
    ),
    "route-notify": (
        {
            "channels.yaml": EMAIL
            + "    from: a@example.com\nroutes:\n  - notify: ['${SECRET_PW}']\n"
        },
        'channels.yaml:10:14: routes[0].notify[0]: unknown team or channel "<redacted>" '
        "(known: log, ops-mail)",
    ),
    "channel-type": (
        {"channels.yaml": "channels:\n  x: {type: '${SECRET_PW}'}\n"},
        'channels.yaml:2:13: channels.x.type: unknown type "<redacted>" (known: '
        + KNOWN_TYPES
        + ")",
    ),
    "default-impact": (
        {
            "channels.yaml": "priorities: {default_impact: '${SECRET_PW}'}\n"
            "channels: {log: {type: log}}\n"
        },
        'channels.yaml:1:30: priorities.default_impact: "<redacted>" is not a row of the matrix '
        "(rows: high, medium, low)",
    ),
    "rule-name": (
        {
            "rules/cpu.yaml": "rules:\n"
            "  - metric: cpu\n    name: ${SECRET_PW}\n    above: {major: 1}\n"
            "  - metric: mem\n    name: ${SECRET_PW}\n    above: {major: 1}\n"
        },
        'rules/cpu.yaml:6:11: rules[1].name: duplicate rule name "<redacted>" '
        "(first at rules/cpu.yaml:2); give one of them a distinct name",
    ),
    "part-of-a-value": (
        {"channels.yaml": "channels:\n  x: {type: 'x-${SECRET_PW}-y'}\n"},
        'channels.yaml:2:13: channels.x.type: unknown type "x-<redacted>-y" (known: '
        + KNOWN_TYPES
        + ")",
    ),
}


@pytest.mark.parametrize("case", sorted(SECRET_ECHO))
def test_secret_not_echoed_by_value_checks(tmp_path: Path, case: str) -> None:
    files, expected = SECRET_ECHO[case]
    assert assert_no_secret(make_config(tmp_path, files=files)) == [expected]


@pytest.mark.parametrize(
    "secret", ["pa\\ss-w0rd", "pass-w0rd\n", "pass\tw0rd", 'it\'s "q"', "a\x01b-w0rd"]
)
@pytest.mark.parametrize("case", ["email-from", "duration"])
def test_secret_with_escaped_characters_not_echoed(tmp_path: Path, case: str, secret: str) -> None:
    """check_address and parse_duration quote the value with !r, which escapes it."""
    files, expected = SECRET_ECHO[case]
    if case == "email-from" and "\n" in secret:
        expected = (
            "channels.yaml:8:11: channels.ops-mail.from: "
            "'<redacted>' is not an email address: contains a line break"
        )
    with pytest.raises(ConfigError) as info:
        load_config(make_config(tmp_path, files=files), env={"SECRET_PW": secret})
    text = str(info.value)
    for fragment in (secret, repr(secret)[1:-1], "pa\\\\ss", "w0rd"):
        assert fragment not in text
    assert [str(p) for p in info.value.problems] == [expected]


def test_secret_not_printed_by_check_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_PW", SECRET)
    channels = EMAIL + '    from: alertd@example.com\n    port: "${SECRET_PW}"\n'
    assert (
        main(["check-config", str(make_config(tmp_path, files={"channels.yaml": channels}))]) == 1
    )
    out, err = capsys.readouterr()
    assert SECRET not in out + err
    assert "channels.ops-mail.port" in out


# --- configs that would tell nobody (user test) -----------------------------------------------

ROUTE_TYPOS = """\
channels:
  log: {type: log}
routes:
  - match: {priorty: [P1, P2]}
    notify: [log]
  - match: {priority: [P1, P5], level: [critcal]}
    notify: [log]
  - match: {rule: [], instance: [web1], levels: [major]}
    notify: [log]
"""


def test_route_matchers_that_can_never_match_as_meant_are_named(tmp_path: Path) -> None:
    directory = make_config(tmp_path, files={"channels.yaml": ROUTE_TYPOS})
    assert problems_of(directory) == [
        'channels.yaml:4:13: routes[0].match.priorty: "priorty" is not priority: a route '
        "matches the labels, plus priority, level and rule (did you mean priority?)",
        "channels.yaml:6:23: routes[1].match.priority: priority is one of P1, P2, P3, P4, not 'P5'",
        "channels.yaml:6:40: routes[1].match.level: level is one of critical, major, minor, "
        "not 'critcal'",
        "channels.yaml:8:19: routes[2].match.rule: an empty list matches nothing: list the "
        "values to match, or leave the key out",
        'channels.yaml:8:41: routes[2].match.levels: "levels" is not level: a route matches '
        "the labels, plus priority, level and rule (did you mean level?)",
    ]


UNREACHABLE_TEAMS = """\
channels:
  log: {type: log}
  sms:
    {type: sms, account_sid: AC00000000000000000000000000000000, auth_token: t,
     from: '+15550000000'}
  mail: {type: email, host: smtp.example.com, from: alertd@example.com}
  mail-to-list:
    {type: email, host: smtp.example.com, from: alertd@example.com, to: [ops@example.com]}
teams:
  by-mail-only:
    members: [{name: Ann, email: ann@example.com}]
    channels: [sms, mail, log]
  nobody:
    channels: [mail, mail-to-list]
  reachable:
    members: [{name: Bo, phone: '+15550000001'}, {name: Cy, email: cy@example.com}]
    channels: [sms, mail]
routes:
  - notify: [by-mail-only, nobody, reachable]
"""


def test_a_team_channel_that_reaches_no_member_is_named(tmp_path: Path) -> None:
    directory = make_config(tmp_path, files={"channels.yaml": UNREACHABLE_TEAMS})
    assert problems_of(directory) == [
        "channels.yaml:12:16: teams.by-mail-only.channels[0]: an SMS channel, and no member of "
        "this team has a phone: its pages would reach nobody",
        "channels.yaml:14:16: teams.nobody.channels[0]: an email channel with no `to`, and no "
        "member of this team has an email: its pages would reach nobody",
    ]


def test_a_file_without_routes_or_a_log_channel_is_refused_and_one_with_a_log_channel_loads(
    tmp_path: Path,
) -> None:
    mail = "channels:\n  mail: {type: email, host: h, from: a@example.com, to: [b@example.com]}\n"
    assert problems_of(make_config(tmp_path / "a", files={"channels.yaml": mail})) == [
        "channels.yaml:1:1: nothing here tells anyone about an incident: no routes, and no "
        "log channel for the incidents no route matches"
    ]
    logged = mail + "  log: {type: log}\n"  # what no route matches goes to the log
    load_config(make_config(tmp_path / "b", files={"channels.yaml": logged}), env={})


CONTINUED_ESCALATION = """\
channels:
  log: {type: log}
  noc: {type: log}
routes:
  - match: {svc: [pay]}
    continue: true
    escalate: [{notify: [log]}, {after: 20s, notify: [noc]}]
  - match: {svc: [pay, shop]}
    notify: [noc]
  - match: {svc: [db]}
    continue: true
    escalate: [{notify: [log]}, {after: 20s, notify: [noc]}]
  - match: {svc: [db], site: [lab]}
    notify: [noc]
  - match: {svc: [web]}
    continue: true
    escalate: [{notify: [log]}, {after: 20s, notify: [noc]}]
  - match: {svc: [web], level: [critical, major, minor]}  # every level: always
    notify: [noc]
maintenance:
  - {name: w, match: {site: []}, start: "2026-12-01T22:00:00Z", duration: 1h, reason: r}
"""


def test_escalation_steps_a_later_route_always_overrides_are_named(tmp_path: Path) -> None:
    """On-call user test: tier 2 was never paged, for only the last matching route
    escalates. The second pair is fine: an incident not in the lab escalates by the first."""
    directory = make_config(tmp_path, files={"channels.yaml": CONTINUED_ESCALATION})
    assert problems_of(directory) == [
        "channels.yaml:7:15: routes[0].escalate: its later steps never run: routes[1] matches "
        "every incident this route does, and only the last route an incident matches "
        "escalates it (move the steps there, or leave out `continue` here)",
        "channels.yaml:17:15: routes[4].escalate: its later steps never run: routes[5] matches "
        "every incident this route does, and only the last route an incident matches "
        "escalates it (move the steps there, or leave out `continue` here)",
        "channels.yaml:21:29: maintenance[0].match.site: an empty list matches nothing: list "
        "the values to match, or leave the key out",
    ]


SECRET_FILES = """\
channels:
  log: {type: log}
  slack: {type: slack, url_file: slack.url}
  hook: {type: webhook, url: 'http://127.0.0.1:9/hook', secret_file: hook.key}
  mail:
    {type: email, host: h, username: u, password_file: smtp.password, from: a@example.com,
     to: [b@example.com]}
routes:
  - notify: [slack, hook, mail]
"""


def test_secret_files_are_read_as_the_daemon_reads_them(tmp_path: Path) -> None:
    """Admin user test: these passed check-config, then `alertd run` refused them."""
    directory = make_config(
        tmp_path,
        files={
            "channels.yaml": SECRET_FILES,
            "slack.url": "hooks.slack.example/services/T0/B0/XXXX\n",
            "hook.key": "  \n",  # spaces alone are as empty
            "smtp.password": "",
            "server.yaml": "link_secret_file: links.key\n",
            "links.key": "short\n",
        },
    )
    assert problems_of(directory) == [
        "server.yaml:1:19: link_secret_file: links.key: a link secret needs at least 16 bytes "
        "(e.g. `head -c 32 /dev/urandom | base64 > links.key`) (it has 5)",
        "channels.yaml:3:34: channels.slack.url_file: slack.url: url must be an http:// or "
        "https:// URL with a host",
        "channels.yaml:4:70: channels.hook.secret_file: hook.key: file is empty",
        "channels.yaml:6:56: channels.mail.password_file: smtp.password: file is empty",
    ]
    assert "XXXX" not in "\n".join(problems_of(directory))  # the URL is a secret


def test_an_inline_link_secret_must_be_long_enough_too(tmp_path: Path) -> None:
    directory = make_config(tmp_path, files={"server.yaml": "link_secret: abc\n"})
    (problem,) = problems_of(directory)
    assert problem.startswith("server.yaml:1:14: link_secret: ")
    assert "at least 16 bytes" in problem
    assert "abc" not in problem


def test_a_channel_timeout_send_timeout_would_cut_short_is_refused(tmp_path: Path) -> None:
    """Admin user test: `send_timeout: 1s` under a channel's 10s timeout was taken, and every
    slow attempt would have been cut short as ambiguous."""
    text = (
        "channels:\n  log: {type: log}\n"
        "  hook: {type: webhook, url: 'http://127.0.0.1:9/h', timeout: 10s}\n"
        "routes:\n  - notify: [hook]\ndelivery: {send_timeout: 5s}\n"
    )
    assert problems_of(make_config(tmp_path, files={"channels.yaml": text})) == [
        "channels.yaml:3:63: channels.hook.timeout: 10s is not below delivery.send_timeout "
        "(5s), which cuts every attempt short first: lower this, or raise send_timeout"
    ]


def test_twilio_status_callbacks_need_a_public_url(tmp_path: Path) -> None:
    """Admin user test: without server.yaml's public_url every callback gets 403."""
    text = (
        "channels:\n  log: {type: log}\n  sms:\n"
        "    {type: sms, account_sid: AC00000000000000000000000000000000, auth_token: t,\n"
        "     from: '+15550000000', status_callback_url: 'https://a.example/hooks/twilio/status'}\n"
        "routes:\n  - notify: [log]\n"
    )
    assert problems_of(make_config(tmp_path / "a", files={"channels.yaml": text})) == [
        "channels.yaml:5:49: channels.sms.status_callback_url: needs server.yaml's public_url: "
        "alertd checks Twilio's signature against it, and without it refuses every callback"
    ]
    with_url = {"channels.yaml": text, "server.yaml": "public_url: https://a.example\n"}
    load_config(make_config(tmp_path / "b", files=with_url), env={})
