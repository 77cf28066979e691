"""Request signing of DingTalk, Feishu and the generic webhook, against reference vectors.

The references are written again here from the providers' documents (wire-formats.md B6, B7
and the webhook module docstring), not imported: a bug shared by both would otherwise pass.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from alertd.model import Incident, IncidentState, Level, Notification, Transition, make_labels
from alertd.notify.im import dingtalk, feishu
from alertd.notify.im.config import DingtalkChannelConfig, FeishuChannelConfig
from alertd.notify.webhook import notifier as webhook

SECRET = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abc"
TS_MS = 1_755_684_000_123
TS_S = 1_755_684_000
DINGTALK_URL = "https://oapi.dingtalk.com/robot/send?access_token=0a1b2c3d4e5f"
FEISHU_URL = "https://open.feishu.cn/open-apis/bot/v2/hook/7f2c1d2e-aaaa-bbbb-cccc-123456789abc"


def ref_dingtalk_sign(secret: str, ts_ms: int) -> str:
    """DingTalk 加签: key = secret, message = "<ts>\\n<secret>", base64, then URL-encoded."""
    mac = hmac.digest(
        secret.encode("utf-8"), (str(ts_ms) + "\n" + secret).encode("utf-8"), "sha256"
    )
    return quote(base64.standard_b64encode(mac).decode("ascii"), safe="")


def ref_feishu_sign(secret: str, ts_s: int) -> str:
    """Feishu: key = "<ts>\\n<secret>", message = empty, base64 (no URL-encoding: JSON body)."""
    mac = hmac.digest((str(ts_s) + "\n" + secret).encode("utf-8"), b"", "sha256")
    return base64.standard_b64encode(mac).decode("ascii")


def ref_webhook_signature(secret: str, ts: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), f"{ts}.".encode() + body, "sha256").hexdigest()


def notification() -> Notification:
    incident = Incident(
        id=42,
        fingerprint="c6eadffa33fcdf37",
        rule="cpu_high",
        metric="cpu",
        labels=make_labels({"instance": "sw-core-01"}),
        level=Level.CRITICAL,
        priority="P1",
        state=IncidentState.OPEN,
        summary="CPU 92% on sw-core-01",
        value=92.0,
        opened_at=1_755_680_000.0,
        updated_at=1_755_680_000.0,
    )
    return Notification(incident, Transition.OPENED, "ding", recipients=("13800001111",))


@pytest.mark.parametrize(
    ("secret", "ts"),
    [(SECRET, TS_MS), ("s", 0), ("秘密-with+/=chars", 1_700_000_000_000)],
)
def test_dingtalk_sign_matches_the_reference(secret: str, ts: int) -> None:
    signed = dingtalk.signed_url(DINGTALK_URL, secret, ts)
    query = urlsplit(signed).query
    assert query.startswith("access_token=0a1b2c3d4e5f&timestamp=")
    assert query.endswith(f"&timestamp={ts}&sign={ref_dingtalk_sign(secret, ts)}")


def test_dingtalk_sign_pinned_vector() -> None:
    # computed once with ref_dingtalk_sign; pins the byte-exact query a DingTalk server sees
    expected = "OkmGLgwhbhSjlVmBnOWe%2F3jxFpmq90%2FdWVoxZPCyJbU%3D"
    assert ref_dingtalk_sign(SECRET, TS_MS) == expected
    assert dingtalk.signed_url(DINGTALK_URL, SECRET, TS_MS).endswith(f"&sign={expected}")


def test_dingtalk_sign_on_a_url_without_query() -> None:
    signed = dingtalk.signed_url("https://example.test/robot/send", SECRET, TS_MS)
    assert parse_qs(urlsplit(signed).query)["timestamp"] == [str(TS_MS)]


@pytest.mark.parametrize(("secret", "ts"), [(SECRET, TS_S), ("x", 1), ("秘密", 1_700_000_000)])
def test_feishu_sign_matches_the_reference(secret: str, ts: int) -> None:
    assert feishu.sign(secret, ts) == ref_feishu_sign(secret, ts)


def test_feishu_sign_is_not_dingtalks_key_order() -> None:
    # the classic bug: HMAC(key=secret, msg=string_to_sign) as DingTalk does
    swapped = base64.b64encode(
        hmac.new(SECRET.encode(), f"{TS_S}\n{SECRET}".encode(), hashlib.sha256).digest()
    ).decode()
    assert feishu.sign(SECRET, TS_S) != swapped


def test_dingtalk_notifier_signs_with_milliseconds() -> None:
    cfg = DingtalkChannelConfig.model_validate(
        {"type": "dingtalk", "url": DINGTALK_URL, "secret": SECRET}
    )
    notifier = dingtalk.DingtalkNotifier("ding", cfg, wall=lambda: TS_MS / 1000)
    _, url = notifier.request(notification())
    assert url is not None
    assert str(url) == DINGTALK_URL + f"&timestamp={TS_MS}&sign={ref_dingtalk_sign(SECRET, TS_MS)}"


def test_dingtalk_notifier_without_secret_posts_the_url_as_is() -> None:
    cfg = DingtalkChannelConfig.model_validate({"type": "dingtalk", "url": DINGTALK_URL})
    notifier = dingtalk.DingtalkNotifier("ding", cfg, wall=lambda: TS_MS / 1000)
    _, url = notifier.request(notification())
    assert url is None
    assert str(notifier.http.url) == DINGTALK_URL


def test_feishu_notifier_signs_in_the_body_with_seconds() -> None:
    cfg = FeishuChannelConfig.model_validate(
        {"type": "feishu", "url": FEISHU_URL, "secret": SECRET}
    )
    notifier = feishu.FeishuNotifier("fs", cfg, wall=lambda: TS_S + 0.9)
    body, url = notifier.request(notification())
    data: dict[str, Any] = json.loads(body)
    assert url is None
    assert data["timestamp"] == str(TS_S)  # seconds, as a string
    assert data["sign"] == ref_feishu_sign(SECRET, TS_S)


def test_feishu_notifier_without_secret_sends_no_sign() -> None:
    cfg = FeishuChannelConfig.model_validate({"type": "feishu", "url": FEISHU_URL})
    body, _ = feishu.FeishuNotifier("fs", cfg).request(notification())
    assert "sign" not in json.loads(body)
    assert "timestamp" not in json.loads(body)


@pytest.mark.parametrize("body", [b"{}", '{"summary":"CPU 92% 告警"}'.encode(), b""])
def test_webhook_signature_matches_the_reference(body: bytes) -> None:
    assert webhook.signature(SECRET, str(TS_S), body) == ref_webhook_signature(
        SECRET, str(TS_S), body
    )


def test_webhook_signature_covers_the_timestamp() -> None:
    assert webhook.signature(SECRET, "1", b"{}") != webhook.signature(SECRET, "2", b"{}")
