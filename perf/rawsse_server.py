"""The rawsse side of a perf run.

``--producer inproc``: prints ``ready PORT``, waits until ``--clients`` subscribers are
connected, publishes ``--rate`` events/s of ``--size`` bytes to topic ``bench`` for
``--duration`` seconds (each stamped with the ``time.monotonic_ns()`` it was due at), then an ``end``
event, prints ``published N`` and exits.

``--rate`` below 0: as many events as the hub takes (see ``burst``).

``--redis URL``: the Redis backend instead of the memory one.

``--mercure``: Mercure mode on (the key ``bench-mercure-secret-of-32-bytes!``), events
published to ``--topic``; ``--private``: each of them private; ``--topics N``: each
event published to ``TOPIC/0`` ... ``TOPIC/N-1`` instead (one update with N topics).

``--producer http`` (or ``--rate 0``, to hold idle subscribers): prints ``ready PORT`` and serves until terminated; events come
from ``publisher.py`` over ``POST /publish`` with the key ``bench``.

Run by ``perf/harness.py``; not meant to be run alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import raise_file_limit

from rawsse import Config, Hub, Server
from rawsse.cli.main import auto_or_seconds
from rawsse.server.loops import loop_factory


def bench_config(args: argparse.Namespace) -> Config:
    # The load generator is one machine opening every connection at once, and the
    # publisher one credential: the limits meant for the internet are off, as they would
    # be for a trusted benchmark.
    return Config(
        port=0,
        history=100,
        heartbeat=60,
        slow_timeout=60,
        publish_key="bench",
        conn_rate=0,
        max_connections_per_address=0,
        max_streams_per_address=0,
        max_streams=0,
        publish_rate=0,
        # One batch request streams for the whole run (its answer is a line per event).
        max_batch_size=2**31,
        flush_delay=args.flush_delay,
        redis=args.redis,
        mercure=args.mercure,
        jwt_secret=MERCURE_SECRET if args.mercure else None,
        compress=args.compress,
    )


#: The key of Mercure mode's tokens in a run (perf/mercure.py signs with it).
MERCURE_SECRET = "bench-mercure-secret-of-32-bytes!"


def publish(
    hub: Hub,
    args: argparse.Namespace,
    data: str,
    pending: set[asyncio.Future[str]],
    event: str | None = None,
) -> None:
    """Publish without waiting: with the memory backend the id is there at once; with
    Redis the answer comes later (kept in ``pending``, awaited at the end), so that
    publishes are pipelined as an HTTP publisher's are, not one round trip each."""
    private = args.private and data != "end"
    if args.topics:
        topics = tuple(f"{args.topic}/{i}" for i in range(args.topics))
        result = hub.start_publish_to(topics, data, event=event, private=private)
    else:
        result = hub.start_publish(args.topic, data, event=event, private=private)
    if not isinstance(result, str):
        future = asyncio.ensure_future(result)
        pending.add(future)
        future.add_done_callback(pending.discard)


