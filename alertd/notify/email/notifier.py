"""The email channel: one ``Notification`` -> one multipart message over SMTP (aiosmtplib).

Sessions: a channel keeps up to ``connections`` (default 1) SMTP sessions open and reuses
them; a send waits for a free session, so the sends on one session are serialised. A session
unused for ``idle_timeout`` seconds is closed with QUIT, and ``close()`` closes them all. A
reused session that turns out dead (the server dropped it while idle: a disconnect, a timeout
or a 421 before DATA) is replaced once, transparently, before anything is reported. Any other
failure closes the session it happened on; the next send opens a fresh one.

Errors: every failure becomes a ``NotifyError`` naming the channel, the incident, the server,
the SMTP step and the server's answer. Connection problems, timeouts and 4xx replies are
retryable; 5xx replies, auth, address and template problems are not. A timeout or disconnect
once DATA has begun is also ``ambiguous``: the server may have queued the message, so a retry
can duplicate it (with the same Message-ID). This includes the wait for the 354 before the
content goes out, which aiosmtplib does not tell apart; erring that way costs a spurious
"maybe delivered" mark, never a lost one. Before DATA nothing of the message has been
written (``nothing_written_yet``): a send stopped or timed out by the outbox while it waited
for a session, the greeting, or MAIL/RCPT is tried again plainly, not marked ambiguous.

Recipients (the contract with the outbox): all refused -> ``NotifyError`` (retryable if any
refusal was a 4xx). Some refused, the rest accepted -> the message goes out and
``Sent.refused`` lists each refused recipient as given on the notification with the server's
reply, which starts with its code: ``("gone@example.com", "550 5.1.1 ... unavailable")``.
A ``4xx`` reply means "try this recipient again later", a ``5xx`` one "never: fail over".

Threading: every mail about an incident carries ``In-Reply-To``/``References`` naming the
incident's thread root ``<alertd.incident.{id}.{int(opened_at)}@{from domain}>``, derived
from the incident alone (no state; a REOPENED incident keeps its id and ``opened_at``, so it
stays in its thread). The OPENED mail *is* the root: it uses that as its Message-ID, and every
other mail keeps its own, stable per idempotency key. Digests stand for several incidents, so
they join no thread (filing one under its latest incident would hide the others).
"""

from __future__ import annotations

import asyncio
import email.policy
import hashlib
import logging
import ssl
from dataclasses import dataclass
from email.headerregistry import HeaderRegistry, MessageIDHeader
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import aiosmtplib

from alertd.errors import FailureReason, NotifyError
from alertd.model import Incident, Notification, Transition
from alertd.notify import render
from alertd.notify.email.config import EmailChannelConfig, address_spec, check_address
from alertd.notify.notifier import Sent, nothing_written_yet

log = logging.getLogger(__name__)

# Bodies are made 7-bit clean (quoted-printable/base64 for non-ASCII) when built, so any
# server takes them without 8BITMIME; headers are RFC 2047-encoded unless SMTPUTF8 is used.
# In-Reply-To and References hold a msg-id, as Message-ID does: folded as text, a long one
# (a long From domain) became RFC 2047 encoded-words, which no mail client threads by
_HEADERS = HeaderRegistry()
# (the registry mixes BaseHeader in itself, as for its own defaults; typeshed wants it already)
_HEADERS.map_to_type("in-reply-to", MessageIDHeader)  # type: ignore[arg-type]
_HEADERS.map_to_type("references", MessageIDHeader)  # type: ignore[arg-type]
_POLICY = email.policy.SMTP.clone(cte_type="7bit", header_factory=_HEADERS)
_POLICY_UTF8 = email.policy.SMTPUTF8.clone(cte_type="7bit", header_factory=_HEADERS)
_DATA = "send DATA"
QUIT_TIMEOUT = 5.0  # at most this long (or the channel's timeout) to say goodbye


def thread_root(incident: Incident, domain: str) -> str:
    """Return the Message-ID every mail about ``incident`` refers to (the OPENED mail's own)."""
    return f"<alertd.incident.{incident.id}.{int(incident.opened_at)}@{domain}>"


@dataclass(eq=False, slots=True)
class _Session:
    """One slot of the pool: an SMTP client (None until needed or after a close)."""

    client: aiosmtplib.SMTP | None = None
    idle: asyncio.TimerHandle | None = None
    busy: bool = False


@dataclass(slots=True)
class _Progress:
    step: str = "connect"


