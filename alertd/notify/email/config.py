"""Config model of the email channel (``type: email``): SMTP server, TLS, auth, recipients,
connection reuse and message templates.

Validated at the config boundary by pydantic; no I/O happens while validating. The password
file, if any, is read once when the notifier is built (``resolve_password``), and the
password never appears in ``repr``/``str`` (``SecretStr``).
"""

from __future__ import annotations

from email.utils import getaddresses, parseaddr
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from alertd.config.types import Duration
from alertd.notify.render import MessageTemplates
from alertd.notify.secret_file import read_secret_file

SMTPS_PORT = 465


def check_address(value: str) -> str:
    """Return ``value`` if it looks like ``user@domain`` or ``Name <user@domain>``.

    Raises ``ValueError`` naming the value otherwise (pydantic turns it into a config error).
    """
    if any(c in value for c in "\r\n\x00"):
        raise ValueError(f"{value!r} is not an email address: contains a line break")
    parsed = getaddresses([value])
    addr = parsed[0][1] if len(parsed) == 1 else ""
    local, at, domain = addr.rpartition("@")
    if not (at and local and domain) or any(c.isspace() for c in addr):
        raise ValueError(f"{value!r} is not one email address (want user@domain)")
    return value


def address_spec(value: str) -> str:
    """Return the bare ``user@domain`` of an address that may carry a display name."""
    return parseaddr(value)[1] or value


class EmailChannelConfig(BaseModel):
    """One SMTP channel. An empty ``host`` means "not configured" (sends fail UNCONFIGURED)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)

    type: Literal["email"]
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    tls: bool = False
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    from_: str = Field(alias="from")
    to: list[str] = Field(default_factory=list)
    timeout: Duration = Field(default=10.0, gt=0)
    validate_certs: bool = True
    cafile: Path | None = None
    subject_prefix: str = ""
    # the channel's own subject/text/html templates (sandboxed, compiled when validated)
    template: MessageTemplates | None = None
    # SMTP sessions kept open and reused; sends beyond that many wait for a free one
    connections: int = Field(default=1, ge=1, le=16)
    # seconds an unused session stays open before it is closed with QUIT
    idle_timeout: Duration = Field(default=30.0, gt=0)

    @field_validator("from_")
    @classmethod
    def _check_from(cls, value: str) -> str:
        return check_address(value)

    @field_validator("to")
    @classmethod
    def _check_to(cls, value: list[str]) -> list[str]:
        return [check_address(v) for v in value]

    @field_validator("subject_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if "\r" in value or "\n" in value:
            raise ValueError("must be a single line")
        return value

    @model_validator(mode="after")
    def _check_combinations(self) -> EmailChannelConfig:
        if self.tls:
            if "starttls" in self.model_fields_set and self.starttls:
                raise ValueError(
                    "tls (implicit TLS, usually port 465) and starttls are exclusive;"
                    " set one to false"
                )
            # starttls defaults to true; implicit TLS turns that default off.
            self.starttls = False
            if "port" not in self.model_fields_set:
                self.port = SMTPS_PORT
        if self.password is not None and self.password_file is not None:
            raise ValueError("password and password_file are exclusive; set one")
        has_secret = self.password is not None or self.password_file is not None
        if has_secret and not self.username:
            raise ValueError("password/password_file needs username")
        if self.username and not has_secret:
            raise ValueError("username needs password or password_file")
        return self

    @property
    def configured(self) -> bool:
        """Whether a server is set; an unconfigured channel is kept but cannot send."""
        return bool(self.host.strip())

    @property
    def from_domain(self) -> str:
        """Return the domain of the ``from`` address (used for Message-ID)."""
        return address_spec(self.from_).rpartition("@")[2]

    def resolve_password(self) -> str | None:
        """Return the password, reading ``password_file`` if set (trailing newline stripped).

        Called once when the notifier is built. Raises ``ConfigError`` naming the file if it
        cannot be read or is empty; the message never contains the file's content.
        """
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file is None:
            return None
        return read_secret_file(self.password_file, "password_file")
