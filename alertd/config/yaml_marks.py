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


def substitute_env(text: str, env: Mapping[str, str]) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}``; raise KeyError naming an unset VAR."""

    def repl(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise KeyError(name)

    return _ENV_REF.sub(repl, text)


class _Builder:
    def __init__(self, doc: Document, env: Mapping[str, str], problems: list[ConfigProblem]):
        self.doc = doc
        self.env = env
        self.problems = problems
        self.budget = _Budget()
        self.constructor = yaml.SafeLoader("")

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.budget.left -= 1
        if self.budget.left < 0:
            raise _TooLarge(node)
        self.doc.value_marks.setdefault(path, _mark(node))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[Any, Any]:
        self.constructor.flatten_mapping(node)  # resolve YAML merge keys (<<)
        out: dict[Any, Any] = {}
        first_seen: dict[Any, Mark] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(self.doc.problem(path, "mapping keys must be plain scalars"))
                continue
            key = self.constructor.construct_object(key_node)
            if not isinstance(key, str | int | float | bool) or key is None:
                key = str(key)
            child: Path_ = (*path, key if isinstance(key, str | int) else str(key))
            if key in first_seen:
                first = first_seen[key]
                m = _mark(key_node)
                self.problems.append(
                    ConfigProblem(
                        self.doc.file,
                        m.line,
                        m.column,
                        format_path(child),
                        f"duplicate key (first defined at line {first.line})",
                    )
                )
                continue
            first_seen[key] = _mark(key_node)
            self.doc.key_marks[child] = _mark(key_node)
            out[key] = self.build(value_node, child)
        return out

    def _scalar(self, node: yaml.Node, path: Path_) -> Any:
        value = self.constructor.construct_object(node)
        if isinstance(value, str) and "${" in value:
            try:
                return substitute_env(value, self.env)
            except KeyError as exc:
                self.problems.append(
                    self.doc.problem(path, f"environment variable {exc.args[0]} is not set")
                )
                return ""
        return value


class _TooLarge(Exception):
    def __init__(self, node: yaml.Node) -> None:
        self.node = node


def parse_file(
    path: Path, display_name: str, env: Mapping[str, str] | None = None
) -> tuple[Document | None, list[ConfigProblem]]:
    """Parse one YAML file; return its document (None if unusable) and any problems."""
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
    builder = _Builder(doc, os.environ if env is None else env, problems)
    try:
        doc.data = builder.build(node, ())
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
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        return None, [ConfigProblem(display_name, line, col, "", exc.problem or "bad value")]
    return doc, problems
