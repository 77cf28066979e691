"""Shared peers for integration and e2e tests: a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


def free_port(host: str = "127.0.0.1") -> int:
    """Return a port that was free a moment ago (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """One message as the server saw it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes


@dataclass(slots=True)
class RecordingHandler:
    """aiosmtpd handler: records messages; can refuse recipients (550) or DATA (451).

    AUTH (PLAIN/LOGIN, offered without TLS) succeeds only for a pair in ``logins``.
    """

    messages: list[ReceivedMessage] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    fail_data: bool = False
    logins: dict[str, str] = field(default_factory=dict)

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: object
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and self.logins.get(data.login.decode()) == data.password.decode()
        )
        # handled=False lets aiosmtpd answer 535 itself on failure.
        return AuthResult(success=ok, handled=False)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address in self.refuse:
            return f"550 5.1.1 <{address}>: mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.fail_data:
            return "451 4.3.0 try again later"
        content = envelope.original_content or b""
        self.messages.append(
            ReceivedMessage(str(envelope.mail_from), tuple(envelope.rcpt_tos), content)
        )
        return "250 2.0.0 queued"


@dataclass(frozen=True, slots=True)
class SmtpServer:
    """What a test needs of the running server."""

    host: str
    port: int
    handler: RecordingHandler

    @property
    def messages(self) -> list[ReceivedMessage]:
        return self.handler.messages


@pytest.fixture
def closed_port() -> int:
    """Return a port on 127.0.0.1 that was just bound and closed: nothing listens there."""
    return free_port()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """Run an aiosmtpd server on 127.0.0.1 for one test.

    aiosmtpd 1.4's ``Controller`` connects to its own ``port`` once started to check it is up,
    so port 0 cannot be passed through: pick a free port first.
    """
    handler = RecordingHandler()
    host = "127.0.0.1"
    controller = Controller(
        handler,
        hostname=host,
        port=free_port(host),
        authenticator=handler.authenticate,
        auth_require_tls=False,  # the test client speaks plain SMTP to 127.0.0.1
    )
    controller.start()
    try:
        yield SmtpServer(host=host, port=controller.port, handler=handler)
    finally:
        controller.stop()
