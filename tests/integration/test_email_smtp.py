"""The email channel against a real SMTP server (aiosmtpd on 127.0.0.1, ephemeral port).

Also holds the email channel's config checks (validation, secrets kept out of repr and
errors), which need no socket but sit here beside the notifier they configure.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import socket
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import ValidationError

from alertd.errors import ConfigError, FailureReason, NotifyError
from alertd.model import Incident, IncidentState, Level, Notification, Transition, make_labels
from alertd.notify.email.config import EmailChannelConfig
from alertd.notify.email.notifier import EmailNotifier

if TYPE_CHECKING:  # conftest is not importable at run time (tests/ is no package)
    from conftest import NewNotifier, SmtpServer

pytestmark = pytest.mark.integration

SUMMARY = "Memory used 87.5% on web1"
PASSWORD = "hunter2-very-secret"


def make_notification(
    *recipients: str,
    transition: Transition = Transition.OPENED,
    labels: dict[str, str] | None = None,
    key: str = "",
) -> Notification:
    incident = Incident(
        id=12,
        fingerprint="0123456789abcdef",
        rule="mem",
        metric="mem.used_percent",
        labels=make_labels(labels or {"instance": "web1"}),
        level=Level.MAJOR,
        priority="P2",
        state=IncidentState.OPEN,
        summary=SUMMARY,
        value=87.5,
        opened_at=1714564800.0,
        updated_at=1714564800.0,
    )
    return Notification(incident, transition, "ops-mail", recipients=recipients, key=key)


def make_config(host: str = "127.0.0.1", port: int = 25, **fields: Any) -> EmailChannelConfig:
    data: dict[str, Any] = {
        "type": "email",
        "host": host,
        "port": port,
        "starttls": False,
        "from": "Alertd <alertd@example.com>",
        "timeout": 5.0,
    }
    data.update(fields)
    return EmailChannelConfig.model_validate(data)


def parse(content: bytes) -> EmailMessage:
    msg = email.message_from_bytes(content, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


async def test_opened_notification_arrives(smtp_server: SmtpServer) -> None:
    notifier = EmailNotifier("ops-mail", make_config(smtp_server.host, smtp_server.port))
    n = make_notification(
        "oncall@example.com", "Ops Team <ops@example.com>", labels={"instance": "<b>web1</b>"}
    )

    await notifier.send(n)
    await notifier.close()

    [received] = smtp_server.messages
    assert received.mail_from == "alertd@example.com"
    assert received.rcpt_tos == ("oncall@example.com", "ops@example.com")
    msg = parse(received.content)
    assert msg["From"] == "Alertd <alertd@example.com>"
    assert msg["To"] == "oncall@example.com, Ops Team <ops@example.com>"
    assert msg["Subject"] == f"[P2] OPENED #12 major: {SUMMARY}"
    assert msg["Message-ID"].endswith("@example.com>")
    assert msg["Date"]
    assert msg["X-Alertd-Incident"] == "12"
    assert msg["X-Alertd-Transition"] == "opened"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    text, html = (p.get_content() for p in parts)
    assert SUMMARY in text
    assert SUMMARY in html
    assert "instance=<b>web1</b>" in text
    assert "instance=&lt;b&gt;web1&lt;/b&gt;" in html
    assert "<b>web1" not in html


async def test_channel_recipients_and_prefix_used_when_notification_has_none(
    smtp_server: SmtpServer, new_notifier: NewNotifier
) -> None:
    config = make_config(
        smtp_server.host, smtp_server.port, to=["ops@example.com"], subject_prefix="[alertd] "
    )
    await new_notifier(config).send(make_notification())

    [received] = smtp_server.messages
    assert received.rcpt_tos == ("ops@example.com",)
    assert parse(received.content)["Subject"].startswith("[alertd] [P2] OPENED #12")


async def test_message_id_is_stable_per_key(
    smtp_server: SmtpServer, new_notifier: NewNotifier
) -> None:
    notifier = new_notifier(make_config(smtp_server.host, smtp_server.port))
    for key in ["k1", "k1", "k2"]:  # OPENED is the thread root; every later mail has its own
        n = make_notification("a@example.com", key=key, transition=Transition.REPEAT)
        await notifier.send(n)

    ids = [parse(m.content)["Message-ID"] for m in smtp_server.messages]
    assert ids[0] == ids[1] != ids[2]


async def test_one_refused_recipient_of_two_still_delivers(
    smtp_server: SmtpServer, new_notifier: NewNotifier, caplog: pytest.LogCaptureFixture
) -> None:
    smtp_server.handler.refuse.add("gone@example.com")
    notifier = new_notifier(make_config(smtp_server.host, smtp_server.port))

    with caplog.at_level(logging.WARNING, logger="alertd.notify.email"):
        await notifier.send(make_notification("gone@example.com", "oncall@example.com"))

    [received] = smtp_server.messages
    assert received.rcpt_tos == ("oncall@example.com",)
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "gone@example.com: 550" in record.getMessage()


async def test_all_recipients_refused_is_permanent(
    smtp_server: SmtpServer, new_notifier: NewNotifier
) -> None:
    smtp_server.handler.refuse.update({"a@example.com", "b@example.com"})
    notifier = new_notifier(make_config(smtp_server.host, smtp_server.port))

    with pytest.raises(NotifyError, match=r"RCPT TO: all recipients refused") as info:
        await notifier.send(make_notification("a@example.com", "b@example.com"))

    assert info.value.retryable is False
    assert info.value.reason is FailureReason.RECIPIENT
    assert "a@example.com: 550" in str(info.value)
    assert smtp_server.messages == []


async def test_starttls_to_a_server_without_it_says_how_to_turn_it_off(
    smtp_server: SmtpServer, new_notifier: NewNotifier
) -> None:
    # user-test finding: starttls is on by default, check-config says OK, and every mail to a
    # plain server failed with "STARTTLS extension not supported" and no hint
    config = EmailChannelConfig.model_validate(
        {"type": "email", "host": smtp_server.host, "port": smtp_server.port, "from": "a@x.org"}
    )
    assert config.starttls  # the default
    with pytest.raises(
        NotifyError, match=r"STARTTLS: .*unless the channel says starttls: false"
    ) as info:
        await new_notifier(config).send(make_notification("a@example.com"))
    assert info.value.retryable is False
    assert smtp_server.messages == []


async def test_implicit_tls_to_a_plain_port_fails_at_once_and_says_why(
    smtp_server: SmtpServer, new_notifier: NewNotifier
) -> None:
    # verification finding: it was retried for max_age (an hour), WRONG_VERSION_NUMBER each time
    config = make_config(smtp_server.host, smtp_server.port, tls=True, starttls=False)
    with pytest.raises(NotifyError, match=r"TLS handshake: .*does not speak TLS") as info:
        await new_notifier(config).send(make_notification("a@example.com"))
    assert info.value.retryable is False
    assert smtp_server.messages == []


async def test_451_on_data_is_retryable(smtp_server: SmtpServer, new_notifier: NewNotifier) -> None:
    smtp_server.handler.fail_data = True
    notifier = new_notifier(make_config(smtp_server.host, smtp_server.port))

    with pytest.raises(NotifyError, match=r"send DATA: 451 ") as info:
        await notifier.send(make_notification("a@example.com"))

    assert info.value.retryable is True
    assert info.value.reason is FailureReason.SERVER_ERROR
    assert f"email ops-mail incident #12 to {smtp_server.host}:{smtp_server.port}" in str(
        info.value
    )


async def test_closed_port_is_retryable_connect_error(closed_port: int) -> None:
    notifier = EmailNotifier("ops-mail", make_config("127.0.0.1", closed_port))

    with pytest.raises(NotifyError, match=r"connect:") as info:
        await notifier.send(make_notification("a@example.com"))

    assert info.value.retryable is True
    assert info.value.reason is FailureReason.CONNECT


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never sends the SMTP greeting."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and closes
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(hold, "127.0.0.1", 0, family=socket.AF_INET)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def test_silent_server_is_retryable_timeout(silent_server: int) -> None:
    notifier = EmailNotifier("ops-mail", make_config("127.0.0.1", silent_server, timeout=0.2))

    with pytest.raises(NotifyError, match=r"timeout after 0.2s") as info:
        await notifier.send(make_notification("a@example.com"))

    assert info.value.retryable is True
    assert info.value.reason is FailureReason.TIMEOUT


async def test_unconfigured_host() -> None:
    notifier = EmailNotifier("ops-mail", make_config(host=""))

    with pytest.raises(NotifyError, match="not configured") as info:
        await notifier.send(make_notification("a@example.com"))

    assert info.value.retryable is False
    assert info.value.reason is FailureReason.UNCONFIGURED


async def test_no_recipients_anywhere() -> None:
    notifier = EmailNotifier("ops-mail", make_config())

    with pytest.raises(NotifyError, match="no recipients") as info:
        await notifier.send(make_notification())

    assert info.value.retryable is False
    assert info.value.reason is FailureReason.RECIPIENT


async def test_header_injection_in_recipient_is_refused() -> None:
    notifier = EmailNotifier("ops-mail", make_config())

    with pytest.raises(NotifyError, match="bad recipient") as info:
        await notifier.send(make_notification("a@example.com\r\nBcc: evil@example.com"))

    assert info.value.reason is FailureReason.RECIPIENT


async def test_login_then_deliver(smtp_server: SmtpServer, new_notifier: NewNotifier) -> None:
    smtp_server.handler.logins["alertd"] = PASSWORD
    config = make_config(smtp_server.host, smtp_server.port, username="alertd", password=PASSWORD)

    await new_notifier(config).send(make_notification("a@example.com"))

    assert len(smtp_server.messages) == 1


async def test_bad_password_is_permanent_and_never_shown(
    smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    smtp_server.handler.logins["alertd"] = "the-right-one"
    config = make_config(smtp_server.host, smtp_server.port, username="alertd", password=PASSWORD)
    notifier = EmailNotifier("ops-mail", config)

    with caplog.at_level(logging.DEBUG), pytest.raises(NotifyError, match=r"AUTH: 535 ") as info:
        await notifier.send(make_notification("a@example.com"))

    assert info.value.retryable is False
    assert info.value.reason is FailureReason.AUTH
    for text in [repr(config), str(config), repr(notifier), str(info.value), caplog.text]:
        assert PASSWORD not in text
    assert "**********" in repr(config)
    assert smtp_server.messages == []


# -- config: validation only, no socket ------------------------------------------------------


def test_tls_turns_starttls_default_off_and_port_to_465() -> None:
    config = EmailChannelConfig.model_validate(
        {"type": "email", "host": "smtp.example.com", "tls": True, "from": "a@example.com"}
    )
    assert (config.tls, config.starttls, config.port) == (True, False, 465)


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"tls": True, "starttls": True}, "exclusive"),
        ({"username": "u", "password": "p", "password_file": "/p"}, "exclusive"),
        ({"username": "u"}, "needs password"),
        ({"password": "p"}, "needs username"),
        ({"from": "not-an-address"}, "not one email address"),
        ({"from": "a@example.com, b@example.com"}, "not one email address"),
        ({"to": ["ok@example.com", "bad"]}, "not one email address"),
        ({"port": 0}, "greater than or equal to 1"),
        ({"timeout": 0}, "greater than 0"),
        ({"subject_prefix": "a\nBcc: x"}, "single line"),
        ({"smtp_host": "x"}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_config(fields: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        make_config(**fields)


def test_resolve_password_reads_file_once_without_newline(tmp_path: Path) -> None:
    secret = tmp_path / "smtp.password"
    secret.write_text(PASSWORD + "\n")
    config = make_config(username="alertd", password_file=str(secret))
    assert config.resolve_password() == PASSWORD
    assert make_config(username="alertd", password=PASSWORD).resolve_password() == PASSWORD
    assert make_config().resolve_password() is None


@pytest.mark.parametrize("content", [None, "\n"])
def test_unreadable_or_empty_password_file(tmp_path: Path, content: str | None) -> None:
    secret = tmp_path / "smtp.password"
    if content is not None:
        secret.write_text(content)
    config = make_config(username="alertd", password_file=str(secret))
    with pytest.raises(ConfigError, match="password_file"):
        EmailNotifier("ops-mail", config)