class EmailNotifier:
    """A ``Notifier`` that sends each notification as an email to its recipients."""

    def __init__(self, name: str, config: EmailChannelConfig) -> None:
        """Build the channel; reads ``password_file`` now (raises ``ConfigError`` if unreadable).

        No connection is opened until the first send.
        """
        self.name = name
        self._config = config
        self._password = config.resolve_password()
        self._server = f"{config.host}:{config.port}"
        self._sessions = [_Session() for _ in range(config.connections)]
        self._free: asyncio.Queue[_Session] = asyncio.Queue()
        for session in self._sessions:
            self._free.put_nowait(session)
        self._quitting: set[asyncio.Task[None]] = set()
        self._closed = False

    def __repr__(self) -> str:
        return f"EmailNotifier(name={self.name!r}, server={self._server!r})"

    async def send(self, notification: Notification) -> Sent:
        """Send ``notification`` by SMTP over a pooled session or raise ``NotifyError``.

        Returns the message's Message-ID as ``provider_id`` and the recipients the server
        refused while it accepted others (see the module docstring for the contract).
        """
        cfg = self._config
        what = f"email {self.name} incident #{notification.incident.id}"
        if not cfg.configured:
            raise NotifyError(
                f"{what}: channel not configured (empty host)",
                retryable=False,
                reason=FailureReason.UNCONFIGURED,
            )
        recipients = list(notification.recipients) or list(cfg.to)
        if not recipients:
            raise NotifyError(
                f"{what}: no recipients (none on the notification, channel 'to' is empty)",
                retryable=False,
                reason=FailureReason.RECIPIENT,
            )
        for address in recipients:
            try:
                check_address(address)
            except ValueError as exc:
                raise NotifyError(
                    f"{what}: bad recipient: {exc}", retryable=False, reason=FailureReason.RECIPIENT
                ) from exc
        message = self._build(notification, recipients)
        envelope: dict[str, str] = {}  # envelope address -> as the notification named it
        for r in recipients:
            envelope.setdefault(address_spec(r), r)
        rcpts = list(envelope)

        where = f"{what} to {self._server}"
        nothing_written_yet(True)  # until DATA: a stop or a timeout before it sent nothing
        session = await self._free.get()
        session.busy = True
        if session.idle is not None:
            session.idle.cancel()
            session.idle = None
        try:
            refused = await self._deliver(session, message, rcpts, where)
        finally:
            self._release(session)
        if refused:
            log.warning(
                "%s: %d of %d recipients refused, delivered to the rest: %s",
                where,
                len(refused),
                len(rcpts),
                "; ".join(f"{e.recipient}: {_reply(e)}" for e in refused),
            )
        log.debug("%s: sent to %s", where, ", ".join(recipients))
        return Sent(
            provider_id=str(message["Message-ID"]),
            refused=tuple((envelope.get(e.recipient, e.recipient), _reply(e)) for e in refused),
        )

    async def close(self) -> None:
        """Close every idle session (QUIT); a session in use is closed when its send ends.

        The channel stays usable: a later send opens a session and closes it when done.
        """
        self._closed = True
        goodbyes = []
        for session in self._sessions:
            if session.idle is not None:
                session.idle.cancel()
                session.idle = None
            if not session.busy and session.client is not None:
                client, session.client = session.client, None
                goodbyes.append(self._quit(client))
        await asyncio.gather(*goodbyes, *self._quitting)

    # -- sessions ------------------------------------------------------------------------------

    async def _deliver(
        self, session: _Session, message: EmailMessage, rcpts: list[str], where: str
    ) -> list[aiosmtplib.SMTPRecipientRefused]:
        """Run one mail transaction on ``session``, replacing a dead reused session once."""
        timeout = self._config.timeout
        for attempt in (1, 2):
            reused = session.client is not None and session.client.is_connected
            if not reused:
                self._drop(session)
                session.client = await self._connect(where)
            assert session.client is not None
            progress = _Progress()
            try:
                return await self._transact(session.client, message, rcpts, progress)
            except (aiosmtplib.SMTPException, OSError) as exc:
                self._drop(session)
                if reused and attempt == 1 and _stale(exc, progress.step):
                    log.debug("%s: reused session is gone (%s); reconnecting", where, exc)
                    continue
                raise _classify(where, exc, timeout, progress.step) from exc
            except BaseException:  # cancelled mid-transaction: the session is out of step
                self._drop(session)
                raise
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def _connect(self, where: str) -> aiosmtplib.SMTP:
        cfg = self._config
        client = aiosmtplib.SMTP(
            hostname=cfg.host,
            port=cfg.port,
            use_tls=cfg.tls,
            start_tls=cfg.starttls,
            username=cfg.username,
            password=self._password,
            timeout=cfg.timeout,
            validate_certs=cfg.validate_certs,
            cert_bundle=str(cfg.cafile) if cfg.cafile is not None else None,
        )
        try:
            await client.connect()
        except (aiosmtplib.SMTPException, OSError) as exc:
            client.close()
            raise _classify(where, exc, cfg.timeout) from exc
        return client

    async def _transact(
        self,
        client: aiosmtplib.SMTP,
        message: EmailMessage,
        rcpts: list[str],
        progress: _Progress,
    ) -> list[aiosmtplib.SMTPRecipientRefused]:
        """MAIL, RCPT per recipient, DATA; return the refused recipients if some were accepted."""
        sender = address_spec(self._config.from_)
        if client.is_ehlo_or_helo_needed:
            progress.step = "send EHLO"
            await client.ehlo()
        utf8 = not all(a.isascii() for a in (sender, *rcpts))
        if utf8 and not client.supports_extension("smtputf8"):
            raise aiosmtplib.SMTPNotSupported(
                "an address is not ASCII and the server does not offer SMTPUTF8"
            )
        encoding, options = ("utf-8", ["SMTPUTF8"]) if utf8 else ("ascii", [])
        progress.step = "send MAIL FROM"
        await client.mail(sender, options=options, encoding=encoding)
        progress.step = "send RCPT TO"
        refused: list[aiosmtplib.SMTPRecipientRefused] = []
        for rcpt in rcpts:
            try:
                await client.rcpt(rcpt, encoding=encoding)
            except aiosmtplib.SMTPRecipientRefused as exc:
                if exc.code == 421:  # "closing the channel": the session is gone, not the rcpt
                    raise
                refused.append(exc)
        if len(refused) == len(rcpts):
            raise aiosmtplib.SMTPRecipientsRefused(refused)
        progress.step = _DATA
        nothing_written_yet(False)  # from here the server may take the message
        await client.data(message.as_bytes(policy=_POLICY_UTF8 if utf8 else _POLICY))
        return refused

    def _release(self, session: _Session) -> None:
        session.busy = False
        if session.client is not None:
            if self._closed:
                self._drop(session)
            else:
                loop = asyncio.get_running_loop()
                session.idle = loop.call_later(self._config.idle_timeout, self._expire, session)
        self._free.put_nowait(session)

    def _expire(self, session: _Session) -> None:
        """Close a session nobody used for ``idle_timeout`` (it sits in the free queue)."""
        session.idle = None
        client, session.client = session.client, None
        if client is not None:
            task = asyncio.get_running_loop().create_task(self._quit(client))
            self._quitting.add(task)
            task.add_done_callback(self._quitting.discard)

    async def _quit(self, client: aiosmtplib.SMTP) -> None:
        try:
            if client.is_connected:
                await client.quit(timeout=min(self._config.timeout, QUIT_TIMEOUT))
        except (aiosmtplib.SMTPException, OSError) as exc:
            log.debug("email %s: QUIT to %s: %s", self.name, self._server, exc)
        finally:
            client.close()

    @staticmethod
    def _drop(session: _Session) -> None:
        """Close the session's connection without QUIT (it failed or is out of step)."""
        if session.client is not None:
            session.client.close()
            session.client = None

    # -- the message ---------------------------------------------------------------------------

    def _build(self, n: Notification, recipients: list[str]) -> EmailMessage:
        cfg = self._config
        subject = cfg.subject_prefix + render.subject(n, cfg.template)
        text = render.text_body(n, cfg.template)
        html = render.html_body(n, cfg.template)
        msg = EmailMessage(policy=_POLICY)
        msg["From"] = cfg.from_
        msg["To"] = ", ".join(recipients)
        msg["Subject"] = subject
        msg["Date"] = formatdate(usegmt=True)
        root = thread_root(n.incident, cfg.from_domain)
        if n.digest:
            msg["Message-ID"] = self._message_id(n)
        elif n.transition is Transition.OPENED:
            msg["Message-ID"] = root
        else:
            msg["Message-ID"] = self._message_id(n)
            msg["In-Reply-To"] = root
            msg["References"] = root
        msg["X-Alertd-Incident"] = str(n.incident.id)
        msg["X-Alertd-Transition"] = n.transition.value
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(text)
        msg.add_alternative(html, subtype="html")
        return msg

    def _message_id(self, n: Notification) -> str:
        """Return a Message-ID; stable per idempotency key so a retried send keeps it."""
        domain = self._config.from_domain
        if n.key:
            digest = hashlib.sha256(n.key.encode()).hexdigest()[:32]
            return f"<alertd.{n.incident.id}.{digest}@{domain}>"
        return make_msgid(idstring=f"alertd.{n.incident.id}", domain=domain)


