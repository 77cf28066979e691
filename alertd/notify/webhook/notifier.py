"""The generic webhook channel: one JSON POST per notification, optionally HMAC-signed.

The body follows Alertmanager's webhook payload (``version: "4"``, ``status``, ``receiver`` =
the channel name, ``groupKey`` = the incident's fingerprint, ``alerts[]`` with ``labels``,
``annotations``, ``startsAt``, ``endsAt``, ``fingerprint``), so receivers written for
Alertmanager work unchanged, plus an ``incident`` object (id, priority, level, state, summary,
url, transition, ...). Headers:

``Idempotency-Key: <key>``
    the notification's idempotency key, the same on every retry: a receiver drops repeats.
``X-Alertd-Timestamp: <t>`` and ``X-Alertd-Signature: sha256=<hex>``, when a secret is set
    ``t`` is the Unix time in whole seconds when the request was signed, and ``<hex>`` is the
    lowercase hex HMAC-SHA256 with the secret (UTF-8) as key over the bytes
    ``f"{t}.".encode() + raw_body``: the timestamp, a dot, then the body exactly as received.
    A receiver recomputes it over the raw body before parsing it, compares with
    ``hmac.compare_digest``, and rejects timestamps older than a few minutes (replays).

Each send renders once, serialises once and logs nothing above DEBUG: a notification storm
must not be slowed down by its own channel.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

from alertd import compact_json
from alertd.board.paths import incident_path
from alertd.ingest.external import EXTERNAL_METRIC
from alertd.model import AlertEntry, Notification, Transition
from alertd.notify import render
from alertd.notify.alert_entries import entries_of
from alertd.notify.http import JSON_HEADERS, HttpClient
from alertd.notify.webhook.config import WebhookChannelConfig

GO_ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt of a firing alert
MAX_ALERTS = 1000  # alerts[] entries in one body; the rest are counted in truncatedAlerts
KEEP_PATH = 1  # path segments shown in messages; the rest may be a token (/hooks/<id>/<token>)

# ``notification_reason`` is Alertmanager's enum, which receivers switch on: "unknown" where it
# has no word for the transition (a new firing after a resolve is a first notification there)
_AM_REASONS = {
    Transition.OPENED: "first notification",
    Transition.REOPENED: "first notification",
    Transition.RESOLVED: "all alerts resolved",
    Transition.REPEAT: "repeat interval elapsed",
}
# ``incident.reason``: what happened, in alertd's words, for every transition
_REASONS = {
    Transition.OPENED: "first notification",
    Transition.REOPENED: "fires again soon after it resolved",
    Transition.LEVEL_CHANGED: "level changed",
    Transition.RESOLVED: "all alerts resolved",
    Transition.ESCALATED: "escalated to the next tier",
    Transition.FLAPPING_START: "flapping",
    Transition.FLAPPING_STOP: "no longer flapping",
    Transition.REPEAT: "repeat interval elapsed",
    Transition.GROUP_CHANGED: "alerts joined or left the group",
    Transition.TEST: "test message",
}


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Return the ``X-Alertd-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def payload(n: Notification, receiver: str, message: str = "") -> dict[str, Any]:
    """Return the webhook body for ``n`` sent by channel ``receiver``; ``message`` is the
    rendered short text."""
    inc = n.incident
    entries = entries_of(n)
    # as Alertmanager's: firing while any of its alerts fires
    status = "firing" if any(e.status == "firing" for e in entries) else "resolved"
    # a rule's alert links to its incident page; a pushed one keeps what Prometheus sent,
    # "" when it sent none, as Alertmanager does
    source = "" if inc.metric == EXTERNAL_METRIC else n.url
    alerts = [_alert(e, source) for e in entries[:MAX_ALERTS]]
    labels = _common([a["labels"] for a in alerts])
    annotations = _common([a["annotations"] for a in alerts])
    grouped = bool(n.entries) and not n.digest  # a grouped incident's labels are its group's
    return {
        "version": "4",
        "groupKey": inc.fingerprint or str(inc.id),
        "truncatedAlerts": len(entries) - len(alerts) + n.more_alerts,
        "status": status,
        "receiver": receiver,
        "groupLabels": dict(inc.labels) if grouped else {},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": _external_url(n),
        "notification_reason": _AM_REASONS.get(n.transition, "unknown"),
        "alerts": alerts,
        "incident": {
            "id": inc.id,
            "fingerprint": inc.fingerprint,
            "priority": inc.priority,
            "level": inc.level.label,
            "previous_level": n.previous_level.label if n.previous_level else None,
            "state": inc.state.value,
            "summary": inc.summary,
            "value": inc.value,
            "rule": inc.rule,
            "metric": inc.metric,
            "url": n.url,
            "transition": n.transition.value,
            "reason": (
                f"resolved by hand by {inc.resolved_by}"
                if n.transition is Transition.RESOLVED and inc.resolved_by
                else _REASONS[n.transition]
            ),
            "opened_at": render.format_ts(inc.opened_at),
            "acknowledged_by": inc.acknowledged_by,
            "resolved_at": render.format_ts(inc.resolved_at),
            "resolved_by": inc.resolved_by,  # by hand; None: its source recovered
            "team": n.team,
            "recipients": list(n.recipients),
            "message": message,
            "alerts": list(n.alerts),  # a grouped incident's members, one line each
            "alerts_total": n.alert_count,  # ``alerts`` lists the first CARRIED_MAX
            "digest": list(n.digest),  # what a rate limit held back, one line each
            "key": n.key,
        },
    }


def _external_url(n: Notification) -> str:
    """alertd's public URL, as Alertmanager gives its own: the incident link without the
    incident's path ("" without ``server.public_url``, as the link is)."""
    return n.url.removesuffix(incident_path(n.incident.id))


