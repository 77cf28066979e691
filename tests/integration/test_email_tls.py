"""The email channel over implicit TLS (port 465 style) against a real aiosmtpd server with a
self-signed certificate: trusted through ``cafile`` it delivers; not trusted, it fails at
once (a wrong certificate needs a human, not an hour of retries) so the page fails over."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from alertd.errors import NotifyError
from alertd.model import Incident, IncidentState, Level, Notification, Transition
from alertd.notify.email.config import EmailChannelConfig
from alertd.notify.email.notifier import EmailNotifier
from tests.certs import self_signed
from tests.conftest import RecordingHandler, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path, RecordingHandler]]:
    cert = self_signed(tmp_path, "127.0.0.1")
    handler = RecordingHandler()
    controller = Controller(
        handler, hostname="127.0.0.1", port=free_port("127.0.0.1"), ssl_context=cert.server()
    )
    controller.start()
    try:
        yield controller.port, cert.cert, handler
    finally:
        controller.stop()


def page() -> Notification:
    incident = Incident(
        7,
        "f7",
        "cpu",
        "cpu",
        (("instance", "web1"),),
        Level.MAJOR,
        "P2",
        IncidentState.OPEN,
        "cpu high on web1",
        97.0,
        1714564800.0,
        1714564800.0,
    )
    return Notification(incident, Transition.OPENED, "mail", recipients=("ops@example.com",))


def config(port: int, **extra: object) -> EmailChannelConfig:
    return EmailChannelConfig.model_validate(
        {
            "type": "email",
            "host": "127.0.0.1",
            "port": port,
            "tls": True,
            "from": "alertd@example.com",
            "timeout": 5,
            **extra,
        }
    )


async def test_implicit_tls_with_the_servers_ca_delivers(tls_server) -> None:  # type: ignore[no-untyped-def]
    port, cert, handler = tls_server
    notifier = EmailNotifier("mail", config(port, cafile=str(cert)))
    try:
        await notifier.send(page())
    finally:
        await notifier.close()
    (message,) = handler.messages
    assert message.rcpt_tos == ("ops@example.com",)


async def test_an_untrusted_certificate_fails_at_once_not_after_an_hour_of_retries(
    tls_server,
) -> None:  # type: ignore[no-untyped-def]
    # user-test finding: over implicit TLS this was "connect", retried until max_age
    port, _, handler = tls_server
    notifier = EmailNotifier("mail", config(port))
    try:
        with pytest.raises(NotifyError) as info:
            await notifier.send(page())
    finally:
        await notifier.close()
    assert not info.value.retryable
    assert "TLS handshake" in str(info.value)
    assert handler.messages == []