def _reply(exc: aiosmtplib.SMTPResponseException) -> str:
    return f"{exc.code} {exc.message}"


def _by_code(code: int) -> bool:
    """Return whether an SMTP reply code is worth retrying (4xx transient, 5xx permanent)."""
    return 400 <= code < 500


def _stale(exc: Exception, step: str) -> bool:
    """Whether a failure on a reused session means "it was dead", safe to redo on a new one.

    A 421 ("closing the channel") anywhere, or a disconnect or timeout before DATA began;
    never a disconnect or timeout during DATA, when the server may have the message already.
    """
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return exc.code == 421
    return step != _DATA and isinstance(exc, ConnectionError | TimeoutError)


def _classify(where: str, exc: Exception, timeout: float, step: str | None = None) -> NotifyError:
    """Translate an aiosmtplib/socket error into a ``NotifyError`` naming the SMTP step.

    ``step`` is the step under way when ``exc`` came (None: opening the session).
    """
    r = FailureReason
    at, retryable, reason, why = step or "SMTP session", False, r.OTHER, str(exc)
    lost = False  # the connection broke or timed out (not a reply)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        # All refused: retry only if some refusal was temporary (4xx).
        at, reason = "send RCPT TO", r.RECIPIENT
        retryable = any(_by_code(e.code) for e in exc.recipients)
        why = "all recipients refused: " + "; ".join(
            f"{e.recipient}: {_reply(e)}" for e in exc.recipients
        )
    elif isinstance(exc, aiosmtplib.SMTPTimeoutError):
        if step is None:
            at = "connect" if isinstance(exc, aiosmtplib.SMTPConnectTimeoutError) else "exchange"
        retryable, reason, why, lost = True, r.TIMEOUT, f"timeout after {timeout}s: {exc}", True
    elif isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        at, retryable, reason, why = "AUTH", _by_code(exc.code), r.AUTH, _reply(exc)
    elif isinstance(exc, aiosmtplib.SMTPConnectResponseError):
        # The greeting was not 220: 421 "busy" is transient, 554 "no service" is not.
        at, retryable, why = "connect", _by_code(exc.code), _reply(exc)
        reason = r.CONNECT if retryable else r.SERVER_ERROR
    elif isinstance(exc, aiosmtplib.SMTPResponseException):
        if step is None:
            if isinstance(exc, aiosmtplib.SMTPSenderRefused):
                at = "send MAIL FROM"
            elif isinstance(exc, aiosmtplib.SMTPDataError):
                at = _DATA
            elif isinstance(exc, aiosmtplib.SMTPHeloError):
                at = "send EHLO"
        retryable, reason, why = _by_code(exc.code), r.SERVER_ERROR, _reply(exc)
    elif isinstance(exc, aiosmtplib.SMTPNotSupported):
        reason = r.CLIENT_ERROR
    elif "STARTTLS extension not supported" in why:  # (a bare SMTPException: no subclass)
        # starttls is on by default: a server without TLS needs it off, not a retry
        at, reason = "STARTTLS", r.CLIENT_ERROR
        why += (
            " (STARTTLS is on unless the channel says starttls: false;"
            " say so for a server without TLS)"
        )
    elif isinstance(exc, ssl.SSLCertVerificationError) or isinstance(
        exc.__cause__, ssl.SSLCertVerificationError
    ):
        # A wrong certificate needs a human (or cafile/validate_certs), not a retry. With
        # implicit TLS (port 465) aiosmtplib wraps it in an SMTPConnectError
        at, reason = "TLS handshake", r.CONNECT
    elif "WRONG_VERSION_NUMBER" in f"{exc} {exc.__cause__}":
        # tls (implicit TLS) against a port that speaks plain SMTP: no retry will do
        at, reason = "TLS handshake", r.CONNECT
        why += (
            " (the server does not speak TLS on this port: tls: true is implicit TLS, usually"
            " port 465; use starttls on 587 or 25)"
        )
    elif isinstance(exc, aiosmtplib.SMTPConnectError):
        at, retryable, reason = "connect", True, r.CONNECT
    elif isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        at, retryable, reason, lost = step or "exchange", True, r.CONNECT, True
    elif isinstance(exc, TimeoutError):
        retryable, reason, why, lost = True, r.TIMEOUT, f"timeout after {timeout}s", True
    elif isinstance(exc, OSError):
        at, retryable, reason, lost = step or "connect", True, r.CONNECT, True
    ambiguous = lost and step == _DATA
    if ambiguous:
        why += " (after DATA began: the server may have queued the message)"
    return NotifyError(
        f"{where}: {at}: {why}", retryable=retryable, reason=reason, ambiguous=ambiguous
    )
