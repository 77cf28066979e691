"""Config model of the generic webhook channel (``type: webhook``).

``url``/``url_file``, ``timeout``, ``template`` as every HTTP channel; ``secret``/
``secret_file`` to sign each request (see ``notify/webhook/notifier.py``); ``headers`` are
extra static request headers (kept as secrets: they often carry ``Authorization``).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import SecretStr, field_validator

from alertd.notify.http_config import SignedHttpChannelConfig

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 field-name
# set by the channel itself; letting config override them would break signing or framing
RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "host",
        "transfer-encoding",
        "connection",
        "idempotency-key",
        "x-alertd-signature",
        "x-alertd-timestamp",
    }
)


class WebhookChannelConfig(SignedHttpChannelConfig):
    """POSTs an Alertmanager-compatible JSON payload (plus an ``incident`` object)."""

    type: Literal["webhook"]
    headers: dict[str, SecretStr] = {}

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, secret in value.items():
            if not _TOKEN.match(name):
                raise ValueError(f"header name {name!r} is not a valid HTTP field name")
            if name.lower() in RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by alertd and cannot be configured")
            text = secret.get_secret_value()
            if any(c in text for c in "\r\n\x00"):
                raise ValueError(f"header {name!r}: value contains a line break")
        return value