async def produce(hub: Hub, args: argparse.Namespace) -> None:
    while hub.subscriber_count < args.clients:
        await asyncio.sleep(0.05)
    print("producing", flush=True)
    asyncio.get_running_loop()
    if args.rate < 0:
        await burst(hub, args)
        return
    interval = 1.0 / args.rate if args.rate else 0.0
    pad = "x" * max(0, args.size - 20)
    bodies = json_events(args.size) if args.json_events else None
    start = time.monotonic_ns()
    count = int(args.rate * args.duration)
    pending: set[asyncio.Future[str]] = set()
    for n in range(count):
        # Sleep until this event's slot; publish as many as are due (catching up). Each
        # is stamped with when it was due, not when the loop got to it: a loop too busy
        # to publish on time makes its events late, as it makes an HTTP publisher's
        # (which stamps on its own clock) wait; stamping later would leave that out.
        due = start + round(n * interval * 1e9)
        delay = (due - time.monotonic_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        if bodies is not None:
            publish(hub, args, f"{due:020d} {bodies[n % len(bodies)]}", pending)
        else:
            publish(hub, args, f"{due:020d}{pad}", pending)
    await asyncio.sleep(0.5)
    publish(hub, args, "end", pending, event="end")
    await asyncio.gather(*pending)
    await asyncio.sleep(1.0)
    print(f"published {count}", flush=True)


def json_events(size: int) -> list[str]:
    """1000 JSON order events of 2/3 to 4/3 of ``size`` bytes (``--json-events``): the same
    keys in each, numbers, short strings from small sets, as an application's updates
    are; drawn once, from a fixed seed, so that every run sends the same bytes."""
    rng = random.Random(22)
    bodies = []
    for n in range(1000):
        order: dict[str, object] = {
            "id": 100_000 + n,
            "type": "order.updated",
            "status": rng.choice(["created", "paid", "packed", "shipped", "delivered"]),
            "customer": {
                "id": rng.randint(1, 10**6),
                "country": rng.choice(["FR", "DE", "US", "JP", "BR"]),
                "tier": rng.choice(["gold", "silver", "bronze"]),
            },
            "items": [],
            "currency": "EUR",
            "updated_at": f"2026-12-02T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:"
            f"{rng.randint(0, 59):02d}Z",
        }
        items: list[dict[str, object]] = []
        target = rng.randint(size * 2 // 3, size * 4 // 3)
        while len(json.dumps(order)) < target - 60:
            items.append(
                {
                    "sku": f"SKU-{rng.randint(1000, 9999)}",
                    "name": rng.choice(["book", "pen", "lamp", "mug", "chair", "desk"]),
                    "quantity": rng.randint(1, 5),
                    "unit_price": round(rng.uniform(1, 200), 2),
                }
            )
            order["items"] = items
        order["total"] = round(sum(i["quantity"] * i["unit_price"] for i in items), 2)  # type: ignore[operator]
        bodies.append(json.dumps(order))
    return bodies


async def burst(hub: Hub, args: argparse.Namespace) -> None:
    """As many events as the hub takes for ``--duration`` seconds, yielding to the loop
    every 100 so that they are flushed (``--rate`` below 0)."""
    loop = asyncio.get_running_loop()
    pad = "x" * max(0, args.size - 20)
    end = loop.time() + args.duration
    count = 0
    pending: set[asyncio.Future[str]] = set()
    while loop.time() < end:
        for _ in range(100):
            publish(hub, args, f"{time.monotonic_ns():020d}{pad}", pending)
        count += 100
        await asyncio.sleep(0)
    await asyncio.sleep(0.5)
    publish(hub, args, "end", pending, event="end")
    await asyncio.gather(*pending)
    await asyncio.sleep(1.0)
    print(f"published {count}", flush=True)


async def main(args: argparse.Namespace) -> None:
    config = bench_config(args)
    hub = Hub(config)
    async with Server(hub, config) as server:
        print(f"ready {server.port}", flush=True)
        if args.producer == "inproc" and args.rate:
            await produce(hub, args)
            return
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--producer", choices=("inproc", "http"), default="inproc")
    parser.add_argument("--clients", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--duration", type=float, default=0)
    parser.add_argument("--flush-delay", type=auto_or_seconds, default=None, help="s, or auto")
    parser.add_argument("--loop", default="auto")
    parser.add_argument("--redis", default=None, help="the Redis backend at this URL")
    parser.add_argument("--mercure", action="store_true", help="Mercure mode on")
    parser.add_argument("--topic", default="bench", help="the topic events go to")
    parser.add_argument("--private", action="store_true", help="every event private")
    parser.add_argument("--topics", type=int, default=0, help="each event to N topics")
    parser.add_argument("--compress", action="store_true", help="gzip streams (--compress)")
    parser.add_argument(
        "--json-events", action="store_true", help="JSON order events of about --size bytes"
    )
    args = parser.parse_args()
    raise_file_limit()
    loop = loop_factory(args.loop)()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(main(args))
