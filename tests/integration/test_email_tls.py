"""The email channel over implicit TLS (port 465 style) against a real aiosmtpd server with a
self-signed certificate: trusted through ``cafile`` it delivers; not trusted, it fails at
once (a wrong certificate needs a human, not an hour of retries) so the page fails over."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from alertd.errors import NotifyError
from alertd.model import Incident, IncidentState, Level, Notification, Transition
from alertd.notify.email.config import EmailChannelConfig
from alertd.notify.email.notifier import EmailNotifier
from tests.conftest import RecordingHandler, free_port

pytestmark = pytest.mark.integration


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by itself; return (cert, key) files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alertd test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "server.crt", directory / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path, RecordingHandler]]:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    handler = RecordingHandler()
    controller = Controller(
        handler, hostname="127.0.0.1", port=free_port("127.0.0.1"), ssl_context=context
    )
    controller.start()
    try:
        yield controller.port, cert, handler
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
