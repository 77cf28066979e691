"""What a config means for delivery: each channel's rate limits, the retry settings, and the
links added to a notification as it is committed. Shared by the daemon (which commits
intents) and the delivery worker (which sends them, and commits failovers)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from alertd.board.routes import incident_path
from alertd.clock import Clock
from alertd.config.load import Config
from alertd.model import IncidentState, Notification, Transition
from alertd.notify.acklink import ack_url, make_ack_token
from alertd.notify.delivery import Delivery, DeliverySettings
from alertd.notify.im.limits import DEFAULT_RATE_LIMITS
from alertd.notify.notifier import Notifier
from alertd.notify.ratelimit import Window


def configure(delivery: Delivery, config: Config, notifiers: Mapping[str, Notifier]) -> None:
    """Point ``delivery`` at ``notifiers`` with the limits and settings of ``config``."""
    delivery.notifiers = notifiers
    delivery.limiter.per_channel, delivery.limiter.per_recipient = rate_limits(config)
    delivery.settings = delivery_settings(config)


def delivery_settings(config: Config) -> DeliverySettings:
    d = config.channels.delivery
    return DeliverySettings(
        max_age=d.max_age,
        backoff=d.backoff,
        max_backoff=d.max_backoff,
        send_timeout=d.send_timeout,
        max_in_flight=d.max_in_flight,
    )


def rate_limits(config: Config) -> tuple[dict[str, tuple[Window, ...]], dict[str, float]]:
    """Return each channel's token buckets: its ``rate_limits`` entry if it has one, else its
    provider's documented limits; and the per-recipient limits."""
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
    return per_channel, per_recipient


class Links:
    """The outbox's ``prepare`` hook: add the incident's board page, and a signed, expiring
    acknowledge link to an email about an open incident, when the listener has a public URL
    (and a link secret)."""

    def __init__(self, config: Config, clock: Clock) -> None:
        self.clock = clock
        self.use(config)

    def use(self, config: Config) -> None:
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
