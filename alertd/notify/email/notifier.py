"""The email channel: one ``Notification`` -> one multipart message over SMTP (aiosmtplib).

One connection per send (``close`` has nothing to release). Every failure becomes a
``NotifyError`` naming the channel, the incident, the server, the SMTP step and the server's
answer, with ``retryable``/``reason`` set: connection problems, timeouts and 4xx replies are
retryable; 5xx replies, auth, address and template problems are not. Recipients refused while
others were accepted are logged and the send counts as delivered.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import aiosmtplib
from jinja2 import TemplateError

from alertd.errors import FailureReason, NotifyError
from alertd.model import Notification
from alertd.notify import render
from alertd.notify.email.config import EmailChannelConfig, address_spec, check_address

log = logging.getLogger(__name__)


class EmailNotifier:
    """A ``Notifier`` that sends each notification as an email to its recipients."""

    def __init__(self, name: str, config: EmailChannelConfig) -> None:
        """Build the channel; reads ``password_file`` now (raises ``ConfigError`` if unreadable)."""
        self.name = name
        self._config = config
        self._password = config.resolve_password()
        self._server = f"{config.host}:{config.port}"

    def __repr__(self) -> str:
        return f"EmailNotifier(name={self.name!r}, server={self._server!r})"

    async def send(self, notification: Notification) -> None:
        """Send ``notification`` by SMTP or raise ``NotifyError``."""
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
        message = self._build(notification, recipients, what)

        where = f"{what} to {self._server}"
        try:
            refused, _ = await aiosmtplib.send(
                message,
                sender=address_spec(cfg.from_),
                recipients=[address_spec(r) for r in recipients],
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
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise _classify(where, exc, cfg.timeout) from exc
        if refused:
            log.warning(
                "%s: %d of %d recipients refused, delivered to the rest: %s",
                where,
                len(refused),
                len(recipients),
                "; ".join(f"{addr}: {r.code} {r.message}" for addr, r in sorted(refused.items())),
            )
        log.debug("%s: sent to %s", where, ", ".join(recipients))

    async def close(self) -> None:
        """Do nothing: each send opens and closes its own connection."""

    def _build(self, n: Notification, recipients: list[str], what: str) -> EmailMessage:
        cfg = self._config
        try:
            subject = cfg.subject_prefix + render.subject(n)
            text = render.text_body(n)
            html = render.html_body(n)
        except TemplateError as exc:
            raise NotifyError(
                f"{what}: render message: {exc}", retryable=False, reason=FailureReason.TEMPLATE
            ) from exc
        msg = EmailMessage()
        msg["From"] = cfg.from_
        msg["To"] = ", ".join(recipients)
        msg["Subject"] = subject
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = self._message_id(n)
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


def _classify(where: str, exc: Exception, timeout: float) -> NotifyError:
    """Translate an aiosmtplib/socket error into a ``NotifyError`` naming the SMTP step."""
    r = FailureReason
    step, retryable, reason, why = "SMTP session", False, r.OTHER, str(exc)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        # All refused: retry only if some refusal was temporary (4xx).
        step, reason = "send RCPT TO", r.RECIPIENT
        retryable = any(_by_code(e.code) for e in exc.recipients)
        why = "all recipients refused: " + "; ".join(
            f"{e.recipient}: {_reply(e)}" for e in exc.recipients
        )
    elif isinstance(exc, aiosmtplib.SMTPTimeoutError):
        step = "connect" if isinstance(exc, aiosmtplib.SMTPConnectTimeoutError) else "exchange"
        retryable, reason, why = True, r.TIMEOUT, f"timeout after {timeout}s: {exc}"
    elif isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        step, retryable, reason, why = "AUTH", _by_code(exc.code), r.AUTH, _reply(exc)
    elif isinstance(exc, aiosmtplib.SMTPConnectResponseError):
        # The greeting was not 220: 421 "busy" is transient, 554 "no service" is not.
        step, retryable, why = "connect", _by_code(exc.code), _reply(exc)
        reason = r.CONNECT if retryable else r.SERVER_ERROR
    elif isinstance(exc, aiosmtplib.SMTPResponseException):
        if isinstance(exc, aiosmtplib.SMTPSenderRefused):
            step = "send MAIL FROM"
        elif isinstance(exc, aiosmtplib.SMTPDataError):
            step = "send DATA"
        elif isinstance(exc, aiosmtplib.SMTPHeloError):
            step = "send EHLO"
        retryable, reason, why = _by_code(exc.code), r.SERVER_ERROR, _reply(exc)
    elif isinstance(exc, aiosmtplib.SMTPNotSupported):
        reason = r.CLIENT_ERROR
    elif isinstance(exc, ssl.SSLCertVerificationError):
        # A wrong certificate needs a human (or cafile/validate_certs), not a retry.
        step, reason = "TLS handshake", r.CONNECT
    elif isinstance(exc, aiosmtplib.SMTPConnectError):
        step, retryable, reason = "connect", True, r.CONNECT
    elif isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        step, retryable, reason = "exchange", True, r.CONNECT
    elif isinstance(exc, TimeoutError):
        retryable, reason, why = True, r.TIMEOUT, f"timeout after {timeout}s"
    elif isinstance(exc, OSError):
        step, retryable, reason = "connect", True, r.CONNECT
    return NotifyError(f"{where}: {step}: {why}", retryable=retryable, reason=reason)
