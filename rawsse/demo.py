"""The demo: a page that subscribes with ``EventSource`` and a producer that ticks."""

from __future__ import annotations

import asyncio
import json
import time
from importlib import resources

from rawsse.hub import Hub

__all__ = ["DEMO_TOPIC", "demo_page", "demo_producer"]

#: The topic the built-in producer publishes to.
DEMO_TOPIC = "demo"


def demo_page() -> bytes:
    """The demo page's HTML, shipped as package data."""
    return resources.files("rawsse").joinpath("static/index.html").read_bytes()


async def demo_producer(hub: Hub, *, topic: str = DEMO_TOPIC, interval: float = 1.0) -> None:
    """Publish a numbered tick to ``topic`` every ``interval`` seconds, forever.

    Each tick's data is JSON with ``n`` (a counter) and ``sent_ms`` (wall-clock time of
    publishing, in ms since the epoch), from which the page shows each event's delay.
    """
    n = 0
    while True:
        n += 1
        hub.publish(
            topic, json.dumps({"n": n, "sent_ms": round(time.time() * 1000, 3)}), event="tick"
        )
        await asyncio.sleep(interval)
