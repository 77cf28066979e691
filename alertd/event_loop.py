"""The event loop the long-running processes use: uvloop (libuv), else asyncio's own.

The daemon and its delivery worker spend much of a storm in the event loop itself (socket
reads and writes, callbacks, futures): uvloop does that part in C, ~15 % less CPU per
delivered notification (``bench/bench_stages.py``). Everything alertd does runs on either
loop; ``ALERTD_EVENT_LOOP=asyncio`` picks asyncio's (to rule the loop out when debugging).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

ENV = "ALERTD_EVENT_LOOP"


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on uvloop's loop unless ``ALERTD_EVENT_LOOP=asyncio``."""
    if os.environ.get(ENV, "uvloop") != "asyncio":
        try:
            import uvloop
        except ImportError:  # a platform without uvloop's wheels: asyncio's loop works too
            pass
        else:
            return uvloop.run(main)
    return asyncio.run(main)
