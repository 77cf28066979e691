"""What a person does to an incident: acknowledge, resolve by hand, comment.

Each action is one transaction and leaves a timeline entry naming who and how.
"""

from __future__ import annotations

from alertd.model import Incident, IncidentState
from alertd.notify.outbox import OutboxStore
from alertd.state.incidents import IncidentStore


def acknowledge(
    store: IncidentStore, incident: Incident, who: str, comment: str | None, now: float, how: str
) -> str:
    """Acknowledge ``incident``; return what happened, in words."""
    with store.transaction():
        text, _ = acknowledge_within(store, incident, who, comment, now, how)
    return text


def acknowledge_within(
    store: IncidentStore, incident: Incident, who: str, comment: str | None, now: float, how: str
) -> tuple[str, bool]:
    """``acknowledge`` inside the caller's transaction; also return whether it acknowledged
    (False: the incident was not open, read under the write lock)."""
    incident = store.get(incident.id) or incident  # re-read under the write lock
    if incident.state is IncidentState.ACKNOWLEDGED:
        return (
            f"incident #{incident.id} is already acknowledged by {incident.acknowledged_by}",
            False,
        )
    if incident.state is not IncidentState.OPEN:
        return f"incident #{incident.id} is {incident.state.value}; nothing to acknowledge", False
    store.acknowledge(incident, who, now)
    detail = f"acknowledged via {how}" + (f": {comment}" if comment else "")
    store.add_timeline(incident.id, now, "acknowledged", detail, actor=who)
    # its pages still waiting (a rate limit, a retry) would ask someone to act on it: not sent
    OutboxStore(store.conn).drop_pages(incident.id, who, now)
    return f"incident #{incident.id} acknowledged by {who}", True


def resolve_by_hand(
    store: IncidentStore, incident: Incident, who: str, comment: str | None, now: float, how: str
) -> str:
    """Resolve ``incident`` by hand; return what happened, in words."""
    with store.transaction():
        text, _ = resolve_within(store, incident, who, comment, now, how)
    return text


def resolve_within(
    store: IncidentStore, incident: Incident, who: str, comment: str | None, now: float, how: str
) -> tuple[str, Incident | None]:
    """``resolve_by_hand`` inside the caller's transaction (so what the resolve causes, such
    as its notifications, commits with it); also return the resolved incident, or None."""
    incident = store.get(incident.id) or incident  # re-read under the write lock
    if incident.state is IncidentState.RESOLVED:
        return f"incident #{incident.id} is already resolved", None
    resolved = store.resolve(incident, now, by=who)
    detail = f"resolved by hand via {how}" + (f": {comment}" if comment else "")
    store.add_timeline(incident.id, now, "resolved", detail, actor=who)
    return f"incident #{incident.id} resolved by {who}", resolved


def add_comment(store: IncidentStore, incident: Incident, who: str, text: str, now: float) -> str:
    with store.transaction():
        store.add_timeline(incident.id, now, "comment", text, actor=who)
    return f"comment added to incident #{incident.id}"
