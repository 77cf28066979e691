"""What a config means for delivery: each channel's rate limits, the retry settings, and the
links added to a notification as it is committed. Shared by the daemon (which commits
intents) and the delivery worker (which sends them, and commits failovers).

Delivery needs two of the config's files: ``channels.yaml`` and ``server.yaml``. The daemon
hands the worker exactly what it accepted (``WorkerConfig.to_line``), never a path to
files that may have changed since."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from enum import Enum
from pathlib import PurePath
from typing import Protocol
from urllib.parse import urlsplit

from pydantic import SecretBytes, SecretStr

from alertd.board.paths import incident_path
from alertd.clock import Clock
from alertd.config.channels import ChannelsFile
from alertd.config.server import ServerFile
from alertd.errors import ConfigError
from alertd.model import IncidentState, Notification, Transition
from alertd.notify.acklink import ack_url, make_ack_token
from alertd.notify.delivery import Delivery, DeliverySettings
from alertd.notify.http_config import HttpChannelConfig
from alertd.notify.im.limits import DEFAULT_RATE_LIMITS
from alertd.notify.notifier import Notifier
from alertd.notify.ratelimit import Window


class HasDeliveryConfig(Protocol):
    """What delivery reads of a config: the daemon's whole ``Config`` or a ``WorkerConfig``."""

    @property
    def channels(self) -> ChannelsFile: ...

    @property
    def server(self) -> ServerFile: ...


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """The parts of an accepted config the delivery worker needs, as sent over its pipe."""

    channels: ChannelsFile
    server: ServerFile

    @staticmethod
    def to_line(config: HasDeliveryConfig) -> bytes:
        """One JSON line for the worker's stdin (JSON escapes every newline). Secrets go as
        they are (the worker needs them; ``model_dump_json`` would mask them): the pipe is
        the only place they travel, nothing is written to disk."""
        message = {
            "config": {
                "channels": config.channels.model_dump(mode="python"),
                "server": config.server.model_dump(mode="python"),
            }
        }
        return json.dumps(message, default=_plain, separators=(",", ":")).encode() + b"\n"

    @classmethod
    def from_message(cls, message: Mapping[str, object]) -> WorkerConfig:
        """Read a ``to_line`` message's ``config`` (validated again, as JSON)."""
        parts = message["config"]
        if not isinstance(parts, dict):
            raise ValueError("config: not an object")
        return cls(
            ChannelsFile.model_validate_json(json.dumps(parts["channels"])),
            ServerFile.model_validate_json(json.dumps(parts["server"])),
        )


def _plain(value: object) -> object:
    """JSON for what a python-mode model dump holds beyond JSON's own types."""
    if isinstance(value, SecretStr | SecretBytes):
        secret = value.get_secret_value()
        return secret.decode() if isinstance(secret, bytes) else secret
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot send a {type(value).__name__} to the delivery worker")


def configure(
    delivery: Delivery, config: HasDeliveryConfig, notifiers: Mapping[str, Notifier]
) -> None:
    """Point ``delivery`` at ``notifiers`` with the limits and settings of ``config``."""
    delivery.channels_removed(delivery.notifiers, notifiers)
    delivery.notifiers = notifiers
    shared = shared_destinations(config)
    delivery.limiter.per_channel, delivery.limiter.per_recipient = rate_limits(config, shared)
    delivery.limiter.shared = shared
    delivery.settings = delivery_settings(config)


def delivery_settings(config: HasDeliveryConfig) -> DeliverySettings:
    d = config.channels.delivery
    return DeliverySettings(
        max_age=d.max_age,
        backoff=d.backoff,
        max_backoff=d.max_backoff,
        send_timeout=d.send_timeout,
        max_in_flight=d.max_in_flight,
    )


def rate_limits(
    config: HasDeliveryConfig, shared: Mapping[str, str] | None = None
) -> tuple[dict[str, tuple[Window, ...]], dict[str, float]]:
    """Return each channel's token buckets: its ``rate_limits`` entry if it has one, else its
    provider's documented limits; and the per-recipient limits. Channels that ``shared``
    counts as another (one robot) add their windows to that one's, so the strictest of
    them holds (user test: only the first name's limit counted, the others' were ignored)."""
    per_channel: dict[str, tuple[Window, ...]] = {}
    per_recipient: dict[str, float] = {}
    configured = config.channels.rate_limits
    for name, channel in config.channels.channels.items():
        limit = configured.get(name)
        if limit is None:
            if defaults := DEFAULT_RATE_LIMITS.get(channel.type, ()):
                per_channel[name] = defaults
            continue
        windows: list[Window] = []
        if limit.per_second:
            windows.append((limit.per_second, 1.0))
        if limit.per_minute:
            windows.append((limit.per_minute, 60.0))
        # only a per-recipient limit: the provider's own limit still applies to the channel
        per_channel[name] = tuple(windows) or DEFAULT_RATE_LIMITS.get(channel.type, ())
        if limit.per_recipient_per_minute:
            per_recipient[name] = limit.per_recipient_per_minute
    for name, counted_as in (shared or {}).items():
        both = (*per_channel.get(counted_as, ()), *per_channel.get(name, ()))
        per_channel[counted_as] = tuple(dict.fromkeys(both))
    return per_channel, per_recipient


def shared_destinations(config: HasDeliveryConfig) -> dict[str, str]:
    """Return, for each channel posting to the same URL (robot) as an earlier one in name
    order, that earlier channel: its rate limit counts them together, as the provider does
    (a text and a markdown channel to one DingTalk group are one robot's 20 a minute)."""
    first_by_url: dict[str, str] = {}
    shared: dict[str, str] = {}
    for name in sorted(config.channels.channels):
        channel = config.channels.channels[name]
        if not isinstance(channel, HttpChannelConfig):
            continue
        try:
            url = channel.resolve_url()
        except ConfigError:  # unreadable now: its notifier reports it; counted on its own
            continue
        first = first_by_url.setdefault(_robot(url), name)
        if first != name:
            shared[name] = first
    return shared


def _robot(url: str) -> str:
    """What names the robot a URL posts to: the URL, however its host's case, its default
    port or the order of its query are written (not the path alone: two receivers on other
    hosts may well both be ``/hook``, verification finding)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    query = "&".join(sorted(parts.query.split("&")))
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}{parts.path}?{query}"


class Links:
    """The outbox's ``prepare`` hook: add the incident's board page, and a signed, expiring
    acknowledge link to an email about an open incident, when the listener has a public URL
    (and a link secret)."""

    def __init__(self, config: HasDeliveryConfig, clock: Clock) -> None:
        self.clock = clock
        self.use(config)

    def use(self, config: HasDeliveryConfig) -> None:
        """Follow a (re)loaded config."""
        self.config = config
        self.secret = config.server.read_link_secret()

    def __call__(self, n: Notification) -> Notification:
        server = self.config.server
        if not server.public_url:
            return n
        n = replace(n, url=server.base_url + incident_path(n.incident.id))
        channel = self.config.channels.channels.get(n.channel)
        if (
            not self.secret
            or channel is None
            or channel.type != "email"
            or n.incident.state is not IncidentState.OPEN
            or n.transition is Transition.RESOLVED
        ):
            return n
        expires = int(self.clock.now() + server.ack_link_valid_for)
        token = make_ack_token(self.secret, n.incident.id, expires)
        return replace(n, ack_url=ack_url(server.base_url, token))
