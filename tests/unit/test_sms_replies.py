"""Twilio webhook logic without a socket: status order, reply parsing, TwiML answers."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET

import pytest

from alertd.notify.sms.hooks import MessageStatus, parse_reply, status_advances, twiml_message

FORWARD = ["scheduled", "accepted", "queued", "sending", "sent", "delivered", "read"]


@pytest.mark.parametrize(("old", "new"), list(itertools.combinations(FORWARD, 2)))
def test_status_moves_forward(old: str, new: str) -> None:
    assert status_advances(old, new)
    assert not status_advances(new, old)


@pytest.mark.parametrize("status", [s.value for s in MessageStatus])
def test_a_repeated_status_changes_nothing(status: str) -> None:
    assert not status_advances(status, status)


@pytest.mark.parametrize("late", ["queued", "sending", "sent", "undelivered", "failed"])
def test_nothing_late_overrides_delivered(late: str) -> None:
    assert not status_advances("delivered", late)


def test_failure_states_are_final_except_for_proof_of_delivery() -> None:
    assert status_advances("sent", "undelivered")
    assert status_advances("queued", "failed")
    assert not status_advances("undelivered", "failed")
    assert not status_advances("failed", "sent")
    assert status_advances("undelivered", "delivered")


def test_unknown_statuses() -> None:
    assert status_advances(None, "sent")
    assert status_advances(None, "teleported")
    assert not status_advances("sent", "teleported")
    assert status_advances("teleported", "sent")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("ACK 42", ("ack", 42)),
        ("ack 42", ("ack", 42)),
        ("ack #42", ("ack", 42)),
        ("Ack#42", ("ack", 42)),
        ("ACK42", ("ack", 42)),
        ("  ack   # 7  \n", ("ack", 7)),
        ("Resolve 42", ("resolve", 42)),
        ("RESOLVE #1000000", ("resolve", 1000000)),
        ("\tresolve\u00a012", ("resolve", 12)),
    ],
)
def test_parse_reply_accepts(body: str, expected: tuple[str, int]) -> None:
    assert parse_reply(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        "",
        "ACK",
        "42",
        "ACK forty-two",
        "ACK 42 please",
        "please ACK 42",
        "ACK 42 43",
        "ACK -42",
        "ACK 4.2",
        "ACK \uff14\uff12",  # full-width digits
        "acknowledge 42",
        "RES 42",
        "STOP",
        "ACK 1234567890123456789",  # longer than any incident id
    ],
)
def test_parse_reply_rejects(body: str) -> None:
    assert parse_reply(body) is None


def test_twiml_message_is_escaped_xml() -> None:
    text = 'Acked #42 <by> "+8613800001111" & co\x00\x07'
    doc = twiml_message(text)
    assert doc.startswith('<?xml version="1.0" encoding="UTF-8"?><Response><Message>')
    root = ET.fromstring(doc)
    message = root.find("Message")
    assert message is not None
    assert message.text == 'Acked #42 <by> "+8613800001111" & co'


def test_twiml_without_text_sends_no_reply() -> None:
    assert twiml_message("") == '<?xml version="1.0" encoding="UTF-8"?><Response/>'
