"""The rawsse side of a fan-out run: a hub with an in-process producer.

Prints ``ready PORT`` once listening, waits until ``--clients`` subscribers are
connected, publishes ``--rate`` events/s of ``--size`` bytes to topic ``bench`` for
``--duration`` seconds (each stamped with ``time.monotonic_ns()``), then an ``end`` event,
and exits. Run by ``perf/fanout.py``; not meant to be run alone.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import raise_file_limit

from rawsse import Config, Hub, Server
from rawsse.loops import loop_factory


async def main(args: argparse.Namespace) -> None:
    # The load generator is one machine opening every connection at once: the per-address
    # limits meant for the internet are off, as they would be for a trusted benchmark.
    config = Config(
        port=0,
        history=100,
        heartbeat=60,
        slow_timeout=60,
        conn_rate=0,
        max_connections_per_address=0,
        max_streams_per_address=0,
        max_streams=0,
    )
    hub = Hub(config)
    async with Server(hub, config) as server:
        print(f"ready {server.port}", flush=True)
        while hub.subscriber_count < args.clients:
            await asyncio.sleep(0.05)
        print("producing", flush=True)
        loop = asyncio.get_running_loop()
        interval = 1.0 / args.rate
        pad = "x" * max(0, args.size - 20)
        start = loop.time()
        count = int(args.rate * args.duration)
        for n in range(count):
            # Sleep until this event's slot; publish as many as are due (catching up).
            due = start + n * interval
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            hub.publish("bench", f"{time.monotonic_ns():020d}{pad}")
        await asyncio.sleep(0.5)
        hub.publish("bench", "end", event="end")
        await asyncio.sleep(1.0)
        print(f"published {count}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--loop", default="auto")
    args = parser.parse_args()
    raise_file_limit()
    loop = loop_factory(args.loop)()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(main(args))
