"""End to end: SMS through a running daemon, with Twilio's REST API and webhooks faked on
127.0.0.1.

A pushed alert pages the on-call member by SMS (the twilio library pointed at the fake); the
signed status callback for that MessageSid lands on the incident's timeline (and a late
"sent" after "delivered" does not); an unsigned reply is refused with 403; a signed
"ACK 1" from the member's phone acknowledges the incident in the member's name.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import free_port
from tests.e2e.conftest import Daemon, wait_for

pytestmark = pytest.mark.e2e

SID = "AC" + "0" * 32
TOKEN = "twilio-auth-token-for-tests"
PHONE = "+15550001111"
MESSAGE_SID = "SM" + "1" * 32


class FakeTwilio:
    """Twilio's Messages API on 127.0.0.1, in a thread of its own."""

    def __init__(self) -> None:
        self.port = free_port()
        self.forms: list[dict[str, str]] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10)

    async def _create(self, request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        self.forms.append(form)
        return web.json_response(
            {
                "sid": MESSAGE_SID,
                "account_sid": SID,
                "status": "queued",
                "to": form["To"],
                "from": form.get("From"),
                "body": form["Body"],
                "num_segments": "1",
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "uri": f"/2010-04-01/Accounts/{SID}/Messages/{MESSAGE_SID}.json",
            },
            status=201,
        )

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post(f"/2010-04-01/Accounts/{SID}/Messages.json", self._create)
        self.runner = web.AppRunner(app)
        self._loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(site.start())
        self._ready.set()
        self._loop.run_forever()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    fake = FakeTwilio()
    yield fake
    fake.stop()


def signature(url: str, params: dict[str, str]) -> str:
    """Twilio's algorithm, written again here: URL + sorted name/value pairs, HMAC-SHA1."""
    text = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(hmac.new(TOKEN.encode(), text.encode(), hashlib.sha1).digest()).decode()


def post_form(d: Daemon, path: str, params: dict[str, str], sign: bool) -> tuple[int, str]:
    url = f"http://127.0.0.1:{d.port}{path}"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if sign:
        headers["X-Twilio-Signature"] = signature(url, params)
    req = urllib.request.Request(
        url, data=urllib.parse.urlencode(params).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def write_config(cfg: Path, twilio_port: int, daemon_port_placeholder: str) -> None:
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "thresholds.yaml").write_text("evaluation_interval: 1s\nrules: []\n")
    (cfg / "twilio.token").write_text(TOKEN + "\n")
    (cfg / "channels.yaml").write_text(
        f"""\
channels:
  sms:
    type: sms
    account_sid: {SID}
    auth_token_file: twilio.token
    from: "+15017122661"
    api_base_url: http://127.0.0.1:{twilio_port}
teams:
  oncall:
    members: [{{name: Wang, phone: "{PHONE}"}}]
    channels: [sms]
routes:
  - notify: [oncall]
"""
    )
    (cfg / "server.yaml").write_text(f"public_url: {daemon_port_placeholder}\n")


def test_sms_page_status_callback_and_reply_to_ack(
    tmp_path: Path, twilio: FakeTwilio, daemon_factory: Callable[[Path], Daemon]
) -> None:
    cfg = tmp_path / "cfg"
    # the public URL must be the daemon's own (Twilio signs it): start once to learn the port
    write_config(cfg, twilio.port, "http://127.0.0.1:1")
    d = daemon_factory(cfg)
    (cfg / "server.yaml").write_text(f"public_url: http://127.0.0.1:{d.port}\n")
    d.stop()
    d2 = Daemon(cfg, d.state, tmp_path / "daemon2.log", port=d.port)
    try:
        wait_for("the daemon", lambda: d2.get("/-/ready")[0] == 200 or d2.proc.poll() is not None)
        assert d2.proc.poll() is None, d2.log()
        alert = [{"labels": {"alertname": "DiskFull", "instance": "db1", "severity": "critical"}}]
        req = urllib.request.Request(
            f"http://127.0.0.1:{d2.port}/api/v2/alerts",
            data=json.dumps(alert).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200
        wait_for("the SMS", lambda: len(twilio.forms) >= 1)
        sms = twilio.forms[0]
        assert sms["To"] == PHONE
        assert "#1" in sms["Body"]
        assert "Reply ACK 1" in sms["Body"]

        status = {"MessageSid": MESSAGE_SID, "MessageStatus": "delivered", "AccountSid": SID}
        assert post_form(d2, "/hooks/twilio/status", status, sign=False)[0] == 403
        assert post_form(d2, "/hooks/twilio/status", status, sign=True)[0] == 204
        late = {**status, "MessageStatus": "sent"}
        assert post_form(d2, "/hooks/twilio/status", late, sign=True)[0] == 204
        shown = d2.cli("show", "1")
        assert "provider says delivered" in shown
        assert "provider says sent" not in shown  # a late "sent" never overrides "delivered"

        reply = {"From": PHONE, "To": "+15017122661", "Body": "ACK 1", "MessageSid": "SMx"}
        assert post_form(d2, "/hooks/twilio/sms", reply, sign=False)[0] == 403
        assert "acknowledged" not in d2.cli("show", "1").split("timeline")[0]
        code, twiml = post_form(d2, "/hooks/twilio/sms", reply, sign=True)
        assert code == 200
        assert "acknowledged by Wang" in twiml
        stranger = {**reply, "From": "+15559999999", "Body": "RESOLVE 1"}
        assert "not on an alertd team" in post_form(d2, "/hooks/twilio/sms", stranger, True)[1]
        listed: Any = json.loads(d2.cli("list", "--json"))
        assert listed[0]["state"] == "acknowledged"
        assert listed[0]["acknowledged_by"] == "Wang"
    finally:
        d2.stop()
