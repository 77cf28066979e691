"""Schema of ``server.yaml`` (optional): the HTTP listener's public face and its API tokens.

``public_url`` is how people and providers reach the daemon (links in notifications, the URL
Twilio signs); ``tokens`` are bearer tokens stored as SHA-256 hashes, never in plain text,
each with scopes: ``read``, ``respond`` (ack/resolve/comment), ``admin`` (maintenance,
silences, reload) and ``ingest`` (``POST /api/v2/alerts``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from alertd.config.types import Duration, StrictModel
from alertd.errors import ConfigError, ConfigProblem
from alertd.notify.secret_file import read_secret_bytes

Scope = Literal["read", "respond", "admin", "ingest"]

# bytes of the acknowledge links' signing secret: anyone who guesses it acknowledges anything
LINK_SECRET_MIN = 16
_SHORT_SECRET = (
    f"a link secret needs at least {LINK_SECRET_MIN} bytes "
    "(e.g. `head -c 32 /dev/urandom | base64 > links.key`)"
)


class ApiToken(StrictModel):
    """One bearer token: ``sha256`` is the hex SHA-256 of the token (``alertd token hash``)."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: list[Scope] = Field(min_length=1)


class IngestSettings(StrictModel):
    """``POST /api/v2/alerts``: alerts pushed by Prometheus (Alertmanager's v2 API)."""

    resolve_timeout: Duration = Field(default=300.0, gt=0)  # an alert without endsAt lasts this
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_alerts: int = Field(default=10_000, ge=1)
    default_level: Literal["critical", "major", "minor"] = "major"  # no/unknown severity
    # a POST waits (at most backpressure_max_wait) while more notifications than this are due
    # and unsent: in a storm the CPU goes to sending (ingest/backpressure.py); 0 = never wait
    backpressure_backlog: int = Field(default=500, ge=0)
    backpressure_max_wait: Duration = Field(default=0.5, ge=0, le=5)


class RetentionSettings(StrictModel):
    """How long alertd keeps what is finished (the state database would grow for good)."""

    # resolved incidents, with their timelines, alerts and notifications; at least the 30
    # days the KPIs (MTTA, MTTR) look back over. Open ones are kept however old.
    incidents: Duration = 365 * 86400.0
    # each finished notification's row and attempts (the timeline keeps what became of it)
    notifications: Duration = 30 * 86400.0
    # device events (`alertd events`: traps, SNMP reboots)
    events: Duration = 30 * 86400.0

    @field_validator("incidents")
    @classmethod
    def _kpis_window(cls, value: float) -> float:
        if value < 30 * 86400.0:
            raise ValueError("keep them at least 30d: the KPIs (MTTA, MTTR) look back 30 days")
        return value

    @field_validator("notifications")
    @classmethod
    def _within_incidents(cls, value: float, info: ValidationInfo) -> float:
        if value < 86400.0:
            raise ValueError("keep them at least 1d")
        incidents = info.data.get("incidents")
        if incidents is not None and value > incidents:
            raise ValueError("keep them no longer than incidents (their timelines go then)")
        return value

    @field_validator("events")
    @classmethod
    def _an_hour_at_least(cls, value: float) -> float:
        if value < 3600.0:
            raise ValueError("keep them at least 1h")
        return value


class TlsSettings(StrictModel):
    """Serve HTTPS: a PEM certificate (chain) and its key, paths relative to the config dir."""

    cert_file: Path
    key_file: Path


class ServerFile(StrictModel):
    public_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    # signs the acknowledge links in emails; links need both this and public_url
    link_secret: SecretStr | None = None
    link_secret_file: Path | None = None
    ack_link_valid_for: Duration = Field(default=86400.0, gt=0)
    tokens: dict[str, ApiToken] = {}
    tls: TlsSettings | None = None  # read at start; a change needs a restart
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)

    @model_validator(mode="after")
    def _one_secret(self) -> Self:
        if self.link_secret is not None and self.link_secret_file is not None:
            raise ValueError("link_secret and link_secret_file are exclusive; set one")
        return self

    @property
    def base_url(self) -> str:
        return (self.public_url or "").rstrip("/")

    def read_link_secret(self) -> bytes | None:
        """Return the link-signing secret (the file's content without a trailing newline).

        Raises ``ConfigError`` naming the file if it cannot be read or is shorter than
        ``LINK_SECRET_MIN`` bytes (an empty one turned acknowledge links off without a
        word: user test); the message never contains the secret."""
        if self.link_secret is not None:
            return self.link_secret.get_secret_value().encode()
        if self.link_secret_file is None:
            return None
        data = read_secret_bytes(self.link_secret_file, "link_secret_file")
        if len(data) < LINK_SECRET_MIN:
            why = f"{_SHORT_SECRET} (it has {len(data)})"
            raise ConfigError([ConfigProblem(str(self.link_secret_file), 0, 0, "", why)])
        return data

    @field_validator("link_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < LINK_SECRET_MIN:
            raise ValueError(_SHORT_SECRET)
        return value


def reload_warnings(old: ServerFile, new: ServerFile) -> list[str]:
    """What a reload from ``old`` to ``new`` changes that an admin may not mean, or that
    waits for a restart (user test: a truncated server.yaml opened the API without a word)."""
    warnings = []
    if old.tokens and not new.tokens:
        warnings.append(
            "server.yaml has no API tokens any more: the API, the board and /-/reload are "
            "open to anyone who reaches the listener"
        )
    links = (old.public_url, old.link_secret or old.link_secret_file)
    if all(links) and not (new.public_url and (new.link_secret or new.link_secret_file)):
        warnings.append(
            "acknowledge links are off now (no public_url or link secret): links already "
            "sent answer 404"
        )
    if old.tls != new.tls:
        warnings.append("tls changed: the listener keeps its certificate until a restart")
    return warnings
