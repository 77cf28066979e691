"""Two channels posting to one robot share its rate limit, as the provider counts it: per
robot (its URL), not per alertd channel (review finding: each got its own 20 a minute)."""

from __future__ import annotations

from types import SimpleNamespace

from alertd.config.channels import ChannelsFile
from alertd.notify.configure import rate_limits, shared_destinations
from alertd.notify.ratelimit import Limiter

ROBOT = "https://oapi.dingtalk.com/robot/send?access_token=" + "a1" * 32
OTHER = "https://oapi.dingtalk.com/robot/send?access_token=" + "b2" * 32


def view(channels: dict[str, dict[str, str]]) -> SimpleNamespace:
    return SimpleNamespace(channels=ChannelsFile.model_validate({"channels": channels}))


def limiter_for(config: SimpleNamespace) -> Limiter:
    shared = shared_destinations(config)
    per_channel, per_recipient = rate_limits(config, shared)
    return Limiter(per_channel, per_recipient, shared)


def admitted(limiter: Limiter, channels: list[str], now: float = 1000.0) -> int:
    return sum(limiter.admit(c, (), now) for c in channels)


def test_two_channels_to_one_robot_share_its_twenty_a_minute() -> None:
    config = view(
        {
            "dt-text": {"type": "dingtalk", "url": ROBOT},
            "dt-md": {"type": "dingtalk", "url": ROBOT, "format": "markdown"},
            "dt-other": {"type": "dingtalk", "url": OTHER},
        }
    )
    assert shared_destinations(config) == {"dt-text": "dt-md"}
    limiter = limiter_for(config)
    assert admitted(limiter, ["dt-text", "dt-md"] * 20) == 20  # not 40
    assert admitted(limiter, ["dt-other"] * 25) == 20  # another robot: its own 20
    assert admitted(limiter, ["dt-text"], now=1063.0) == 1  # a minute (and margin) later


def test_one_robot_however_its_url_is_written() -> None:
    token = "access_token=" + "a1" * 32
    config = view(
        {
            "a": {"type": "dingtalk", "url": f"https://oapi.dingtalk.com/robot/send?{token}"},
            "b": {"type": "dingtalk", "url": f"https://OAPI.dingtalk.com:443/robot/send?{token}"},
            "c": {"type": "dingtalk", "url": f"https://oapi.dingtalk.com/robot/send?{token}x"},
        }
    )
    assert shared_destinations(config) == {"b": "a"}


def test_receivers_on_other_hosts_are_not_one_robot_whatever_their_path() -> None:
    # verification finding: keyed by path alone, two webhooks at /hook shared one limit
    config = view(
        {
            "wh1": {"type": "webhook", "url": "http://127.0.0.1:8001/hook"},
            "wh2": {"type": "webhook", "url": "http://127.0.0.1:8002/hook"},
            "wh3": {"type": "webhook", "url": "http://alerts.example/hook"},
        }
    )
    assert shared_destinations(config) == {}


def test_a_channel_on_its_own_is_counted_on_its_own() -> None:
    config = view({"slack": {"type": "slack", "url": "https://hooks.slack.com/services/T/B/x"}})
    assert shared_destinations(config) == {}
    assert admitted(limiter_for(config), ["slack"] * 3) == 1  # Slack: about 1 a second


def test_the_strictest_limit_of_the_channels_on_one_robot_holds() -> None:
    """Admin user test: `rate_limits: {wecom-md: {per_minute: 1}}` was ignored because the
    robot was counted under the other channel's name (alphabetically first)."""
    config = SimpleNamespace(
        channels=ChannelsFile.model_validate(
            {
                "channels": {
                    "dt-md": {"type": "dingtalk", "url": ROBOT, "format": "markdown"},
                    "dt-text": {"type": "dingtalk", "url": ROBOT},
                },
                "rate_limits": {"dt-text": {"per_minute": 1}},
            }
        )
    )
    limiter = limiter_for(config)
    assert admitted(limiter, ["dt-md", "dt-text", "dt-md"]) == 1
