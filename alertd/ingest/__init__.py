"""Inbound alerts pushed by other monitoring systems (Prometheus, amtool, anything that speaks
Alertmanager's API v2).

``alertmanager`` parses ``POST /api/v2/alerts`` bodies with Alertmanager's semantics,
``external`` tracks the pushed alerts in the state database and turns their changes into
``AlertEvent``s for the incident manager, ``http`` is the aiohttp endpoint. ``app.py`` wires
them; nothing here imports another stage.
"""
