"""Embed rawsse in an asyncio program: publish from your own coroutine.

Run:  python examples/embed_asyncio.py [--port 8000]
Then: curl -N 'http://127.0.0.1:8000/events?topic=clock'
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import time

from rawsse import Config, Hub, Server


async def main(port: int) -> None:
    hub = Hub()
    async with Server(hub, Config(port=port)) as server:
        print(f"serving on {server.url}; subscribe to {server.url}/events?topic=clock", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        while not stop.is_set():
            hub.publish("clock", time.strftime("%H:%M:%S"), event="time")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
    # Leaving the block shut the server down gracefully.


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8000)
    asyncio.run(main(parser.parse_args().port))
