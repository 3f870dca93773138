"""Embed rawsse with the Redis backend, from asyncio code (the default) or from a
synchronous program whose server runs on a background thread (``--thread``). Every
process started with the same ``--redis`` shares one order of events, one history and
every event: run this twice on two ports and each serves what both publish.

Run:  python examples/embed_redis.py --redis redis://127.0.0.1:6379/0 [--thread]
          [--port 8000] [--count 60] [--interval 1]
Then: curl -N 'http://127.0.0.1:8000/events?topic=jobs'
Needs: pip install 'rawsse[redis]'
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

from rawsse import Config, Hub, Server, ServerThread


async def publish_from_asyncio(config: Config, count: int, interval: float) -> None:
    hub = Hub(config)  # config.redis is set: the hub uses the Redis backend
    async with Server(hub, config) as server:
        print(f"serving on {server.url}; subscribe to {server.url}/events?topic=jobs", flush=True)
        for step in range(1, count + 1):
            data = json.dumps({"step": step, "by": f"asyncio-{os.getpid()}"})
            # A remote backend answers after a round trip: await publish_async
            # (hub.publish, which never waits, is for the memory backend).
            event_id = await hub.publish_async("jobs", data, event="progress")
            print(f"published {event_id}", flush=True)
            await asyncio.sleep(interval)


def publish_from_a_thread(config: Config, count: int, interval: float) -> None:
    with ServerThread(config=config) as server:
        print(f"serving on {server.url}; subscribe to {server.url}/events?topic=jobs", flush=True)
        for step in range(1, count + 1):
            data = json.dumps({"step": step, "by": f"thread-{os.getpid()}"})
            # Blocks until Redis has given the event its id.
            event_id = server.publish("jobs", data, event="progress")
            print(f"published {event_id}", flush=True)
            time.sleep(interval)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", required=True, help="redis://host:port/db")
    parser.add_argument("--thread", action="store_true", help="serve from a background thread")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    config = Config(port=args.port, redis=args.redis)
    if args.thread:
        publish_from_a_thread(config, args.count, args.interval)
    else:
        asyncio.run(publish_from_asyncio(config, args.count, args.interval))
