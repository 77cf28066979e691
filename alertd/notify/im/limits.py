"""Each HTTP channel type's default rate limits: what its provider accepts per robot/webhook.

channel type -> ((count, per_seconds), ...): at most ``count`` messages in any ``per_seconds``,
every pair at once. The outbox's limiter uses these unless a channel configures its own; going
over them gets the robot throttled (DingTalk for 10 minutes), so they are not a suggestion.
"""

from __future__ import annotations

DEFAULT_RATE_LIMITS: dict[str, tuple[tuple[int, float], ...]] = {
    "wecom": ((20, 60.0),),  # developer.work.weixin.qq.com/document/path/91770
    "dingtalk": ((20, 60.0),),  # open.dingtalk.com custom-robot-access; 130101 past it
    "feishu": ((5, 1.0), (100, 60.0)),  # Feishu custom bot guide; 11232 past it
    "slack": ((1, 1.0),),  # api.slack.com/docs/rate-limits: 1/s per webhook, short bursts
    # Teams documents limits for connectors/incoming webhooks (4 per second, 60 per 30 s per
    # webhook), not for Workflows webhooks; those are used as the conservative default
    "teams": ((4, 1.0), (60, 30.0)),
    "webhook": (),  # our own receivers: no provider limit
}