def _alert(e: AlertEntry, url: str) -> dict[str, Any]:
    return {
        "status": e.status,
        "labels": dict(e.labels),
        "annotations": dict(e.annotations),
        "startsAt": render.format_ts(e.starts_at),
        "endsAt": GO_ZERO_TIME if e.ends_at is None else render.format_ts(e.ends_at),
        "generatorURL": e.generator_url or url,
        "fingerprint": e.fingerprint,
    }


def _common(mappings: list[dict[str, str]]) -> dict[str, str]:
    """The pairs every one of ``mappings`` has (Alertmanager's commonLabels)."""
    first, *rest = mappings
    if not rest:  # one alert (nearly every notification): all of it, a copy
        return dict(first)
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in rest)}


class WebhookNotifier:
    """A ``Notifier`` posting the JSON payload to one URL over a kept-alive connection pool."""

    def __init__(
        self, name: str, config: WebhookChannelConfig, *, wall: Callable[[], float] = time.time
    ) -> None:
        """Build the channel; reads ``url_file``/``secret_file`` now (``ConfigError`` if
        unreadable). ``wall`` reads wall-clock time (the signature timestamp)."""
        self.name = name
        self._template = config.template
        self._wall = wall
        self._secret = config.resolve_secret()
        extra = {k: v.get_secret_value() for k, v in config.headers.items()}
        self._headers = {**JSON_HEADERS, **extra}
        self._http = HttpClient(
            config.resolve_url(),
            timeout=config.timeout,
            keep_path=KEEP_PATH,
            secrets=[s for s in (self._secret, *extra.values()) if s],
            wall=wall,
        )

    def __repr__(self) -> str:
        return f"WebhookNotifier(name={self.name!r}, url={self._http.shown!r})"

    async def send(self, notification: Notification) -> None:
        """POST ``notification`` or raise ``NotifyError``; any 2xx is success."""
        what = f"webhook {self.name} incident #{notification.incident.id}"
        message = render.short_text(notification, self._template)
        body = compact_json.dumps_bytes(payload(notification, self.name, message))
        headers = dict(self._headers)
        if notification.key:
            headers["Idempotency-Key"] = notification.key
        if self._secret is not None:
            timestamp = str(int(self._wall()))
            headers["X-Alertd-Timestamp"] = timestamp
            headers["X-Alertd-Signature"] = signature(self._secret, timestamp, body)
        resp = await self._http.post(what, body, headers)
        if not resp.ok:
            raise self._http.status_error(what, resp)

    async def close(self) -> None:
        """Close the channel's connections."""
        await self._http.close()
