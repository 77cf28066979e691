"""The email channel's threading, session reuse and per-recipient results, against aiosmtpd.

The server's answers are scripted per test (``RecordingHandler.script`` in conftest): a reply
line, ``DROP`` (close without answering) or ``HOLD`` (never answer).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from alertd.errors import FailureReason, NotifyError
from alertd.model import Level, Transition
from alertd.notify.email.notifier import thread_root
from alertd.notify.notifier import Sent
from tests.integration.test_email_smtp import make_config, make_notification, parse

if TYPE_CHECKING:  # conftest is not importable at run time (tests/ is no package)
    from conftest import NewNotifier, RecordingHandler, SmtpServer

pytestmark = pytest.mark.integration

OPENED_AT = 1714564800  # make_notification's incident


async def eventually(condition: Callable[[], bool]) -> bool:
    """Wait (bounded, ~5 s) until ``condition()`` holds; return whether it did."""
    for _ in range(500):
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()


async def test_an_incident_is_one_thread(
    smtp_server: SmtpServer, new_notifier: NewNotifier
) -> None:
    notifier = new_notifier(make_config(smtp_server.host, smtp_server.port))
    opened = make_notification("a@example.com", key="k-open")
    changed = dataclasses.replace(
        make_notification("a@example.com", key="k-level", transition=Transition.LEVEL_CHANGED),
        previous_level=Level.MINOR,
    )
    resolved = make_notification("a@example.com", key="k-res", transition=Transition.RESOLVED)
    reopened = make_notification("a@example.com", key="k-reop", transition=Transition.REOPENED)

    for n in [opened, changed, resolved, reopened]:
        await notifier.send(n)

    first, *later = msgs = [parse(m.content) for m in smtp_server.messages]
    root = f"<alertd.incident.12.{OPENED_AT}@example.com>"
    assert first["Message-ID"] == root == thread_root(opened.incident, "example.com")
    assert first["In-Reply-To"] is None
    assert first["References"] is None
    assert [(m["In-Reply-To"], m["References"]) for m in later] == [(root, root)] * 3
    assert len({m["Message-ID"] for m in msgs}) == 4
    for m in msgs:
        assert [p.get_content_type() for p in m.iter_parts()] == ["text/plain", "text/html"]
    assert [m["X-Alertd-Transition"] for m in msgs] == [
        "opened",
        "level_changed",
        "resolved",
        "reopened",
    ]


async def test_a_long_from_domain_still_threads(
    smtp_server: SmtpServer, new_notifier: NewNotifier
) -> None:
    # review finding: past ~90 characters the header was folded as text into RFC 2047
    # encoded-words, which are no msg-id; Python's own parser decoded them back, mail clients
    # do not
    domain = "alerts." + "monitoring-" * 5 + "example.com"
    config = make_config(smtp_server.host, smtp_server.port, **{"from": f"alertd@{domain}"})
    notifier = new_notifier(config)
    await notifier.send(make_notification("a@example.com", key="k-open"))
    resolved = make_notification("a@example.com", key="k-res", transition=Transition.RESOLVED)
    await notifier.send(resolved)

    raw = smtp_server.messages[-1].content
    head = re.sub(rb"\r?\n[ \t]+", b" ", raw.split(b"\r\n\r\n", 1)[0])  # unfolded
    root = thread_root(resolved.incident, domain).encode()
    lines = {line.split(b":", 1)[0]: line.split(b":", 1)[1].strip() for line in head.splitlines()}
    assert (lines[b"In-Reply-To"], lines[b"References"]) == (root, root)
    assert b"=?" not in lines[b"In-Reply-To"]


async def test_a_digest_joins_no_thread(smtp_server: SmtpServer, new_notifier: NewNotifier) -> None:
    notifier = new_notifier(make_config(smtp_server.host, smtp_server.port))
    digest = dataclasses.replace(
        make_notification("a@example.com", key="digest.ops-mail.1"),
        digest=("#12 [P2] opened major: one", "#13 [P2] opened major: two"),
    )

    await notifier.send(digest)

    [msg] = [parse(m.content) for m in smtp_server.messages]
    assert msg["In-Reply-To"] is None
    assert msg["References"] is None
    assert msg["Message-ID"] != thread_root(digest.incident, "example.com")


async def test_sends_reuse_one_session(smtp_server: SmtpServer, new_notifier: NewNotifier) -> None:
    notifier = new_notifier(make_config(smtp_server.host, smtp_server.port))

    results = [
        await notifier.send(make_notification("a@example.com", key=f"k{i}")) for i in range(5)
    ]

    assert len(smtp_server.messages) == 5
    assert len(smtp_server.handler.sessions) == 1
    ids = [parse(m.content)["Message-ID"] for m in smtp_server.messages]
    assert [r.provider_id for r in results] == ids


async def test_concurrent_sends_share_the_pool(
    smtp_server: SmtpServer, new_notifier: NewNotifier
) -> None:
    one = new_notifier(make_config(smtp_server.host, smtp_server.port))
    await asyncio.gather(*(one.send(make_notification("a@example.com")) for _ in range(4)))
    assert (len(smtp_server.messages), len(smtp_server.handler.sessions)) == (4, 1)

    two = new_notifier(make_config(smtp_server.host, smtp_server.port, connections=2))
    await asyncio.gather(*(two.send(make_notification("b@example.com")) for _ in range(6)))
    assert len(smtp_server.messages) == 10
    assert len(smtp_server.handler.sessions) == 3  # one's, and both of two's


async def test_reconnects_after_the_server_closed_an_idle_session(
    smtp_server: SmtpServer, new_notifier: NewNotifier
) -> None:
    notifier = new_notifier(make_config(smtp_server.host, smtp_server.port))
    await notifier.send(make_notification("a@example.com"))

    smtp_server.handler.drop_connections()
    await notifier.send(make_notification("a@example.com"))

    assert len(smtp_server.messages) == 2
    assert len(smtp_server.handler.sessions) == 2


@pytest.mark.parametrize("answer", ["421 4.4.2 idle timeout, closing", "DROP"])
async def test_a_reused_session_found_dead_is_replaced_once_transparently(
    smtp_server: SmtpServer, new_notifier: NewNotifier, answer: str
) -> None:
    notifier = new_notifier(make_config(smtp_server.host, smtp_server.port))
    await notifier.send(make_notification("a@example.com"))

    smtp_server.handler.script["MAIL"] = [answer]
    sent = await notifier.send(make_notification("a@example.com"))

    assert isinstance(sent, Sent)
    assert len(smtp_server.messages) == 2
    assert len(smtp_server.handler.sessions) == 2


async def test_the_transparent_reconnect_happens_only_once(
    smtp_server: SmtpServer, new_notifier: NewNotifier
) -> None:
    notifier = new_notifier(make_config(smtp_server.host, smtp_server.port))
    await notifier.send(make_notification("a@example.com"))

    smtp_server.handler.script["MAIL"] = ["DROP", "DROP"]
    with pytest.raises(NotifyError, match=r"send MAIL FROM") as info:
        await notifier.send(make_notification("a@example.com"))

    assert (info.value.retryable, info.value.ambiguous) == (True, False)
    assert info.value.reason is FailureReason.CONNECT
    await notifier.send(make_notification("a@example.com"))  # and the channel recovers
    assert len(smtp_server.messages) == 2


@pytest.mark.parametrize(
    ("command", "answer"),
    [
        ("MAIL", "421 4.3.2 service not available, closing"),
        ("MAIL", "451 4.3.0 local error"),
        ("RCPT", "421 4.3.2 service not available, closing"),
        ("DATA", "451 4.3.0 try again later"),
    ],
)
async def test_a_transient_reply_once_then_recovery(
    smtp_server: SmtpServer, new_notifier: NewNotifier, command: str, answer: str
) -> None:
    notifier = new_notifier(make_config(smtp_server.host, smtp_server.port))
    smtp_server.handler.script[command] = [answer]

    with pytest.raises(NotifyError, match=answer.split(",")[0]) as info:
        await notifier.send(make_notification("a@example.com", key="k"))
    assert info.value.retryable is True
    assert info.value.ambiguous is False
    assert smtp_server.messages == []

    await notifier.send(make_notification("a@example.com", key="k"))
    assert len(smtp_server.messages) == 1


async def test_550_on_data_is_permanent(smtp_server: SmtpServer, new_notifier: NewNotifier) -> None:
    notifier = new_notifier(make_config(smtp_server.host, smtp_server.port))
    smtp_server.handler.script["DATA"] = ["550 5.7.1 rejected by policy"]

    with pytest.raises(NotifyError, match=r"send DATA: 550 5.7.1 rejected by policy") as info:
        await notifier.send(make_notification("a@example.com"))

    assert (info.value.retryable, info.value.ambiguous) == (False, False)
    assert info.value.reason is FailureReason.SERVER_ERROR
    assert smtp_server.messages == []


async def test_refused_recipients_are_reported_with_their_codes(
    smtp_server: SmtpServer, new_notifier: NewNotifier
) -> None:
    handler: RecordingHandler = smtp_server.handler
    handler.refuse.add("gone@example.com")
    handler.script["RCPT"] = ["452 4.2.2 mailbox full"]  # the first RCPT: busy@
    notifier = new_notifier(make_config(smtp_server.host, smtp_server.port))
    n = make_notification(
        "Busy <busy@example.com>", "Gone <gone@example.com>", "oncall@example.com"
    )

    sent = await notifier.send(n)

    assert sent.refused == (
        ("Busy <busy@example.com>", "452 4.2.2 mailbox full"),
        ("Gone <gone@example.com>", "550 5.1.1 <gone@example.com>: mailbox unavailable"),
    )
    [received] = smtp_server.messages
    assert received.rcpt_tos == ("oncall@example.com",)
    assert parse(received.content)["Message-ID"] == sent.provider_id


async def test_all_refused_with_a_temporary_one_is_retryable(
    smtp_server: SmtpServer, new_notifier: NewNotifier
) -> None:
    smtp_server.handler.refuse.add("gone@example.com")
    smtp_server.handler.script["RCPT"] = ["450 4.2.1 try later"]
    notifier = new_notifier(make_config(smtp_server.host, smtp_server.port))

    with pytest.raises(NotifyError, match="all recipients refused") as info:
        await notifier.send(make_notification("busy@example.com", "gone@example.com"))

    assert info.value.retryable is True
    assert info.value.reason is FailureReason.RECIPIENT
    assert smtp_server.messages == []


async def test_closed_port_then_server_up(
    closed_port: int, start_smtp_server: Callable[[int], SmtpServer], new_notifier: NewNotifier
) -> None:
    notifier = new_notifier(make_config("127.0.0.1", closed_port))

    with pytest.raises(NotifyError, match="connect:") as info:
        await notifier.send(make_notification("a@example.com"))
    assert (info.value.retryable, info.value.reason) == (True, FailureReason.CONNECT)

    server = start_smtp_server(closed_port)
    await notifier.send(make_notification("a@example.com"))
    assert len(server.messages) == 1


async def test_disconnect_after_data_is_ambiguous_and_the_retry_keeps_the_message_id(
    smtp_server: SmtpServer, new_notifier: NewNotifier
) -> None:
    notifier = new_notifier(make_config(smtp_server.host, smtp_server.port))
    smtp_server.handler.script["DATA"] = ["DROP"]
    n = make_notification("a@example.com", key="k1", transition=Transition.ESCALATED)

    with pytest.raises(NotifyError, match="send DATA") as info:
        await notifier.send(n)
    assert (info.value.retryable, info.value.ambiguous) == (True, True)
    assert "may have queued" in str(info.value)

    await notifier.send(n)  # the outbox retries: at most one duplicate, same Message-ID
    first, second = (parse(m.content)["Message-ID"] for m in smtp_server.messages)
    assert first == second


async def test_timeout_after_data_is_ambiguous(
    smtp_server: SmtpServer, new_notifier: NewNotifier
) -> None:
    notifier = new_notifier(make_config(smtp_server.host, smtp_server.port, timeout=0.3))
    smtp_server.handler.script["DATA"] = ["HOLD"]

    with pytest.raises(NotifyError, match=r"send DATA: timeout after 0.3s") as info:
        await notifier.send(make_notification("a@example.com"))

    assert (info.value.retryable, info.value.ambiguous) == (True, True)
    assert info.value.reason is FailureReason.TIMEOUT
    assert len(smtp_server.messages) == 1  # the server has it; the client never heard so


async def test_timeout_before_data_is_not_ambiguous(
    smtp_server: SmtpServer, new_notifier: NewNotifier
) -> None:
    notifier = new_notifier(make_config(smtp_server.host, smtp_server.port, timeout=0.3))
    smtp_server.handler.script["RCPT"] = ["HOLD"]

    with pytest.raises(NotifyError, match=r"send RCPT TO: timeout") as info:
        await notifier.send(make_notification("a@example.com"))

    assert (info.value.retryable, info.value.ambiguous) == (True, False)


async def test_a_cancelled_send_does_not_poison_the_session(
    smtp_server: SmtpServer, new_notifier: NewNotifier
) -> None:
    notifier = new_notifier(make_config(smtp_server.host, smtp_server.port))
    smtp_server.handler.script["MAIL"] = ["HOLD"]
    stuck = asyncio.create_task(notifier.send(make_notification("a@example.com")))
    assert await eventually(lambda: len(smtp_server.handler.sessions) == 1)

    stuck.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stuck
    await notifier.send(make_notification("a@example.com"))

    assert len(smtp_server.messages) == 1
    assert len(smtp_server.handler.sessions) == 2


async def test_close_says_quit_and_a_later_send_still_works(
    smtp_server: SmtpServer, new_notifier: NewNotifier
) -> None:
    notifier = new_notifier(make_config(smtp_server.host, smtp_server.port))
    await notifier.send(make_notification("a@example.com"))

    await notifier.close()
    assert smtp_server.handler.quits == 1

    await notifier.send(make_notification("a@example.com"))  # opens, sends, closes
    assert len(smtp_server.messages) == 2
    await notifier.close()
    assert smtp_server.handler.quits == 1  # the post-close session was dropped, not pooled


async def test_an_idle_session_is_closed(
    smtp_server: SmtpServer, new_notifier: NewNotifier
) -> None:
    notifier = new_notifier(make_config(smtp_server.host, smtp_server.port, idle_timeout=0.05))
    await notifier.send(make_notification("a@example.com"))

    assert await eventually(lambda: smtp_server.handler.quits == 1)
    await notifier.send(make_notification("a@example.com"))
    assert len(smtp_server.handler.sessions) == 2


async def test_channel_templates_and_links(
    smtp_server: SmtpServer, new_notifier: NewNotifier
) -> None:
    config = make_config(
        smtp_server.host, smtp_server.port, template={"subject": "custom #{{ id }} {{ level }}"}
    )
    n = dataclasses.replace(
        make_notification("a@example.com"),
        url="https://alertd.example/incidents/12",
        ack_url="https://alertd.example/ack/v1.12.1714651200.AAAAAAAAAAAAAAAAAAAAAA",
    )

    await new_notifier(config).send(n)

    msg = parse(smtp_server.messages[0].content)
    assert msg["Subject"] == "custom #12 major"
    text, html = (p.get_content().replace("\r\n", "\n") for p in msg.iter_parts())
    assert "Incident page: https://alertd.example/incidents/12\n" in text
    assert f"Acknowledge:   {n.ack_url}\n" in text
    assert f'<a href="{n.ack_url}">Acknowledge</a>' in html
    assert '<a href="https://alertd.example/incidents/12">' in html


async def test_non_ascii_subject_and_body_arrive_7bit_clean(
    smtp_server: SmtpServer, new_notifier: NewNotifier
) -> None:
    notifier = new_notifier(make_config(smtp_server.host, smtp_server.port))
    n = dataclasses.replace(
        make_notification("a@example.com", transition=Transition.LEVEL_CHANGED),
        previous_level=Level.MINOR,
    )

    await notifier.send(n)

    raw = smtp_server.messages[0].content
    assert raw.isascii()
    msg = parse(raw)
    assert "minor→major" in msg["Subject"]
    assert "minor→major" in next(msg.iter_parts()).get_content()
