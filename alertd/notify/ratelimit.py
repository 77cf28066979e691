"""Rate limits per channel and per recipient, with digests instead of drops.

A token bucket per channel (and per channel + recipient) caps how fast notifications go out,
so a storm never trips a provider's block or buries a person. What exceeds it is held and
sent later as one digest ("and 37 more"), never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from alertd.model import Notification


@dataclass(slots=True)
class Bucket:
    """``rate`` tokens a second, at most ``burst`` saved up."""

    rate: float
    burst: float
    tokens: float = -1.0
    at: float = 0.0

    def take(self, now: float) -> bool:
        if self.tokens < 0:  # a new bucket starts full
            self.tokens, self.at = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def peek(self, now: float) -> bool:
        if self.tokens < 0:
            return True
        return min(self.burst, self.tokens + (now - self.at) * self.rate) >= 1


@dataclass(slots=True)
class Limiter:
    """The buckets of every channel and recipient, and what waits for a digest."""

    per_channel: dict[str, float]  # channel -> notifications per minute
    per_recipient: dict[str, float]  # channel -> notifications per minute per recipient
    buckets: dict[tuple[str, str], Bucket] = field(default_factory=dict)
    held: dict[str, list[Notification]] = field(default_factory=dict)

    def _bucket(self, channel: str, who: str, per_minute: float) -> Bucket:
        key = (channel, who)
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = Bucket(per_minute / 60.0, max(1.0, per_minute))
        return bucket

    def _buckets_for(self, n: Notification) -> list[Bucket]:
        out = []
        if (limit := self.per_channel.get(n.channel)) is not None:
            out.append(self._bucket(n.channel, "", limit))
        if (limit := self.per_recipient.get(n.channel)) is not None:
            out += [self._bucket(n.channel, r, limit) for r in n.recipients]
        return out

    def admit(self, n: Notification, now: float) -> bool:
        """Take a token for ``n`` now, or hold it for the next digest and return False."""
        buckets = self._buckets_for(n)
        if self.held.get(n.channel) or not all(b.peek(now) for b in buckets):
            self.held.setdefault(n.channel, []).append(n)  # keep order: behind earlier ones
            return False
        for b in buckets:
            b.take(now)
        return True

    def digests(self, now: float) -> list[tuple[Notification, list[Notification]]]:
        """Return (digest, the notifications it stands for) for channels with a token free."""
        out = []
        for channel, waiting in list(self.held.items()):
            if not waiting:
                continue
            recipients = tuple(dict.fromkeys(r for n in waiting for r in n.recipients))
            probe = waiting[-1]
            digest = Notification(
                incident=probe.incident,
                transition=probe.transition,
                channel=channel,
                recipients=recipients,
                key=f"digest.{channel}.{now:.3f}",
                digest=tuple(_line(n) for n in waiting),
            )
            buckets = self._buckets_for(digest)
            if not all(b.peek(now) for b in buckets):
                continue
            for b in buckets:
                b.take(now)
            out.append((digest, waiting))
            self.held[channel] = []
        return out


def _line(n: Notification) -> str:
    i = n.incident
    return f"#{i.id} [{i.priority}] {n.transition.value} {i.level.label}: {i.summary}"
