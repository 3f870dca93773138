"""The producer shared by the queue-per-client peers: the classic design rawsse replaces.

Each client owns a bounded ``asyncio.Queue``; the producer puts every event into every
queue (``put_nowait``; an event that does not fit is dropped for that client, as such
servers do to protect their memory) and a task per client drains its queue into the
response.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time

QUEUE_SIZE = 100


async def produce(queues: set[asyncio.Queue[str]], args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    if not args.rate:
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        return
    while len(queues) < args.clients:
        await asyncio.sleep(0.05)
    print("producing", flush=True)

    def send(data: str) -> None:
        for queue in list(queues):
            if not queue.full():
                queue.put_nowait(data)

    pad = "x" * max(0, args.size - 20)
    interval = 1.0 / args.rate
    count = int(args.rate * args.duration)
    start = loop.time()
    for n in range(count):
        delay = start + n * interval - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        send(f"{time.monotonic_ns():020d}{pad}")
    await asyncio.sleep(0.5)
    send("end")
    await asyncio.sleep(1.0)
    print(f"published {count}", flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--duration", type=float, default=0)
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return parser.parse_args()
