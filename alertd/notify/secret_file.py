"""Reading a channel's secret from a file (``password_file``, ``auth_token_file``, ...)."""

from __future__ import annotations

from pathlib import Path

from alertd.errors import ConfigError, ConfigProblem


def read_secret_bytes(path: Path, field: str) -> bytes:
    """Return the content of a secret file without its trailing newline.

    Raises ``ConfigError`` naming the file if it cannot be read or is empty (spaces alone
    count as empty: a verification finding); the message never contains the content.
    """
    where = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError([ConfigProblem(where, 0, 0, field, f"cannot read: {reason}")]) from exc
    data = data.removesuffix(b"\n").removesuffix(b"\r")
    if not data.strip():
        raise ConfigError([ConfigProblem(where, 0, 0, field, "file is empty")])
    return data


def read_secret_file(path: Path, field: str) -> str:
    """``read_secret_bytes`` as text (UTF-8)."""
    data = read_secret_bytes(path, field)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(
            [ConfigProblem(str(path), 0, 0, field, "cannot read: not UTF-8")]
        ) from None
