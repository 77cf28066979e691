"""Pages waiting for a channel that a reload took away go where the team's channels are now:
a renamed or replaced channel takes them over, for the members the old one had not reached,
and never to an address the same news reached already; old news, digests and pages to a
channel a route names itself are not re-routed."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from alertd.clock import FakeClock
from alertd.config.channels import ChannelsFile
from alertd.incidents.routing import (
    Told,
    fallbacks_for,
    not_told_yet,
    notifications_for,
    reroute_for,
)
from alertd.metrics import Metrics
from alertd.model import Incident, IncidentState, Notification, Transition
from alertd.notify.configure import configure
from alertd.notify.delivery import DIGEST_KEY_PREFIX, Delivery
from alertd.notify.notifier import Sent
from alertd.notify.outbox import OutboxStore
from tests.open_incidents import open_incidents
from tests.unit.test_outbox import Channel, attempts, fail, timeline

WANG = {"name": "Wang", "email": "wang@example.com", "phone": "+8613800000001"}
LI = {"name": "Li", "email": "li@example.com", "phone": "+8613800000002"}
PEOPLE = [WANG, LI]
LOG = {"type": "log"}
MAIL = {"type": "email", "host": "127.0.0.1", "from": "alertd@example.com", "starttls": False}
SMS = {
    "type": "sms",
    "account_sid": "AC0123456789abcdef0123456789abcdef",
    "auth_token": "tok",
    "from": "+15017122661",
    "api_base_url": "http://127.0.0.1:9",
}


def cfg(channels: dict[str, Any], teams: dict[str, list[str]], **extra: Any) -> ChannelsFile:
    """Channels, and teams (name -> its channels) of Wang and Li; every incident pages ops."""
    data: dict[str, Any] = {
        "channels": channels,
        "teams": {name: {"members": PEOPLE, "channels": chans} for name, chans in teams.items()},
        "routes": [{"notify": ["ops"]}],
        "delivery": {"backoff": "60s"},
        **extra,
    }
    return ChannelsFile.model_validate(data)


class Worker:
    """A Delivery as the worker runs it: its failover follows the config of the last reload."""

    def __init__(self, db, clock: FakeClock, config: ChannelsFile, channels: list[Channel]):  # type: ignore[no-untyped-def]
        self.clock = clock
        self.d = Delivery(OutboxStore(db), {}, Metrics(CollectorRegistry()), clock)
        self.d.failover = lambda n, failed, why: fallbacks_for(
            n, failed, why, self.config, self.d.store.told
        )
        self.reload(config, channels)

    def reload(self, config: ChannelsFile, channels: list[Channel]) -> None:
        self.config = config
        view = SimpleNamespace(channels=config, server=None)
        configure(self.d, view, {c.name: c for c in channels})  # type: ignore[arg-type]

    def commit(self, incident: Incident, transition: Transition, config: ChannelsFile) -> list:  # type: ignore[type-arg]
        pages = notifications_for(incident, transition, config, self.clock.now())
        with self.d.store.transaction():
            self.d.store.enqueue(pages, self.clock.now(), supersede=True)
        return pages

    async def settle(self, advance: float = 0.0) -> None:
        self.clock.advance(advance)
        for _ in range(3):
            await self.d.settle()


def sent_to(channel: Channel) -> list[tuple[str, ...]]:
    return [n.recipients for n in channel.sent]


# -- where a page goes -------------------------------------------------------------------


def the_page(incident: Incident, config: ChannelsFile, channel: str) -> Notification:
    pages = notifications_for(incident, Transition.OPENED, config, 1000.0)
    return next(n for n in pages if n.channel == channel)


def test_a_replaced_channel_takes_over_a_page_for_the_whole_team(db) -> None:  # type: ignore[no-untyped-def]
    (incident,) = open_incidents(db, 1)
    before = cfg({"chat-old": LOG, "mail": MAIL}, {"ops": ["chat-old", "mail"]})
    after = cfg({"chat-new": LOG, "mail": MAIL}, {"ops": ["chat-new", "mail"]})
    page = the_page(incident, before, "chat-old")
    told = Told({"chat-old": {""}, "mail": {"wang@example.com", "li@example.com"}})
    (moved,) = reroute_for(page, (), after, told)
    assert (moved.channel, moved.team, moved.recipients) == ("chat-new", "ops", ())
    assert moved.incident == page.incident
    assert (moved.transition, moved.key) == (page.transition, page.key)


def test_a_channel_just_dropped_leaves_its_pages_to_the_teams_other_channels(db) -> None:  # type: ignore[no-untyped-def]
    (incident,) = open_incidents(db, 1)
    after = cfg({"mail": MAIL}, {"ops": ["mail"]})
    page = the_page(
        incident, cfg({"chat-old": LOG, "mail": MAIL}, {"ops": ["chat-old"]}), "chat-old"
    )
    told = Told({"chat-old": {""}, "mail": {"wang@example.com", "li@example.com"}})
    assert reroute_for(page, (), after, told) == []


def test_a_page_to_a_shared_channel_goes_to_each_member_on_a_personal_one(db) -> None:  # type: ignore[no-untyped-def]
    (incident,) = open_incidents(db, 1)
    page = the_page(incident, cfg({"chat-old": LOG}, {"ops": ["chat-old"]}), "chat-old")
    (moved,) = reroute_for(page, (), cfg({"mail": MAIL}, {"ops": ["mail"]}), Told({}))
    assert (moved.channel, moved.recipients) == ("mail", ("wang@example.com", "li@example.com"))


def test_only_the_members_it_failed_for_and_not_reached_yet_are_paged(db) -> None:  # type: ignore[no-untyped-def]
    (incident,) = open_incidents(db, 1)
    page = the_page(incident, cfg({"mail-old": MAIL}, {"ops": ["mail-old"]}), "mail-old")
    after = cfg({"mail": MAIL, "sms": SMS}, {"ops": ["mail", "sms"]})
    told = Told({"mail": {"li@example.com"}})  # another team's page reached Li by mail
    moved = reroute_for(page, ("wang@example.com", "li@example.com"), after, told)
    assert [(m.channel, m.recipients) for m in moved] == [
        ("mail", ("wang@example.com",)),
        ("sms", ("+8613800000001",)),  # SMS: one intent per recipient
        ("sms", ("+8613800000002",)),
    ]
    moved = reroute_for(page, ("li@example.com",), after, told)  # it failed for Li alone
    assert [(m.channel, m.recipients) for m in moved] == [("sms", ("+8613800000002",))]


def test_old_news_digests_and_pages_without_a_team_are_not_rerouted(db) -> None:  # type: ignore[no-untyped-def]
    (incident,) = open_incidents(db, 1)
    page = the_page(incident, cfg({"chat-old": LOG}, {"ops": ["chat-old"]}), "chat-old")
    after = cfg({"chat-new": LOG}, {"ops": ["chat-new"]})
    assert reroute_for(page, (), after, Told({})) != []
    assert reroute_for(page, (), after, Told({}, newer=True)) == []
    assert reroute_for(replace(page, digest=("#1 ...", "#2 ...")), (), after, Told({})) == []
    assert reroute_for(replace(page, team=""), (), after, Told({})) == []  # a route named it
    assert reroute_for(replace(page, team="nightshift"), (), after, Told({})) == []  # gone


def test_a_configured_channel_still_fails_over_by_its_failover_entry(db) -> None:  # type: ignore[no-untyped-def]
    (incident,) = open_incidents(db, 1)
    config = cfg({"mail": MAIL, "oncall": LOG}, {"ops": ["mail"]}, failover={"mail": "oncall"})
    page = the_page(incident, config, "mail")

    (fallback,) = fallbacks_for(page, page.recipients, "550", config, lambda n: Told({}))
    assert fallback.channel == "oncall"


# -- a failover to a channel the same news reached already ---------------------------------


async def test_a_failover_to_a_channel_the_team_has_too_sends_nothing_twice(db) -> None:  # type: ignore[no-untyped-def]
    # user-test finding: a team paged by mail and SMS, with sms failing over to mail, was
    # mailed twice when an SMS failed
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    config = cfg({"mail": MAIL, "sms": SMS}, {"ops": ["mail", "sms"]}, failover={"sms": "mail"})
    ok = lambda n: None  # noqa: E731
    mail, sms = Channel("mail"), Channel("sms", [fail(False), ok])  # Wang's SMS fails
    w = Worker(db, clock, config, [mail, sms])
    w.commit(incident, Transition.OPENED, config)
    await w.settle()
    assert len(sms.attempts) == 2
    assert [n.recipients for n in mail.sent] == [("wang@example.com", "li@example.com")]
    assert w.d.store.counts() == {"delivered": 2, "failed": 1}
    # the timeline says why nothing failed over (it read as a failover never tried)
    said = [line for line in timeline(db, incident.id) if "failed for" in line]
    assert said == [
        "opened via sms failed for +8613800000001: no failover to mail for wang@example.com: "
        "this news went there already (sent, on its way, or given up there too)"
    ]


async def test_two_failing_channels_do_not_fail_over_to_each_other_forever(db) -> None:  # type: ignore[no-untyped-def]
    # a page given up on a channel counts as gone there: what stops sms -> mail -> sms -> ...
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    config = cfg(
        {"sms": SMS, "mail": MAIL}, {"ops": ["sms"]}, failover={"sms": "mail", "mail": "sms"}
    )
    mail, sms = Channel("mail", [fail(False)] * 10), Channel("sms", [fail(False)] * 10)
    w = Worker(db, clock, config, [mail, sms])
    w.commit(incident, Transition.OPENED, config)
    await w.settle()
    assert (len(sms.attempts), len(mail.attempts)) == (2, 2)  # Wang and Li: an SMS, a mail
    said = sorted(line for line in timeline(db, incident.id) if "no failover" in line)
    why = "this news went there already (sent, on its way, or given up there too)"
    assert said == [
        f"opened via mail failed for li@example.com: no failover to sms for +8613800000002: {why}",
        f"opened via mail failed for wang@example.com: no failover to sms for +8613800000001: "
        f"{why}",
    ]


async def test_a_failover_goes_to_the_members_the_target_channel_has_not_reached(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    config = cfg({"sms": SMS, "mail": MAIL}, {"ops": ["sms"]}, failover={"sms": "mail"})
    ok = lambda n: None  # noqa: E731
    mail, sms = Channel("mail"), Channel("sms", [fail(False), ok])  # Wang's SMS fails
    w = Worker(db, clock, config, [mail, sms])
    w.commit(incident, Transition.OPENED, config)
    await w.settle()
    assert [n.recipients for n in mail.sent] == [("wang@example.com",)]
    said = [line for line in timeline(db, incident.id) if "failed for" in line]
    assert said == ["opened via sms failed for +8613800000001: failing over to mail"]
    assert not_told_yet(mail.sent, Told({"mail": {"wang@example.com"}})) == []
    both = replace(mail.sent[0], recipients=("wang@example.com", "li@example.com"))
    (narrowed,) = not_told_yet([both], Told({"mail": {"wang@example.com"}}))
    assert narrowed.recipients == ("li@example.com",)


# -- where the news went (the store) -------------------------------------------------------


def test_the_store_tells_where_one_changes_news_went_and_of_newer_news(db) -> None:  # type: ignore[no-untyped-def]
    first, second = open_incidents(db, 2)
    config = cfg({"chat": LOG, "sms": SMS}, {"ops": ["chat", "sms"]})
    store = OutboxStore(db)
    with store.transaction():
        for incident in (first, second):
            store.enqueue(notifications_for(incident, Transition.OPENED, config, 1000.0), 1000.0)
    sms = the_page(first, config, "sms")
    split = replace(sms, key=f"{sms.key}~+8613800000001")  # a recipient retried alone
    with store.transaction():
        store.enqueue([split], 1005.0)
    told = store.told(split)
    assert told == Told({"chat": {""}, "sms": {"+8613800000001", "+8613800000002"}})
    resolved = replace(first, state=IncidentState.RESOLVED, resolved_at=1010.0)
    with store.transaction():  # later news of the first incident, to the same team
        store.enqueue(notifications_for(resolved, Transition.RESOLVED, config, 1010.0), 1010.0)
    assert store.told(split).newer
    assert not store.told(the_page(second, config, "chat")).newer


# -- the worker, end to end (a fake clock, a real SQLite file) ------------------------------


async def test_a_reload_that_replaces_a_channel_sends_its_waiting_pages_on_the_new_one(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    before = cfg({"chat-old": LOG, "mail": MAIL}, {"ops": ["chat-old", "mail"]})
    after = cfg({"chat-new": LOG, "mail": MAIL}, {"ops": ["chat-new", "mail"]})
    old, mail, new = Channel("chat-old"), Channel("mail"), Channel("chat-new")
    w = Worker(db, clock, before, [old, mail])
    pages = w.commit(incident, Transition.OPENED, before)
    w.reload(after, [new, mail])
    assert set(w.d.removed) == {"chat-old"}
    await w.settle()  # no grace to wait out: this worker saw the channel go
    assert old.attempts == []
    assert len(new.sent) == 1
    assert len(mail.sent) == 1
    old_page = next(p for p in pages if p.channel == "chat-old")
    assert attempts(db, old_page.key) == ["permanent"]
    lines = timeline(db, incident.id)
    assert any("channel chat-old is no longer configured" in line for line in lines)
    assert any("failing over to chat-new" in line for line in lines)
    assert lines[-1].startswith("opened via chat-new")
    assert w.d.store.counts() == {"failed": 1, "delivered": 2}
    # a later reload brings it back (and removes the other): it is not "removed" any more
    w.reload(before, [old, mail])
    assert set(w.d.removed) == {"chat-new"}


async def test_a_page_waiting_for_a_retry_is_rerouted_when_the_reload_lands(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    old, new = Channel("chat-old", [fail(True)]), Channel("chat-new")
    w = Worker(db, clock, cfg({"chat-old": LOG}, {"ops": ["chat-old"]}), [old])
    w.commit(incident, Transition.OPENED, w.config)
    await w.settle()  # chat-old is down: the next try is a minute away
    w.reload(cfg({"chat-new": LOG}, {"ops": ["chat-new"]}), [new])
    await w.settle(advance=0.1)
    assert len(old.attempts) == 1
    assert len(new.sent) == 1


async def test_old_news_is_not_rerouted_after_newer_news(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    old, new = Channel("chat-old", [fail(True)]), Channel("chat-new")
    w = Worker(db, clock, cfg({"chat-old": LOG}, {"ops": ["chat-old"]}), [old])
    w.commit(incident, Transition.OPENED, w.config)
    await w.settle()  # chat-old is down: "opened" waits for a retry
    after = cfg({"chat-new": LOG}, {"ops": ["chat-new"]})
    resolved = replace(incident, state=IncidentState.RESOLVED, resolved_at=clock.now())
    clock.advance(1)
    w.commit(resolved, Transition.RESOLVED, after)  # the daemon applied the reload first
    w.reload(after, [new])
    await w.settle(advance=120)
    assert [n.transition for n in new.sent] == [Transition.RESOLVED]  # not a stale "opened"


@pytest.mark.parametrize("first_fails", [False, True])  # which of the two SMS went out
async def test_each_sms_goes_once_to_whom_the_old_channel_had_not_reached(db, first_fails) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    ok = lambda n: None  # noqa: E731
    script = [fail(True), ok] if first_fails else [ok, fail(True)]
    old, new = Channel("sms-old", script), Channel("sms-new")
    w = Worker(db, clock, cfg({"sms-old": SMS}, {"ops": ["sms-old"]}), [old])
    w.commit(incident, Transition.OPENED, w.config)
    await w.settle()
    w.reload(cfg({"sms-new": SMS}, {"ops": ["sms-new"]}), [new])
    await w.settle(advance=120)
    missed = ("+8613800000001",) if first_fails else ("+8613800000002",)
    assert sent_to(new) == [missed]


async def test_a_recipient_retried_alone_is_rerouted_alone(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)

    def refuse_li(n: Notification) -> Sent:
        return Sent(refused=(("li@example.com", "450 mailbox busy"),))

    old, chat = Channel("mail-old", [refuse_li]), Channel("chat")
    new = Channel("mail-new")
    w = Worker(
        db, clock, cfg({"mail-old": MAIL, "chat": LOG}, {"ops": ["mail-old", "chat"]}), [old, chat]
    )
    w.commit(incident, Transition.OPENED, w.config)
    await w.settle()  # Wang has it; Li's own retry waits
    w.reload(cfg({"mail-new": MAIL, "chat": LOG}, {"ops": ["mail-new", "chat"]}), [new, chat])
    await w.settle(advance=120)
    assert sent_to(new) == [("li@example.com",)]
    assert len(chat.sent) == 1  # chat had it already


async def test_a_failover_page_on_a_removed_channel_goes_nowhere_the_news_went(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    a, b, mail = Channel("hook-a", [fail(False)]), Channel("hook-b", [fail(True)]), Channel("mail")
    before = cfg(
        {"hook-a": LOG, "hook-b": LOG, "mail": MAIL},
        {"ops": ["hook-a", "mail"]},
        failover={"hook-a": "hook-b"},
    )
    w = Worker(db, clock, before, [a, b, mail])
    w.commit(incident, Transition.OPENED, before)
    await w.settle(advance=0.1)  # hook-a failed for good; its failover hook-b is retrying
    assert len(b.attempts) == 1
    w.reload(cfg({"hook-a": LOG, "mail": MAIL}, {"ops": ["hook-a", "mail"]}), [a, mail])
    await w.settle(advance=120)
    assert len(mail.sent) == 1
    assert len(a.attempts) == 1


async def test_an_sms_that_fails_for_good_fails_over_though_its_sibling_went_out(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    sms, mail = Channel("sms", [fail(False), lambda n: None]), Channel("mail")
    config = cfg({"sms": SMS, "mail": MAIL}, {"ops": ["sms"]}, failover={"sms": "mail"})
    w = Worker(db, clock, config, [sms, mail])
    w.commit(incident, Transition.OPENED, config)
    await w.settle()
    assert sent_to(mail) == [("wang@example.com",)]  # Li's SMS is no newer news


async def test_a_channel_removed_then_added_back_keeps_the_grace(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    with_chat = cfg({"chat": LOG, "mail": MAIL}, {"ops": ["chat", "mail"]})
    chat, mail = Channel("chat"), Channel("mail")
    w = Worker(db, clock, with_chat, [chat, mail])
    w.reload(cfg({"mail": MAIL}, {"ops": ["mail"]}), [mail])  # a mistake, put right at once:
    clock.advance(1)
    w.commit(incident, Transition.OPENED, with_chat)  # the daemon has chat back already
    await w.settle()
    w.reload(with_chat, [chat, mail])  # and then this worker
    await w.settle(advance=1)
    assert len(chat.sent) == 1


def test_a_digest_on_a_removed_channel_is_not_rerouted(db) -> None:  # type: ignore[no-untyped-def]
    a, b = open_incidents(db, 2)
    before = cfg({"chat-old": LOG, "mail": MAIL}, {"ops": ["chat-old", "mail"]})
    store = OutboxStore(db)
    with store.transaction():
        for incident in (a, b):
            store.enqueue(notifications_for(incident, Transition.OPENED, before, 1000.0), 1000.0)
    held = [i for i in store.due(2000.0, 100) if i.notification.channel == "chat-old"]
    digest = replace(
        held[-1].notification, key=f"{DIGEST_KEY_PREFIX}chat-old..1-3", digest=("x", "y")
    )
    with store.transaction():
        store.hold(held, 1002.0)
        store.fold_digest(digest, held, 1060.0)
    after = cfg({"chat-new": LOG, "mail": MAIL}, {"ops": ["chat-new", "mail"]})
    assert fallbacks_for(digest, (), "gone", after, store.told) == []


def test_a_team_moved_onto_a_channel_another_team_uses_still_reaches_its_own_members(db) -> None:  # type: ignore[no-untyped-def]
    (incident,) = open_incidents(db, 1)

    def config(ops_channel: str) -> ChannelsFile:
        return ChannelsFile.model_validate(
            {
                "channels": {ops_channel: LOG if ops_channel != "mail" else MAIL, "mail": MAIL},
                "teams": {
                    "ops": {"members": PEOPLE, "channels": [ops_channel]},
                    "dba": {"members": [WANG], "channels": ["mail"]},
                },
                "routes": [{"notify": ["ops", "dba"]}],
            }
        )

    store = OutboxStore(db)
    pages = notifications_for(incident, Transition.OPENED, config("chat-old"), 1000.0)
    with store.transaction():
        store.enqueue(pages, 1000.0)
    page = next(p for p in pages if p.channel == "chat-old")
    moved = fallbacks_for(page, (), "gone", config("mail"), store.told)
    # dba's mail reached Wang; Li is on ops alone and still needs the page
    assert [(m.channel, m.recipients, m.team) for m in moved] == [
        ("mail", ("li@example.com",), "ops")
    ]


# -- news after a failover -----------------------------------------------------------------


async def test_the_resolve_goes_where_a_failover_took_the_page(db) -> None:  # type: ignore[no-untyped-def]
    # user-test finding: the WeCom group got 200 pages when the DingTalk robot failed, and
    # never one resolve: those went to the broken robot only
    from alertd.incidents.escalation import news_where_pages_went

    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    config = cfg({"chat": LOG, "mail": MAIL}, {"ops": ["chat"]}, failover={"chat": "mail"})
    chat, mail = Channel("chat", [fail(False)]), Channel("mail")
    w = Worker(db, clock, config, [chat, mail])
    w.commit(incident, Transition.OPENED, config)
    await w.settle()
    assert sent_to(mail) == [("wang@example.com", "li@example.com")]  # the page, failed over

    resolved = replace(incident, state=IncidentState.RESOLVED, resolved_at=clock.now())
    news = notifications_for(resolved, Transition.RESOLVED, config, clock.now())
    assert [n.channel for n in news] == ["chat"]  # the route's own channel
    # not to chat, which never showed the incident (a resolve failing there again would
    # fail over a second time: verification finding), but where the page went
    (moved,) = news_where_pages_went(db, news)
    assert (moved.channel, moved.recipients) == ("mail", ("wang@example.com", "li@example.com"))
    assert (moved.transition, moved.team) == (Transition.RESOLVED, "ops")
    assert news_where_pages_went(db, [moved]) == [moved]  # covered already: nothing twice
    with w.d.store.transaction():
        w.d.store.enqueue([moved], clock.now(), supersede=True)
    await w.settle()
    assert [(n.transition, n.recipients) for n in mail.sent][-1] == (
        Transition.RESOLVED,
        ("wang@example.com", "li@example.com"),
    )


async def test_the_incident_managers_resolve_goes_to_the_failed_over_channel(db) -> None:  # type: ignore[no-untyped-def]
    from alertd.incidents.manager import IncidentManager
    from alertd.model import AlertEvent, EventKind, Level
    from alertd.state.incidents import IncidentStore

    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    config = cfg({"chat": LOG, "mail": MAIL}, {"ops": ["chat"]}, failover={"chat": "mail"})
    w = Worker(db, clock, config, [Channel("chat", [fail(False)]), Channel("mail")])
    w.commit(incident, Transition.OPENED, config)
    await w.settle()
    manager = IncidentManager(IncidentStore(db), config)
    ok = AlertEvent(
        EventKind.RESOLVED, "cpu", "cpu", incident.labels, None, Level.MAJOR, 1.0, "ok",
        clock.now(), incident.fingerprint,
    )  # fmt: skip
    with manager.store.transaction():
        news = manager.apply([ok], clock.now())
    assert [(n.transition.value, n.channel) for n in news] == [("resolved", "mail")]


async def test_the_resolve_also_goes_where_a_failed_digest_took_the_page(db) -> None:  # type: ignore[no-untyped-def]
    from alertd.incidents.escalation import news_where_pages_went

    clock = FakeClock()
    incidents = open_incidents(db, 4)
    config = cfg(
        {"chat": LOG, "mail": MAIL},
        {"ops": ["chat"]},
        failover={"chat": "mail"},
        rate_limits={"chat": {"per_minute": 2}},
    )
    ok = lambda n: None  # noqa: E731
    chat, mail = Channel("chat", [ok, ok, fail(False)]), Channel("mail")
    w = Worker(db, clock, config, [chat, mail])
    for incident in incidents:
        w.commit(incident, Transition.OPENED, config)
    await w.settle()
    await w.settle(advance=70.0)  # the digest of #3 and #4 goes, fails, fails over to mail
    assert [len(n.digest) for n in mail.sent] == [2]
    for incident in incidents[2:]:  # each held incident's timeline tells the whole story
        assert timeline(db, incident.id)[1:] == [
            "opened via chat: in a digest of 2: failed (server_error): scripted failure",
            "opened via chat: in a digest of 2: failed: failing over to mail",
            "opened via chat: in a digest of 2 via mail: sent",
        ]  # user-test finding: it ended at "failed", as if the page was lost

    resolved = replace(incidents[2], state=IncidentState.RESOLVED, resolved_at=clock.now())
    news = notifications_for(resolved, Transition.RESOLVED, config, clock.now())
    (extra,) = news_where_pages_went(db, news)
    assert (extra.channel, extra.incident.id) == ("mail", incidents[2].id)
    first = replace(incidents[0], state=IncidentState.RESOLVED, resolved_at=clock.now())
    reached = notifications_for(first, Transition.RESOLVED, config, 0)
    assert news_where_pages_went(db, reached) == reached  # its page went out on chat


async def test_a_channel_that_reached_them_later_keeps_its_news(db) -> None:  # type: ignore[no-untyped-def]
    from alertd.incidents.escalation import news_where_pages_went

    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    config = cfg({"chat": LOG, "mail": MAIL}, {"ops": ["chat"]}, failover={"chat": "mail"})
    ok = lambda n: None  # noqa: E731
    w = Worker(db, clock, config, [Channel("chat", [fail(False), ok]), Channel("mail")])
    w.commit(incident, Transition.OPENED, config)
    await w.settle()  # the page failed on chat, went by mail
    w.commit(incident, Transition.REPEAT, config)
    await w.settle()  # chat works again: the re-page reached the group there
    resolved = replace(incident, state=IncidentState.RESOLVED, resolved_at=clock.now())
    news = notifications_for(resolved, Transition.RESOLVED, config, clock.now())
    assert sorted(n.channel for n in news_where_pages_went(db, news)) == ["chat", "mail"]


def refused(n: Notification) -> None:
    """A robot's 310000: a revoked token, or a message without the robot's keyword."""
    from alertd.errors import FailureReason, NotifyError

    raise NotifyError("refused (310000)", retryable=False, reason=FailureReason.AUTH)


def limited_chat_failing_over_to_mail(  # type: ignore[no-untyped-def]
    db, clock: FakeClock, chat: Channel, per_minute: int = 2
) -> tuple[Worker, Channel, ChannelsFile]:
    """A chat robot allowed ``per_minute`` a minute, failing over to mail."""
    config = cfg(
        {"chat": LOG, "mail": MAIL},
        {"ops": ["chat"]},
        failover={"chat": "mail"},
        rate_limits={"chat": {"per_minute": per_minute}},
    )
    mail = Channel("mail")
    return Worker(db, clock, config, [chat, mail]), mail, config


async def test_what_a_channel_refusing_our_credentials_holds_fails_over_at_once(db) -> None:  # type: ignore[no-untyped-def]
    # user-test finding: after the robot's token was refused for good, the 180 pages its rate
    # limit held went to it as a digest a minute later, and only then failed over
    clock = FakeClock()
    incidents = open_incidents(db, 5)
    chat = Channel("chat", [refused, refused])
    w, mail, config = limited_chat_failing_over_to_mail(db, clock, chat)
    for incident in incidents[:4]:
        w.commit(incident, Transition.OPENED, config)
    await w.settle()  # no minute passes
    assert len(chat.attempts) == 2  # nothing more was tried on the broken robot
    assert sorted(n.incident.id for n in mail.sent) == [i.id for i in incidents[:4]]
    assert timeline(db, incidents[3].id)[1:3] == [
        "opened via chat: not sent: chat refused alertd's credentials (auth) on another send",
        "opened via chat failed: failing over to mail",
    ]
    # a page it comes to hold while it refuses goes the same way (verification finding)
    w.commit(incidents[4], Transition.OPENED, config)
    await w.settle(advance=10.0)
    assert len(chat.attempts) == 2
    assert mail.sent[-1].incident.id == incidents[4].id


async def test_a_refusal_with_sends_working_is_about_the_message_not_the_channel(db) -> None:  # type: ignore[no-untyped-def]
    # verification finding: DingTalk refuses a message without its keyword with the same
    # code (310000) as a revoked token; the pages it holds would have gone through
    clock = FakeClock()
    incidents = open_incidents(db, 4)
    ok = lambda n: None  # noqa: E731
    chat = Channel("chat", [refused, ok, ok])
    w, mail, config = limited_chat_failing_over_to_mail(db, clock, chat)
    for incident in incidents:
        w.commit(incident, Transition.OPENED, config)
    await w.settle()
    assert [n.incident.id for n in mail.sent] == [incidents[0].id]  # only the refused one
    await w.settle(advance=70.0)
    assert len(chat.sent[-1].digest) == 2  # the held two went to chat, as a digest


async def test_a_refusal_soon_after_working_sends_is_about_the_message(db) -> None:  # type: ignore[no-untyped-def]
    # verification finding: the working sends were in an earlier batch than the refusal,
    # and the pages held behind it failed over although the robot took such pages
    clock = FakeClock()
    incidents = open_incidents(db, 5)
    ok = lambda n: None  # noqa: E731
    chat = Channel("chat", [ok, ok, refused, ok])
    w, mail, config = limited_chat_failing_over_to_mail(db, clock, chat, per_minute=3)
    for incident in incidents[:2]:
        w.commit(incident, Transition.OPENED, config)
    await w.settle()  # both delivered
    clock.advance(1.0)
    for incident in incidents[2:]:
        w.commit(incident, Transition.OPENED, config)
    await w.settle()  # the third of the minute is refused (its keyword missing); two held
    assert [n.incident.id for n in mail.sent] == [incidents[2].id]
    await w.settle(advance=65.0)  # the two held go to chat as a digest, as they should
    assert [len(n.digest) for n in chat.sent if n.digest] == [2]
    assert len(mail.sent) == 1
