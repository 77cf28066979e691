"""Config shared by the HTTP channels (IM robots, the generic webhook): URL, timeout, secrets.

Validated at the config boundary; no I/O while validating. A webhook URL carries its
credential, so it is a ``SecretStr`` (or ``url_file``) and no validation message quotes it.
Secret files are read once when the notifier is built (``resolve_url``/``resolve_secret``);
the loader has already resolved them against the config directory and checked they exist.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from alertd.config.types import Duration
from alertd.errors import ConfigError, ConfigProblem
from alertd.notify.render import MessageTemplates
from alertd.notify.secret_file import read_secret_file


def check_url(value: str) -> str:
    """Return ``value`` if it is an http(s) URL with a host, written as the provider gives it
    (ASCII, already percent-encoded: it is sent byte for byte, so signatures in it survive).

    Raises ``ValueError`` that never quotes the URL (it holds a token).
    """
    if not value.isascii() or any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError("url must be ASCII without spaces (paste it as the provider gives it)")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("url must be an http:// or https:// URL with a host")
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise ValueError("url has an invalid port") from None
    return value


class HttpChannelConfig(BaseModel):
    """What every HTTP channel has: where to POST, how long to wait, its own templates."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    url: SecretStr | None = None
    url_file: Path | None = None
    timeout: Duration = Field(default=10.0, gt=0)
    template: MessageTemplates | None = None

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_url(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _one_url(self) -> Self:
        if (self.url is None) == (self.url_file is None):
            raise ValueError("set exactly one of url or url_file")
        return self

    def resolve_url(self) -> str:
        """Return the URL, reading ``url_file`` if set; raises ``ConfigError`` naming the file."""
        if self.url is not None:
            return self.url.get_secret_value()
        assert self.url_file is not None  # the model validator saw to it
        text = read_secret_file(self.url_file, "url_file").strip()
        try:
            return check_url(text)
        except ValueError as exc:
            problem = ConfigProblem(str(self.url_file), 0, 0, "url_file", str(exc))
            raise ConfigError([problem]) from None


class SignedHttpChannelConfig(HttpChannelConfig):
    """An HTTP channel that may sign its requests with a shared ``secret``."""

    secret: SecretStr | None = None
    secret_file: Path | None = None

    @model_validator(mode="after")
    def _one_secret(self) -> Self:
        if self.secret is not None and self.secret_file is not None:
            raise ValueError("secret and secret_file are exclusive; set one")
        if self.secret is not None and not self.secret.get_secret_value():
            raise ValueError("secret must not be empty (leave it out to send unsigned)")
        return self

    def resolve_secret(self) -> str | None:
        """Return the signing secret (reading ``secret_file`` if set), ``None`` if unsigned."""
        if self.secret is not None:
            return self.secret.get_secret_value()
        if self.secret_file is None:
            return None
        return read_secret_file(self.secret_file, "secret_file")
