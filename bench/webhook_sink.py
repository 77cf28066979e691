"""A webhook receiver for the pipeline benchmark: records each alert's arrival, answers 200.

Runs in its own process (so its CPU is measured apart from the system under test), on
127.0.0.1 only. Alertmanager's and alertd's webhook bodies are both Alertmanager-shaped
(``alerts[].labels``), so one receiver serves both.

POST /hook            record (time.monotonic() at arrival, instance label, Idempotency-Key)
                      for every alert in the body; answer 200 at once
GET  /count           alerts recorded so far (plain text)
GET  /wait?count=K&timeout=S
                      answer as soon as K alerts are recorded, or after S seconds; the body
                      is the count then (a long poll, so waiting costs no polling CPU)
GET  /dump            JSON {"alerts": [[t, instance, key], ...], "requests": N}
POST /reset           forget everything

``time.monotonic()`` is CLOCK_MONOTONIC, the same clock in every process on the machine, so
the pusher subtracts its own POST start times from these arrivals.

Usage: .venv/bin/python bench/webhook_sink.py --port PORT
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from aiohttp import web


class Sink:
    def __init__(self) -> None:
        self.alerts: list[tuple[float, str, str]] = []
        self.requests = 0
        self.changed = asyncio.Event()

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        t = time.monotonic()
        key = request.headers.get("Idempotency-Key", "")
        for alert in json.loads(body).get("alerts", []):
            self.alerts.append((t, str(alert.get("labels", {}).get("instance", "")), key))
        self.requests += 1
        self.changed.set()
        return web.Response(text="ok")

    async def count(self, _: web.Request) -> web.Response:
        return web.Response(text=str(len(self.alerts)))

    async def wait(self, request: web.Request) -> web.Response:
        want = int(request.query.get("count", "1"))
        deadline = time.monotonic() + float(request.query.get("timeout", "10"))
        while len(self.alerts) < want:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except TimeoutError:
                break
        return web.Response(text=str(len(self.alerts)))

    async def dump(self, _: web.Request) -> web.Response:
        return web.json_response({"alerts": self.alerts, "requests": self.requests})

    async def reset(self, _: web.Request) -> web.Response:
        self.alerts = []
        self.requests = 0
        return web.Response(text="ok")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    a = ap.parse_args()
    sink = Sink()
    app = web.Application(client_max_size=16 << 20)
    app.add_routes(
        [
            web.post("/hook", sink.hook),
            web.get("/count", sink.count),
            web.get("/wait", sink.wait),
            web.get("/dump", sink.dump),
            web.post("/reset", sink.reset),
        ]
    )
    web.run_app(app, host="127.0.0.1", port=a.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
