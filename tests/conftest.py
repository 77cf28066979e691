"""Shared peers for integration and e2e tests: a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvloop
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from alertd.notify.email.config import EmailChannelConfig
from alertd.notify.email.notifier import EmailNotifier
from alertd.state.db import connect


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Async tests run on asyncio's loop; those marked ``both_loops`` on uvloop's too, the
    loop the daemon and its worker run on (``alertd/event_loop.py``)."""
    if item.get_closest_marker("both_loops") is not None:
        return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}


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


DROP = "DROP"  # scripted: close the connection without answering
HOLD = "HOLD"  # scripted: never answer; the session waits until the client gives up


@dataclass(slots=True)
class RecordingHandler:
    """aiosmtpd handler: records messages; can refuse recipients (550) or DATA (451).

    AUTH (PLAIN/LOGIN, offered without TLS) succeeds only for a pair in ``logins``.

    ``script`` scripts the answers to MAIL, RCPT and DATA: each command takes the first entry
    of its list, if any, instead of answering normally. An entry is a reply line
    (``"451 4.3.0 busy"``; a ``421`` one also closes the connection, as a real server does),
    ``DROP`` or ``HOLD``. For DATA, ``DROP`` and ``HOLD`` record the message first: the
    server has it, the client never hears so. ``sessions`` lists each connection that sent
    MAIL, once, and ``quits`` counts QUITs; ``drop_connections()`` closes every connection
    from the server side.
    """

    messages: list[ReceivedMessage] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    fail_data: bool = False
    logins: dict[str, str] = field(default_factory=dict)
    script: dict[str, list[str]] = field(default_factory=dict)
    sessions: list[Session] = field(default_factory=list)
    quits: int = 0  # QUIT commands received
    _servers: list[SMTP] = field(default_factory=list)

    async def _scripted(self, command: str, server: SMTP) -> str | None:
        """Return the scripted reply for ``command`` (None: answer normally)."""
        queue = self.script.get(command)
        if not queue:
            return None
        action = queue.pop(0)
        transport = server.transport
        if action == DROP:
            if transport is not None:
                transport.close()
            await asyncio.Future()  # cancelled when aiosmtpd sees the connection is gone
        if action == HOLD:
            await asyncio.Future()  # likewise, once the client times out and closes
        if action.startswith("421") and transport is not None:
            server.loop.call_soon(transport.close)  # after the reply is written
        return action

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if not any(s is session for s in self.sessions):
            self.sessions.append(session)
            self._servers.append(server)
        if (reply := await self._scripted("MAIL", server)) is not None:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.quits += 1
        return "221 Bye"

    def drop_connections(self) -> None:
        """Close every client connection from the server side and wait until that is done."""

        async def close_all() -> None:
            for server in self._servers:
                if server.transport is not None:
                    server.transport.close()

        loop = self._servers[0].loop if self._servers else None
        if loop is not None:
            asyncio.run_coroutine_threadsafe(close_all(), loop).result(timeout=10)

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
        if (reply := await self._scripted("RCPT", server)) is not None:
            return reply
        if address in self.refuse:
            return f"550 5.1.1 <{address}>: mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        queue = self.script.get("DATA")
        if queue and queue[0] in (DROP, HOLD):
            self._record(envelope)
        if (reply := await self._scripted("DATA", server)) is not None:
            return reply
        if self.fail_data:
            return "451 4.3.0 try again later"
        self._record(envelope)
        return "250 2.0.0 queued"

    def _record(self, envelope: Envelope) -> None:
        content = envelope.original_content or b""
        self.messages.append(
            ReceivedMessage(str(envelope.mail_from), tuple(envelope.rcpt_tos), content)
        )


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


def _start_smtp_server(port: int | None = None) -> tuple[SmtpServer, Controller]:
    handler = RecordingHandler()
    host = "127.0.0.1"
    controller = Controller(
        handler,
        hostname=host,
        port=free_port(host) if port is None else port,
        authenticator=handler.authenticate,
        auth_require_tls=False,  # the test client speaks plain SMTP to 127.0.0.1
    )
    controller.start()
    return SmtpServer(host=host, port=controller.port, handler=handler), controller


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """Run an aiosmtpd server on 127.0.0.1 for one test.

    aiosmtpd 1.4's ``Controller`` connects to its own ``port`` once started to check it is up,
    so port 0 cannot be passed through: pick a free port first.
    """
    server, controller = _start_smtp_server()
    try:
        yield server
    finally:
        controller.stop()


@pytest.fixture
def start_smtp_server() -> Iterator[Callable[[int], SmtpServer]]:
    """Return ``start(port)``: run an aiosmtpd server on 127.0.0.1:``port`` from then on.

    For "nothing listens, then a server comes up" tests; every server started is stopped at
    the end of the test.
    """
    controllers: list[Controller] = []

    def start(port: int) -> SmtpServer:
        server, controller = _start_smtp_server(port)
        controllers.append(controller)
        return server

    try:
        yield start
    finally:
        for controller in controllers:
            controller.stop()


NewNotifier = Callable[[EmailChannelConfig], EmailNotifier]


@pytest.fixture
async def new_notifier() -> AsyncIterator[NewNotifier]:
    """Return ``new(config)``: an ``EmailNotifier`` named ops-mail, closed after the test
    (it keeps its SMTP session open between sends)."""
    made: list[EmailNotifier] = []

    def new(config: EmailChannelConfig) -> EmailNotifier:
        made.append(EmailNotifier("ops-mail", config))
        return made[-1]

    yield new
    for notifier in made:
        await notifier.close()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A fresh state database (all migrations applied) in ``tmp_path``."""
    conn = connect(tmp_path)
    yield conn
    conn.close()
