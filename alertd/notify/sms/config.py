"""Config model of the SMS channel (``type: sms``): Twilio account, sender, callbacks, length.

Validated at the config boundary by pydantic; no I/O happens while validating. The auth token
file, if any, is read once when the notifier is built (``resolve_auth_token``), and the token
never appears in ``repr``/``str`` (``SecretStr``). A channel without ``account_sid`` is kept but
"not configured": the registry logs its notifications instead of sending them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from alertd.config.types import Duration
from alertd.notify.render import MessageTemplates
from alertd.notify.secret_file import read_secret_file

TWILIO_API = "https://api.twilio.com"
# E.164 as team members' phones are checked (config/channels.py Member.phone)
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")


def _check_http_url(value: str, what: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL with a host ({what})")
    if any(c.isspace() for c in value):
        raise ValueError(f"{value!r} contains whitespace ({what})")
    return value


class SmsChannelConfig(BaseModel):
    """One Twilio SMS channel; each notification goes to its one recipient's phone."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)

    type: Literal["sms"]
    account_sid: str = ""
    auth_token: SecretStr | None = None
    auth_token_file: Path | None = None
    from_: str | None = Field(default=None, alias="from")
    messaging_service_sid: str | None = None
    api_base_url: str = TWILIO_API
    # where Twilio posts delivery status: usually the daemon's public URL + /hooks/twilio/status
    status_callback_url: str | None = None
    timeout: Duration = Field(default=10.0, gt=0)
    # 10 segments of 153 GSM-7 characters stay within Twilio's 1600-character body limit
    max_segments: int = Field(default=3, ge=1, le=10)
    template: MessageTemplates | None = None

    @field_validator("account_sid")
    @classmethod
    def _check_account_sid(cls, value: str) -> str:
        if value and not _ACCOUNT_SID.match(value):
            raise ValueError(f"{value!r} is not a Twilio Account SID (AC + 32 hex digits)")
        return value

    @field_validator("from_")
    @classmethod
    def _check_from(cls, value: str | None) -> str | None:
        if value is not None and not E164.match(value):
            raise ValueError(f"{value!r} is not a phone number in E.164 form (+15017122661)")
        return value

    @field_validator("messaging_service_sid")
    @classmethod
    def _check_service_sid(cls, value: str | None) -> str | None:
        if value is not None and not _SERVICE_SID.match(value):
            raise ValueError(f"{value!r} is not a Messaging Service SID (MG + 32 hex digits)")
        return value

    @field_validator("api_base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        _check_http_url(value, "api_base_url")
        if urlsplit(value).query:
            raise ValueError(f"{value!r} has a query string (api_base_url)")
        return value.rstrip("/")

    @field_validator("status_callback_url")
    @classmethod
    def _check_callback(cls, value: str | None) -> str | None:
        return None if value is None else _check_http_url(value, "status_callback_url")

    @model_validator(mode="after")
    def _check_combinations(self) -> SmsChannelConfig:
        if self.auth_token is not None and self.auth_token_file is not None:
            raise ValueError("auth_token and auth_token_file are exclusive; set one")
        has_secret = self.auth_token is not None or self.auth_token_file is not None
        if has_secret and not self.account_sid:
            raise ValueError("auth_token/auth_token_file needs account_sid")
        if self.account_sid and not has_secret:
            raise ValueError("account_sid needs auth_token or auth_token_file")
        if self.account_sid and self.from_ is None and self.messaging_service_sid is None:
            raise ValueError("set from (a Twilio number) or messaging_service_sid")
        return self

    @property
    def configured(self) -> bool:
        """Whether credentials are set; an unconfigured channel is kept but cannot send."""
        return bool(self.account_sid)

    def resolve_auth_token(self) -> str | None:
        """Return the auth token, reading ``auth_token_file`` if set (trailing newline stripped).

        Called once when the notifier is built. Raises ``ConfigError`` naming the file if it
        cannot be read or is empty; the message never contains the file's content.
        """
        if self.auth_token is not None:
            return self.auth_token.get_secret_value()
        if self.auth_token_file is None:
            return None
        return read_secret_file(self.auth_token_file, "auth_token_file")
