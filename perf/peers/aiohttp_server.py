"""aiohttp + aiohttp-sse (uvloop), a bounded queue and a task per client."""

from __future__ import annotations

import asyncio

from _queue_producer import QUEUE_SIZE, parse_args, produce
from aiohttp import web
from aiohttp_sse import sse_response

queues: set[asyncio.Queue[str]] = set()


async def events(request: web.Request) -> web.StreamResponse:
    queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_SIZE)
    queues.add(queue)
    try:
        async with sse_response(request) as response:
            while True:
                await response.send(await queue.get())
    finally:
        queues.discard(queue)
    return response


async def main() -> None:
    args = parse_args()
    app = web.Application()
    app.router.add_get("/events", events)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
    await site.start()
    port = runner.addresses[0][1]
    print(f"ready {port}", flush=True)
    await produce(queues, args)
    await runner.cleanup()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
