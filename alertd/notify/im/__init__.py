"""The IM channels: WeCom, DingTalk and Feishu/Lark group robots, Slack and Teams webhooks.

One module per provider (payload, signing, what its answers mean), sharing ``base.py``
(render, post, classify) and ``alertd/notify/http.py`` (the connection pool and HTTP errors).
"""
