"""Reading a channel's secret from a file (``password_file``, ``auth_token_file``, ...)."""

from __future__ import annotations

from pathlib import Path

from alertd.errors import ConfigError, ConfigProblem


def read_secret_file(path: Path, field: str) -> str:
    """Return the content of a secret file without its trailing newline.

    Raises ``ConfigError`` naming the file if it cannot be read or is empty; the message
    never contains the file's content.
    """
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = (exc.strerror or str(exc)) if isinstance(exc, OSError) else "not UTF-8"
        raise ConfigError([ConfigProblem(where, 0, 0, field, f"cannot read: {reason}")]) from exc
    text = text.removesuffix("\n").removesuffix("\r")
    if not text.strip():  # spaces alone are as empty (verification finding)
        raise ConfigError([ConfigProblem(where, 0, 0, field, "file is empty")])
    return text
