"""Malformed YAML corpus: every input either loads or raises ``ConfigError``, never a traceback.

Each case replaces one file of the valid base config (``tests/data/config/base/``) with hostile
or broken content. Whatever happens, ``load_config`` raises only ``ConfigError`` whose problems
read ``file:line:col: ...`` (or ``file: ...`` for a whole-file problem) and name the bad file,
and ``alertd check-config`` exits 1 without printing a traceback.
"""

from __future__ import annotations

import random
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alertd.cli import main
from alertd.config.load import Config, load_config
from alertd.errors import ConfigError

BASE = Path(__file__).parent.parent / "data" / "config" / "base"
WHERE = re.compile(r"^[^:]+:\d+:\d+: |^[^:]+: ")


def _billion_laughs(levels: int = 9, width: int = 9) -> str:
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    lines.append(f"rules: *a{levels - 1}")
    return "\n".join(lines) + "\n"


def _merge_bomb(levels: int = 9, width: int = 9) -> str:
    keys = ", ".join(f"k{i}: 1" for i in range(width))
    lines = [f"m0: &m0 {{{keys}}}"]
    for i in range(1, levels):
        lines.append(f"m{i}: &m{i}\n  <<: [" + ", ".join([f"*m{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


RULE = "rules:\n  - metric: host_cpu_usage_percent\n    above: {critical: 95, major: 85}\n"


@dataclass(frozen=True)
class Case:
    """One corpus entry: ``content`` replaces ``file`` in a copy of the base config."""

    content: str | bytes
    file: str = "thresholds.yaml"
    loads: bool = False  # the config is valid despite the odd encoding
    problems: tuple[str, ...] = field(default=())  # exact text, when worth pinning


CORPUS: dict[str, Case] = {
    "tab-indent": Case(
        "rules:\n\t- metric: cpu\n\t  above: {major: 1}\n",
        problems=(
            "thresholds.yaml:2:1: while scanning for the next token: found character '\\t' "
            "that cannot start any token (YAML indentation must use spaces, not tabs)",
        ),
    ),
    "tab-indent-mapping": Case(
        "hosts:\n  - instance: web1\n\tlabels: {criticality: high}\n",
        file="collectors/local.yaml",
    ),
    "truncated-flow-sequence": Case(
        "rules:\n  - metric: cpu\n    above: {major: 1}\n    match: {device: [eth0, eth1",
        problems=(
            "thresholds.yaml:4:32: while parsing a flow sequence: "
            "expected ',' or ']', but got '<stream end>'",
        ),
    ),
    "truncated-mapping": Case(
        "rules:\n  - metric: cpu\n    above: {major: 1}\n  - metric: mem\n    abo"
    ),
    "truncated-channels": Case(
        "channels:\n  log: {type: log}\n  ops-mail:\n    type: email\n    host: smtp.exa",
        file="channels.yaml",
    ),
    "wrong-types": Case(
        "evaluation_interval: [15s]\nrules:\n  - metric: 42\n    above: {major: lots}\n"
        "    clear: -1\n    labels: {team: [a, b]}\n"
    ),
    "unknown-key": Case(RULE + "    severity: page\n"),
    "duplicate-key": Case(RULE + "    for: 1m\n    for: 2m\n"),
    "duplicate-top-level-key": Case(RULE + RULE),
    "unknown-channel-reference": Case(
        "channels:\n  log: {type: log}\nteams:\n  t1: {channels: [pager]}\n"
        "routes:\n  - notify: [t2]\n",
        file="channels.yaml",
    ),
    "billion-laughs": Case(_billion_laughs()),
    "billion-laughs-in-mapping-values": Case(
        "a0: &a0 {x: lol, y: lol, z: lol}\n"
        + "".join(
            f"a{i}: &a{i} {{x: *a{i - 1}, y: *a{i - 1}, z: *a{i - 1}}}\n" for i in range(1, 14)
        )
    ),
    "merge-key-bomb": Case(_merge_bomb()),
    "undefined-alias": Case("rules: *nothing\n"),
    "non-utf8": Case(
        b"rules:\n  - metric: cpu\n    summary: caf\xe9\n",
        problems=("thresholds.yaml:3:17: file is not valid UTF-8",),
    ),
    "utf16": Case(RULE.encode("utf-16")),
    "empty-channels-tells-nobody": Case(  # user test: a truncated file paged nobody
        "",
        file="channels.yaml",
        problems=(
            "channels.yaml: nothing here tells anyone about an incident: no routes, and no "
            "log channel for the incidents no route matches",
        ),
    ),
    "empty-thresholds-is-fine": Case("", loads=True),
    "comments-only": Case("# nothing here yet\n", loads=True),
    "top-level-scalar": Case(
        "just a string\n", problems=("thresholds.yaml:1:1: top level must be a mapping",)
    ),
    "top-level-number": Case("42\n", file="channels.yaml"),
    "top-level-list": Case(
        "- metric: cpu\n  above: {major: 1}\n",
        problems=("thresholds.yaml:1:1: top level must be a mapping",),
    ),
    "null-rules": Case(
        "rules:\n", problems=("thresholds.yaml:1:7: rules: has no value (write [] or {} for none)",)
    ),
    "binary-blob": Case(bytes(random.Random(20240501).randrange(256) for _ in range(4096))),
    "binary-blob-collectors": Case(
        bytes(random.Random(7).randrange(256) for _ in range(512)), file="collectors/local.yaml"
    ),
    "python-name-tag": Case("rules: !!python/name:os.system\n"),
    "python-apply-tag-top-level": Case('!!python/object/apply:os.system ["echo hi"]\n'),
    "huge-single-line": Case(
        "rules: ["
        + ", ".join(f"{{metric: m{i}, above: {{major: 1}}}}" for i in range(3000))
        + "]\n",
        loads=True,
    ),
    "huge-scalar": Case(
        "rules:\n  - metric: " + "x" * 1_000_000 + "\n    above: {major: 1}\n", loads=True
    ),
    "too-large-file": Case(
        "# " + "x" * (9 * 1024 * 1024) + "\n",
        problems=("thresholds.yaml: larger than 8388608 bytes",),
    ),
    "nested-lists-300": Case("rules: " + "[" * 300 + "]" * 300 + "\n"),
    "bom": Case("\ufeff" + RULE, loads=True),
    "bom-channels": Case(
        "\ufeff" + (BASE / "channels.yaml").read_text(), file="channels.yaml", loads=True
    ),
    "crlf": Case(RULE.replace("\n", "\r\n") + "    for: 2m\r\n", loads=True),
    "crlf-collectors": Case(
        "hosts:\r\n  - instance: web1\r\n    labels: {criticality: high}\r\n",
        file="collectors/local.yaml",
        loads=True,
    ),
    "two-documents": Case(RULE + "---\n" + RULE),
    "complex-key": Case("? [a, b]\n: 1\n"),
    "yaml-1.1-bool-key": Case("on: 1\n"),
    # Only the merge is reported: the missing above/below may be what it was meant to bring.
    "bad-merge-value": Case(
        "rules:\n  - <<: 5\n    metric: cpu\n",
        problems=(
            "thresholds.yaml:2:9: rules[0]: a merge key (<<) needs a mapping or a list of them",
            "thresholds.yaml:2:5: rules[0]: set exactly one of above or below",
        ),
    ),
    # Too deep for PyYAML's recursive composer: one whole-file problem, no RecursionError.
    "nested-lists-10000": Case("[" * 10_000, problems=("thresholds.yaml: nested too deeply",)),
    "nested-lists-10000-closed": Case(
        "rules: " + "[" * 10_000 + "]" * 10_000 + "\n",
        problems=("thresholds.yaml: nested too deeply",),
    ),
    "nested-flow-mappings-2000": Case(
        "rules: " + "{a: " * 2000 + "1" + "}" * 2000 + "\n",
        problems=("thresholds.yaml: nested too deeply",),
    ),
    # Values PyYAML's constructors raise on (ValueError, KeyError, IndexError, AttributeError).
    "invalid-implicit-date": Case(
        RULE + "    summary: 2024-13-45\n",
        problems=(
            "thresholds.yaml:4:14: rules[0].summary: "
            "not a valid timestamp value; quote it to make it a string",
        ),
    ),
    "invalid-implicit-date-in-label": Case(
        "hosts:\n  - labels: {installed: 2024-02-30}\n", file="collectors/local.yaml"
    ),
    "explicit-int-tag": Case(RULE + "    clear: !!int abc\n"),
    "explicit-bool-tag": Case(RULE + "    clear: !!bool maybe\n"),
    "explicit-empty-int-tag": Case(RULE + "    clear: !!int ''\n"),
    "explicit-timestamp-tag": Case("!!timestamp soon\n"),
    "int-over-4300-digits": Case(RULE + "    clear: " + "9" * 5000 + "\n"),
    # Tags on collections are rejected, not ignored.
    "python-apply-tag-on-list": Case(
        'hosts:\n  - processes: !!python/object/apply:os.system ["echo hi"]\n',
        file="collectors/local.yaml",
    ),
    "python-apply-tag-on-mapping": Case(
        "hosts:\n  - labels: !!python/object/apply:os.system {args: echo hi}\n",
        file="collectors/local.yaml",
    ),
    "set-tag": Case(RULE + "    match: !!set {a: null}\n"),
    "omap-tag": Case("rules: !!omap [a: 1]\n"),
    "local-tag-on-scalar": Case("rules:\n  - metric: !cpu host_cpu\n    above: {major: 1}\n"),
    "binary-tag": Case(RULE + "    summary: !!binary aGk=\n"),
    "verbatim-foreign-tag": Case(RULE + "    summary: !<tag:example.com,2000:x> hi\n"),
    "tag-directive-yaml-prefix": Case(
        "%TAG !y! tag:yaml.org,2002:\n---\n"
        "rules:\n  - metric: !y!python/name:os.system cpu\n    above: {major: 1}\n"
    ),
    "tag-on-a-key": Case(RULE + "    !!python/name:os.system summary: 1\n"),
    "unreadable-key": Case(RULE + "    !!int abc: 1\n"),
    # Characters YAML forbids: reported with line:col (the exact text is pinned below).
    "control-character": Case("rules:\n  - metric: cpu\x07\n"),
    "nul-byte": Case("rules:\n  - metric: cpu\x00\n"),
    "nul-byte-second-line-crlf": Case("rules: []\r\n#\x00\r\n"),
    # Explicit standard tags are fine.
    "explicit-standard-tags": Case(
        "!!map {evaluation_interval: !!str 15s, rules: !!seq []}\n", loads=True
    ),
}


def _by_name(*rows: tuple[object, ...]) -> list[object]:
    """Parameters whose test id is the case name (the first value), not the expected text."""
    return [pytest.param(*row, id=str(row[0])) for row in rows]


def problems_of(tmp_path: Path, name: str) -> list[str]:
    """Return the problems corpus case ``name`` produces (it must fail)."""
    with pytest.raises(ConfigError) as info:
        load_config(make_config(tmp_path, CORPUS[name]), env={})
    return [str(p) for p in info.value.problems]


def make_config(tmp_path: Path, case: Case) -> Path:
    directory = tmp_path / "config"
    shutil.copytree(BASE, directory)
    path = directory / case.file
    if isinstance(case.content, bytes):
        path.write_bytes(case.content)
    else:
        path.write_bytes(case.content.encode("utf-8"))
    return directory


def check(directory: Path, case: Case) -> None:
    """Load ``directory``; assert it loads or fails cleanly, as the case says."""
    if case.loads:
        assert isinstance(load_config(directory, env={}), Config)
        return
    with pytest.raises(ConfigError) as info:
        load_config(directory, env={})
    problems = info.value.problems
    assert problems
    for problem in problems:
        text = str(problem)
        assert WHERE.match(text), text
        assert "\n" not in text, text
        assert problem.file == case.file, text
    if case.problems:
        assert tuple(str(p) for p in problems) == case.problems


def check_cli(directory: Path, case: Case, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check-config", str(directory)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    if case.loads:
        assert code == 0
        assert out.startswith("config OK: ")
    else:
        assert code == 1
        assert all(line.startswith(case.file + ":") for line in out.splitlines()), out


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_load(tmp_path: Path, name: str) -> None:
    check(make_config(tmp_path, CORPUS[name]), CORPUS[name])


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_check_config(tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    check_cli(make_config(tmp_path, CORPUS[name]), CORPUS[name], capsys)


# --- exact text of the problems the former crashes now produce --------------------------------
# Each is the only problem of its case: validation does not report the rejected value again.


@pytest.mark.parametrize(
    ("name", "expected"),
    _by_name(
        (
            "python-apply-tag-on-list",
            "collectors/local.yaml:2:16: hosts[0].processes: "
            "tag !!python/object/apply:os.system is not allowed",
        ),
        (
            "python-apply-tag-on-mapping",
            "collectors/local.yaml:2:13: hosts[0].labels: "
            "tag !!python/object/apply:os.system is not allowed",
        ),
        (
            "python-apply-tag-top-level",
            "thresholds.yaml:1:1: tag !!python/object/apply:os.system is not allowed",
        ),
        ("set-tag", "thresholds.yaml:4:12: rules[0].match: tag !!set is not allowed"),
        ("omap-tag", "thresholds.yaml:1:8: rules: tag !!omap is not allowed"),
    ),
)
def test_tag_on_a_collection_is_not_allowed(tmp_path: Path, name: str, expected: str) -> None:
    assert problems_of(tmp_path, name) == [expected]


@pytest.mark.parametrize(
    ("name", "expected"),
    _by_name(
        (
            "python-name-tag",
            "thresholds.yaml:1:8: rules: tag !!python/name:os.system is not allowed",
        ),
        ("local-tag-on-scalar", "thresholds.yaml:2:13: rules[0].metric: tag !cpu is not allowed"),
        ("binary-tag", "thresholds.yaml:4:14: rules[0].summary: tag !!binary is not allowed"),
        (
            "verbatim-foreign-tag",
            "thresholds.yaml:4:14: rules[0].summary: tag tag:example.com,2000:x is not allowed",
        ),
        (
            "tag-directive-yaml-prefix",
            "thresholds.yaml:4:13: rules[0].metric: tag !!python/name:os.system is not allowed",
        ),
    ),
)
def test_tag_on_a_scalar_is_not_allowed(tmp_path: Path, name: str, expected: str) -> None:
    """The same words as for a collection, not "not a valid ... value"."""
    assert problems_of(tmp_path, name) == [expected]


_QUOTE_IT = "; quote it to make it a string"
_PYTHON_INTERNALS = ("int()", "base 10", "index out of range", "NoneType", "attribute", "sys.")


@pytest.mark.parametrize(
    ("name", "expected"),
    _by_name(
        ("explicit-bool-tag", "thresholds.yaml:4:12: rules[0].clear: not a valid bool value"),
        ("explicit-int-tag", "thresholds.yaml:4:12: rules[0].clear: not a valid int value"),
        ("explicit-empty-int-tag", "thresholds.yaml:4:12: rules[0].clear: not a valid int value"),
        ("int-over-4300-digits", "thresholds.yaml:4:12: rules[0].clear: not a valid int value"),
        ("explicit-timestamp-tag", "thresholds.yaml:1:1: not a valid timestamp value"),
        (
            "invalid-implicit-date",
            "thresholds.yaml:4:14: rules[0].summary: not a valid timestamp value",
        ),
        (
            "invalid-implicit-date-in-label",
            "collectors/local.yaml:2:25: hosts[0].labels.installed: not a valid timestamp value",
        ),
    ),
)
def test_unreadable_scalar_names_the_value_kind(tmp_path: Path, name: str, expected: str) -> None:
    problems = problems_of(tmp_path, name)
    assert problems == [expected + _QUOTE_IT]
    assert not any(fragment in problems[0] for fragment in _PYTHON_INTERNALS)


@pytest.mark.parametrize(
    ("name", "where", "code"),
    _by_name(
        ("control-character", (2, 16), "0007"),
        ("nul-byte", (2, 16), "0000"),
        ("nul-byte-second-line-crlf", (2, 2), "0000"),
    ),
)
def test_forbidden_character_has_line_and_column(
    tmp_path: Path, name: str, where: tuple[int, int], code: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(make_config(tmp_path, CORPUS[name]), env={})
    (problem,) = info.value.problems
    assert (problem.file, problem.line, problem.column, problem.path, problem.message) == (
        "thresholds.yaml",
        *where,
        "",
        f"control character U+{code} is not allowed",
    )
    assert str(problem) == (
        f"thresholds.yaml:{where[0]}:{where[1]}: control character U+{code} is not allowed"
    )


# --- remaining bugs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    _by_name(
        (
            "tag-on-a-key",
            "thresholds.yaml:4:5: rules[0]: tag !!python/name:os.system is not allowed",
        ),
        (
            "unreadable-key",
            "thresholds.yaml:4:5: rules[0]: not a valid int value; quote it to make it a string",
        ),
    ),
)
def test_rejected_key_is_reported_once(tmp_path: Path, name: str, expected: str) -> None:
    assert problems_of(tmp_path, name) == [expected]


def test_plain_equals_sign_is_a_string(tmp_path: Path) -> None:
    config = load_config(make_config(tmp_path, Case(RULE + "    summary: =\n")), env={})
    (rule,) = [src.rule for src in config.rules if src.rule.metric == "host_cpu_usage_percent"]
    assert rule.summary == "="


def test_yaml_11_boolean_key_named_as_written(tmp_path: Path) -> None:
    assert problems_of(tmp_path, "yaml-1.1-bool-key") == ["thresholds.yaml:1:1: on: unknown key"]


def test_python_tag_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for i, text in enumerate(
        (
            f'!!python/object/apply:os.system ["touch {marker}"]\n',
            f'rules: !!python/object/apply:os.system ["touch {marker}"]\n',
            f"rules:\n  - metric: !!python/object/apply:os.system ['touch {marker}']\n",
            f"rules:\n  - metric: cpu\n"
            f"    summary: !!python/object/apply:os.system ['touch {marker}']\n",
        )
    ):
        directory = make_config(tmp_path / str(i), Case(text))
        with pytest.raises(ConfigError):
            load_config(directory, env={})
    assert not marker.exists()


def test_alias_bomb_is_cut_short_quickly(tmp_path: Path) -> None:
    """9 levels x 9 would expand to 387 million nodes; the node budget stops it early."""
    directory = make_config(tmp_path, Case(_billion_laughs()))
    with pytest.raises(ConfigError, match="alias bomb"):
        load_config(directory, env={})


def test_crlf_and_bom_keep_line_numbers(tmp_path: Path) -> None:
    text = "\ufeffrules:\r\n  - metric: cpu\r\n    above: {major: 1}\r\n    bogus: 1\r\n"
    with pytest.raises(ConfigError) as info:
        load_config(make_config(tmp_path, Case(text)), env={})
    assert [str(p) for p in info.value.problems] == [
        "thresholds.yaml:4:5: rules[0].bogus: unknown key"
    ]


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(text=st.text())
def test_arbitrary_text_never_escapes(tmp_path: Path, text: str) -> None:
    (tmp_path / "thresholds.yaml").write_text(text, encoding="utf-8")
    (tmp_path / "channels.yaml").write_text("channels: {log: {type: log}}\n")
    try:
        config = load_config(tmp_path, env={})
    except ConfigError as exc:
        for problem in exc.problems:
            assert WHERE.match(str(problem)), str(problem)
            assert problem.file == "thresholds.yaml"
    else:
        assert isinstance(config, Config)


# Fragments that make hypothesis produce YAML-shaped input rather than mostly plain words.
_FRAGMENTS = [
    "rules:",
    "\n",
    "  ",
    "- ",
    "metric: cpu",
    "above:",
    "below:",
    "{",
    "}",
    "[",
    "]",
    ", ",
    ": ",
    "critical: 9",
    "major: 5",
    "for: 1m",
    "&a ",
    "*a",
    "<<: ",
    "!!int ",
    "!!str ",
    "!!binary ",
    "2024-13-45",
    "2024-01-01",
    "~",
    "null",
    "'",
    '"',
    "#",
    "---",
    "?",
    "|",
    ">",
    "\t",
    "%YAML 1.1",
    "${X}",
    "${X:-d}",
    "0x1F",
    "1e3",
    ".nan",
    "yes",
    "on",
]


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(parts=st.lists(st.sampled_from(_FRAGMENTS), max_size=40))
def test_yaml_shaped_text_never_escapes(tmp_path: Path, parts: list[str]) -> None:
    (tmp_path / "thresholds.yaml").write_text("".join(parts), encoding="utf-8")
    (tmp_path / "channels.yaml").write_text("channels: {log: {type: log}}\n")
    try:
        load_config(tmp_path, env={})
    except ConfigError as exc:
        for problem in exc.problems:
            assert WHERE.match(str(problem)), str(problem)
