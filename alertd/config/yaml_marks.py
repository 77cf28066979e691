"""Safe YAML parsing that remembers where every key and value came from.

``yaml.compose`` (safe loader) keeps each node's mark; we build plain Python data from the
nodes ourselves so that duplicate keys, alias bombs, tabs and bad encodings become
``ConfigProblem``s naming file:line:col instead of tracebacks or silent last-one-wins.
``${VAR}`` / ``${VAR:-default}`` references in string scalars are substituted here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from alertd.errors import ConfigProblem

Path_ = tuple[str | int, ...]

MAX_NODES = 200_000  # an alias bomb expands past this long before memory is at risk
MAX_BYTES = 8 * 1024 * 1024
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True, slots=True)
class Mark:
    line: int  # 1-based
    column: int  # 1-based


@dataclass(slots=True)
class Document:
    """One parsed file: its data and the marks of every key path in it."""

    file: str
    data: Any
    key_marks: dict[Path_, Mark] = field(default_factory=dict)
    value_marks: dict[Path_, Mark] = field(default_factory=dict)
    reported: set[Path_] = field(default_factory=set)  # paths with a problem already

    def mark_for(self, path: Path_, *, key: bool = False) -> Mark | None:
        """Return the mark of ``path`` (its key when ``key``), or of its nearest ancestor."""
        marks = self.key_marks if key else self.value_marks
        for end in range(len(path), -1, -1):
            found = marks.get(path[:end]) or self.value_marks.get(path[:end])
            if found is not None:
                return found
        return None

    def problem(
        self, path: Path_, message: str, *, key: bool = False, exists: bool = True
    ) -> ConfigProblem:
        """Return a problem at ``path``; a path that doesn't exist points at its parent."""
        mark = self.mark_for(path if exists else path[:-1], key=key)
        return ConfigProblem(
            self.file,
            mark.line if mark else 0,
            mark.column if mark else 0,
            format_path(path),
            message,
        )


def format_path(path: Path_) -> str:
    """Render ``("rules", 2, "above")`` as ``rules[2].above``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class _Budget:
    def __init__(self) -> None:
        self.left = MAX_NODES


def _mark(node: yaml.Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def substitute_env(text: str, env: Mapping[str, str], used: set[str] | None = None) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}`` (the default also when VAR is empty).

    Raise KeyError naming an unset VAR. Every substituted value is added to ``used`` so that
    problem messages can be scrubbed of it (it may be a secret).
    """

    def repl(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        if not value:
            if default is not None:
                return default
            if value is None:
                raise KeyError(name)
        if used is not None and value:
            used.add(value)
        return value or ""

    return _ENV_REF.sub(repl, text)


_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_VALUE_TAG = "tag:yaml.org,2002:value"
_UNREADABLE = object()  # a scalar that could not be read (already reported)
_SCALAR_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "timestamp")
)


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml") else tag


