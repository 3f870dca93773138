"""The demo: a page that subscribes with ``EventSource`` and a producer that ticks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from importlib import resources

from rawsse.errors import BackendUnavailable
from rawsse.hub.hub import Hub

__all__ = ["DEMO_TOPIC", "STATS_TOPIC", "demo_page", "demo_producer", "stats_producer"]

#: The topic the built-in producer publishes to.
DEMO_TOPIC = "demo"

#: The topic the demo page's live panel reads: the hub's own figures, once a second.
STATS_TOPIC = "rawsse.stats"


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
        data = json.dumps({"n": n, "sent_ms": round(time.time() * 1000, 3)})
        with contextlib.suppress(BackendUnavailable):  # Redis away: skip this tick
            await hub.publish_async(topic, data, event="tick")
        await asyncio.sleep(interval)


async def stats_producer(hub: Hub, *, topic: str = STATS_TOPIC, interval: float = 1.0) -> None:
    """Publish the hub's figures to ``topic`` every ``interval`` seconds, forever, as a
    ``stats`` event: JSON with ``clients``, ``events_per_s`` and ``deliveries_per_s``
    (rates over the last interval)."""
    metrics = hub.metrics
    loop = asyncio.get_running_loop()
    before = (loop.time(), metrics.events_published, metrics.deliveries)
    while True:
        await asyncio.sleep(interval)
        now = (loop.time(), metrics.events_published, metrics.deliveries)
        elapsed = max(now[0] - before[0], 1e-9)
        stats = {
            "clients": hub.subscriber_count,
            "events_per_s": round((now[1] - before[1]) / elapsed, 1),
            "deliveries_per_s": round((now[2] - before[2]) / elapsed, 1),
        }
        before = now
        with contextlib.suppress(BackendUnavailable):
            await hub.publish_async(topic, json.dumps(stats), event="stats")
