"""Pages waiting for a channel that a reload took away go where the current config sends
the same news: a renamed or replaced channel takes them over; a channel just dropped leaves
them with the team's other channels, which had them already."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry

from alertd.clock import FakeClock
from alertd.config.channels import ChannelsFile
from alertd.incidents.routing import fallbacks_for, notifications_for, reroute_for
from alertd.metrics import Metrics
from alertd.model import Incident, Notification, Transition
from alertd.notify.configure import configure
from alertd.notify.delivery import Delivery
from alertd.notify.outbox import OutboxStore
from tests.open_incidents import open_incidents
from tests.unit.test_outbox import Channel, attempts, timeline

PEOPLE = [
    {"name": "Wang", "email": "wang@example.com", "phone": "+8613800000001"},
    {"name": "Li", "email": "li@example.com", "phone": "+8613800000002"},
]


def channels_file(ops_channels: list[str], **extra: Any) -> ChannelsFile:
    return ChannelsFile.model_validate(
        {
            "channels": {
                "chat-old": {"type": "log"},
                "chat-new": {"type": "log"},
                "mail": {
                    "type": "email",
                    "host": "127.0.0.1",
                    "from": "alertd@example.com",
                    "starttls": False,
                },
                "oncall-log": {"type": "log"},
            },
            "teams": {
                "ops": {"members": PEOPLE, "channels": ops_channels},
                "dba": {"members": PEOPLE[:1], "channels": ["mail"]},
            },
            "routes": [{"notify": ["ops"]}],
            **extra,
        }
    )


def without(config: ChannelsFile, channel: str) -> ChannelsFile:
    """``config`` as a reload that removed ``channel`` (and every team's use of it) has it."""
    data = config.model_dump(by_alias=True, exclude_unset=True)
    del data["channels"][channel]
    for team in data["teams"].values():
        team["channels"] = [c for c in team["channels"] if c != channel]
    return ChannelsFile.model_validate(data)


def the_page(incident: Incident, config: ChannelsFile, channel: str) -> Notification:
    pages = notifications_for(incident, Transition.OPENED, config, 1000.0)
    return next(n for n in pages if n.channel == channel)


def test_a_replaced_channel_takes_over_its_pages(db) -> None:  # type: ignore[no-untyped-def]
    (incident,) = open_incidents(db, 1)
    before = channels_file(["chat-old", "mail"])
    after = without(channels_file(["chat-new", "mail"]), "chat-old")
    page = the_page(incident, before, "chat-old")
    (moved,) = reroute_for(page, after, told={"chat-old", "mail"})
    assert moved.channel == "chat-new"
    assert moved.team == "ops"
    assert moved.incident == page.incident
    assert (moved.transition, moved.key) == (page.transition, page.key)


def test_a_channel_just_dropped_leaves_its_pages_to_the_teams_other_channels(db) -> None:  # type: ignore[no-untyped-def]
    (incident,) = open_incidents(db, 1)
    before = channels_file(["chat-old", "mail"])
    page = the_page(incident, before, "chat-old")
    assert reroute_for(page, without(before, "chat-old"), told={"chat-old", "mail"}) == []


def test_a_rerouted_page_is_addressed_to_the_teams_members_on_the_new_channel(db) -> None:  # type: ignore[no-untyped-def]
    (incident,) = open_incidents(db, 1)
    before = channels_file(["chat-old"])
    after = without(channels_file(["mail"]), "chat-old")
    page = the_page(incident, before, "chat-old")
    assert page.recipients == ()  # a log channel has no addresses
    (moved,) = reroute_for(page, after, told={"chat-old"})
    assert moved.channel == "mail"
    assert moved.recipients == ("wang@example.com", "li@example.com")


def test_a_page_whose_team_is_gone_too_follows_the_current_routes(db) -> None:  # type: ignore[no-untyped-def]
    (incident,) = open_incidents(db, 1)
    before = channels_file(["chat-old"])
    after = without(channels_file(["chat-new"], routes=[{"notify": ["dba"]}]), "chat-old")
    page = replace(the_page(incident, before, "chat-old"), team="nightshift")
    (moved,) = reroute_for(page, after, told={"chat-old"})
    assert (moved.channel, moved.team, moved.recipients) == ("mail", "dba", ("wang@example.com",))


def test_a_configured_channel_still_fails_over_by_its_failover_entry(db) -> None:  # type: ignore[no-untyped-def]
    (incident,) = open_incidents(db, 1)
    config = channels_file(["mail"], failover={"mail": "oncall-log"})
    page = the_page(incident, config, "mail")

    def told(n: Notification) -> set[str]:
        raise AssertionError("only a removed channel's page asks where its news went")

    (fallback,) = fallbacks_for(page, page.recipients, "550", config, told)
    assert fallback.channel == "oncall-log"


def test_the_store_tells_which_channels_the_same_news_went_to(db) -> None:  # type: ignore[no-untyped-def]
    first, second = open_incidents(db, 2)
    config = channels_file(["chat-old", "mail"])
    store = OutboxStore(db)
    with store.transaction():
        store.enqueue(notifications_for(first, Transition.OPENED, config, 1000.0), 1000.0)
        store.enqueue(notifications_for(second, Transition.OPENED, config, 1000.0), 1000.0)
    with store.transaction():  # later news of the first incident: another commit
        store.enqueue(notifications_for(first, Transition.RESOLVED, config, 1010.0)[:1], 1010.0)
    page = the_page(first, config, "chat-old")
    assert store.channels_told(page) == {"chat-old", "mail"}


async def test_a_reload_that_replaces_a_channel_sends_its_waiting_pages_on_the_new_one(
    db,
) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    before = channels_file(["chat-old", "mail"])
    after = without(channels_file(["chat-new", "mail"]), "chat-old")
    old, mail = Channel("chat-old"), Channel("mail")
    d = Delivery(OutboxStore(db), {}, Metrics(CollectorRegistry()), clock)
    configure(d, SimpleNamespace(channels=before, server=None), {"chat-old": old, "mail": mail})  # type: ignore[arg-type]
    d.failover = lambda n, failed, why: fallbacks_for(n, failed, why, after, d.store.channels_told)
    pages = notifications_for(incident, Transition.OPENED, before, clock.now())
    with d.store.transaction():
        d.store.enqueue(pages, clock.now())
    new = Channel("chat-new")
    configure(d, SimpleNamespace(channels=after, server=None), {"chat-new": new, "mail": mail})  # type: ignore[arg-type]
    assert d.removed == {"chat-old"}
    await d.settle()  # no grace to wait out: this worker knows the channel was removed
    await d.settle()
    assert old.attempts == []
    assert len(new.sent) == 1
    assert len(mail.sent) == 1
    assert new.sent[0].incident.id == incident.id
    old_page = next(p for p in pages if p.channel == "chat-old")
    assert attempts(db, old_page.key) == ["permanent"]
    lines = timeline(db, incident.id)
    assert any("channel chat-old is no longer configured" in line for line in lines)
    assert any("failing over to chat-new" in line for line in lines)
    assert lines[-1].startswith("opened via chat-new")
    assert d.store.counts() == {"failed": 1, "delivered": 2}
    # a later reload brings it back (and removes the other): it is not "removed" any more
    configure(d, SimpleNamespace(channels=before, server=None), {"chat-old": old, "mail": mail})  # type: ignore[arg-type]
    assert d.removed == {"chat-new"}