class _Builder:
    def __init__(
        self,
        doc: Document,
        env: Mapping[str, str],
        problems: list[ConfigProblem],
        substituted: set[str],
    ):
        self.doc = doc
        self.env = env
        self.problems = problems
        self.substituted = substituted
        self.budget = _Budget()
        self.constructor = yaml.SafeLoader("")

    def _problem_at(
        self, node: yaml.Node, path: Path_, message: str, *, unusable: bool = False
    ) -> None:
        if unusable:  # the value is gone: validation need not add "missing"/"wrong type" here
            self.doc.reported.add(path)
        m = _mark(node)
        self.problems.append(
            ConfigProblem(self.doc.file, m.line, m.column, format_path(path), message)
        )

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.budget.left -= 1
        if self.budget.left < 0:
            raise _TooLarge(node)
        self.doc.value_marks[path] = _mark(node)
        if isinstance(node, yaml.MappingNode):
            if node.tag != _MAP_TAG:
                self._problem_at(
                    node, path, f"tag {_short_tag(node.tag)} is not allowed", unusable=True
                )
                return None
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ_TAG:
                self._problem_at(
                    node, path, f"tag {_short_tag(node.tag)} is not allowed", unusable=True
                )
                return None
            return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
        return self._scalar(node, path)

    def _merged(self, value_node: yaml.Node, path: Path_) -> dict[Any, Any]:
        """Return what ``<<: *a`` or ``<<: [*a, *b]`` brings in; the first source wins."""
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        merged: dict[Any, Any] = {}
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                self._problem_at(source, path, "a merge key (<<) needs a mapping or a list of them")
                continue
            for key, value in self._mapping(source, path).items():
                merged.setdefault(key, value)
        return merged

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        merged: dict[Any, Any] = {}
        first_seen: dict[Any, Mark] = {}
        # merge keys (<<) first, so the marks of explicit keys, built after, win
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag == _MERGE_TAG:
                for key, value in self._merged(value_node, path).items():
                    merged.setdefault(key, value)
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self._problem_at(key_node, path, "mapping keys must be plain scalars")
                continue
            if key_node.tag == _MERGE_TAG:
                continue
            key = self._construct(key_node, path)
            if key is _UNREADABLE:
                continue  # already reported; don't invent a key named "None"
            if not isinstance(key, str):
                key = key_node.value  # every key is text as written: `on:` stays "on", not True
            child: Path_ = (*path, key)
            if key in first_seen:
                self._problem_at(
                    key_node, child, f"duplicate key (first defined at line {first_seen[key].line})"
                )
                continue
            first_seen[key] = _mark(key_node)
            self.doc.key_marks[child] = _mark(key_node)
            out[key] = self.build(value_node, child)
        for key, value in merged.items():  # explicit keys override merged ones
            out.setdefault(key, value)
        return out

    def _construct(self, node: yaml.Node, path: Path_) -> Any:
        if isinstance(node, yaml.ScalarNode) and node.tag == _VALUE_TAG:
            return node.value  # a bare "=" is YAML 1.1's value tag; it means the text "="
        if isinstance(node, yaml.ScalarNode) and node.tag not in _SCALAR_TAGS:
            message = f"tag {_short_tag(node.tag)} is not allowed"
            self._problem_at(node, path, message, unusable=True)
            return _UNREADABLE
        try:
            return self.constructor.construct_object(node)
        except Exception:  # bad dates, !!int abc, huge ints: a problem, not a crash
            kind = node.tag.rsplit(":", 1)[-1]
            message = f"not a valid {kind} value; quote it to make it a string"
            self._problem_at(node, path, message, unusable=True)
            return _UNREADABLE

    def _scalar(self, node: yaml.Node, path: Path_) -> Any:
        value = self._construct(node, path)
        if value is _UNREADABLE:
            return None
        if isinstance(value, str) and "${" in value:
            try:
                return substitute_env(value, self.env, self.substituted)
            except KeyError as exc:
                self._problem_at(
                    node, path, f"environment variable {exc.args[0]} is not set", unusable=True
                )
                return ""
        return value


class _TooLarge(Exception):
    def __init__(self, node: yaml.Node) -> None:
        self.node = node


def parse_file(
    path: Path,
    display_name: str,
    env: Mapping[str, str] | None = None,
    substituted: set[str] | None = None,
) -> tuple[Document | None, list[ConfigProblem]]:
    """Parse one YAML file; return its document (None if unusable) and any problems.

    Values substituted from the environment are added to ``substituted``.
    """
    problems: list[ConfigProblem] = []
    doc = Document(display_name, None)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, [ConfigProblem(display_name, 0, 0, "", f"cannot read: {exc.strerror}")]
    if len(raw) > MAX_BYTES:
        return None, [ConfigProblem(display_name, 0, 0, "", f"larger than {MAX_BYTES} bytes")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, [ConfigProblem(display_name, line, col, "", "file is not valid UTF-8")]
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        return None, [ConfigProblem(display_name, 0, 0, "", "nested too deeply")]
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        return None, [
            ConfigProblem(
                display_name,
                line,
                col,
                "",
                f"control character U+{_code(exc.character):04X} is not allowed",
            )
        ]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        message = exc.problem or "invalid YAML"
        if exc.context:
            message = f"{exc.context}: {message}"
        if "'\\t'" in message:
            message += " (YAML indentation must use spaces, not tabs)"
        return None, [ConfigProblem(display_name, line, col, "", message)]
    except yaml.YAMLError as exc:
        return None, [ConfigProblem(display_name, 0, 0, "", f"invalid YAML: {exc}")]
    if node is None:
        doc.data = {}
        return doc, problems
    used = substituted if substituted is not None else set()
    builder = _Builder(doc, os.environ if env is None else env, problems, used)
    try:
        doc.data = builder.build(node, ())
    except RecursionError:
        return None, [ConfigProblem(display_name, 0, 0, "", "nested too deeply")]
    except _TooLarge as exc:
        m = _mark(exc.node)
        return None, [
            ConfigProblem(
                display_name,
                m.line,
                m.column,
                "",
                f"document expands to more than {MAX_NODES} nodes (alias bomb?)",
            )
        ]
    return doc, problems


def _code(character: int | str) -> int:
    return character if isinstance(character, int) else ord(character[:1] or "\0")
