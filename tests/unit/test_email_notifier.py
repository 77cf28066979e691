"""The email channel's pure parts: error classification, stale-session test, thread root,
and the config fields for sessions and templates. No sockets."""

from __future__ import annotations

from typing import Any

import aiosmtplib
import pytest
from pydantic import ValidationError

from alertd.errors import FailureReason
from alertd.model import Incident, IncidentState, Level, make_labels
from alertd.notify.email.config import EmailChannelConfig
from alertd.notify.email.notifier import _classify, _stale, thread_root

WHERE = "email ops-mail incident #12 to smtp.example.com:587"


def config(**fields: Any) -> EmailChannelConfig:
    data: dict[str, Any] = {"type": "email", "host": "smtp.example.com", "from": "a@example.com"}
    data.update(fields)
    return EmailChannelConfig.model_validate(data)


@pytest.mark.parametrize(
    ("exc", "step", "retryable", "ambiguous", "reason", "text"),
    [
        (
            aiosmtplib.SMTPServerDisconnected("Connection lost"),
            "send DATA",
            True,
            True,
            FailureReason.CONNECT,
            "send DATA: Connection lost (after DATA began",
        ),
        (
            aiosmtplib.SMTPReadTimeoutError("Timed out waiting for server response"),
            "send DATA",
            True,
            True,
            FailureReason.TIMEOUT,
            "send DATA: timeout after 10.0s",
        ),
        (
            ConnectionResetError(104, "Connection reset by peer"),
            "send DATA",
            True,
            True,
            FailureReason.CONNECT,
            "send DATA: [Errno 104]",
        ),
        (
            aiosmtplib.SMTPServerDisconnected("Connection lost"),
            "send RCPT TO",
            True,
            False,
            FailureReason.CONNECT,
            "send RCPT TO: Connection lost",
        ),
        (
            aiosmtplib.SMTPDataError(451, "4.3.0 try again"),
            "send DATA",
            True,
            False,
            FailureReason.SERVER_ERROR,
            "send DATA: 451 4.3.0 try again",
        ),
        (
            aiosmtplib.SMTPDataError(554, "5.7.1 spam"),
            "send DATA",
            False,
            False,
            FailureReason.SERVER_ERROR,
            "send DATA: 554 5.7.1 spam",
        ),
        (
            aiosmtplib.SMTPRecipientRefused(421, "4.3.2 closing", "a@example.com"),
            "send RCPT TO",
            True,
            False,
            FailureReason.SERVER_ERROR,
            "send RCPT TO: 421 4.3.2 closing",
        ),
        (
            aiosmtplib.SMTPConnectTimeoutError("Timed out connecting"),
            None,
            True,
            False,
            FailureReason.TIMEOUT,
            "connect: timeout after 10.0s",
        ),
        (
            aiosmtplib.SMTPConnectResponseError(554, "no service"),
            None,
            False,
            False,
            FailureReason.SERVER_ERROR,
            "connect: 554 no service",
        ),
        (
            ConnectionRefusedError(111, "Connection refused"),
            None,
            True,
            False,
            FailureReason.CONNECT,
            "connect: [Errno 111]",
        ),
    ],
)
def test_classify(
    exc: Exception,
    step: str | None,
    retryable: bool,
    ambiguous: bool,
    reason: FailureReason,
    text: str,
) -> None:
    err = _classify(WHERE, exc, 10.0, step)

    assert (err.retryable, err.ambiguous, err.reason) == (retryable, ambiguous, reason)
    assert str(err).startswith(f"{WHERE}: {text}")


@pytest.mark.parametrize(
    ("exc", "step", "stale"),
    [
        (aiosmtplib.SMTPServerDisconnected("lost"), "send MAIL FROM", True),
        (aiosmtplib.SMTPReadTimeoutError("slow"), "send RCPT TO", True),
        (BrokenPipeError(32, "Broken pipe"), "send MAIL FROM", True),
        (aiosmtplib.SMTPSenderRefused(421, "4.4.2 idle timeout", "a@example.com"), "x", True),
        (aiosmtplib.SMTPDataError(421, "closing"), "send DATA", True),
        (aiosmtplib.SMTPServerDisconnected("lost"), "send DATA", False),
        (aiosmtplib.SMTPReadTimeoutError("slow"), "send DATA", False),
        (aiosmtplib.SMTPSenderRefused(451, "4.3.0 busy", "a@example.com"), "x", False),
        (aiosmtplib.SMTPDataError(550, "no"), "send DATA", False),
    ],
)
def test_stale(exc: Exception, step: str, stale: bool) -> None:
    assert _stale(exc, step) is stale


def test_thread_root_is_per_incident_and_opening() -> None:
    incident = Incident(
        id=7,
        fingerprint="f",
        rule="r",
        metric="m",
        labels=make_labels({}),
        level=Level.MAJOR,
        priority="P2",
        state=IncidentState.OPEN,
        summary="s",
        value=None,
        opened_at=1714564800.75,
        updated_at=1714564900.0,
    )

    assert thread_root(incident, "example.com") == "<alertd.incident.7.1714564800@example.com>"


def test_session_and_template_defaults() -> None:
    cfg = config()

    assert (cfg.connections, cfg.idle_timeout, cfg.template) == (1, 30.0, None)
    custom = config(template={"subject": "#{{ id }}"}, connections=3, idle_timeout=5)
    assert custom.template is not None
    assert custom.template.subject == "#{{ id }}"
    assert custom.connections == 3


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"connections": 0}, "greater than or equal to 1"),
        ({"connections": 17}, "less than or equal to 16"),
        ({"idle_timeout": 0}, "greater than 0"),
        ({"template": {"subject": "{{ id"}}, "template syntax error"),
        ({"template": {"body": "x"}}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_session_and_template_config(fields: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        config(**fields)
