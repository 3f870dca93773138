"""Starlette + sse-starlette on uvicorn (uvloop), a bounded queue and a task per client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import uvicorn
from _queue_producer import QUEUE_SIZE, parse_args, produce
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

queues: set[asyncio.Queue[str]] = set()


async def events(request: Request) -> EventSourceResponse:
    queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_SIZE)

    async def stream() -> AsyncIterator[dict[str, str]]:
        queues.add(queue)
        try:
            while True:
                yield {"data": await queue.get()}
        finally:
            queues.discard(queue)

    return EventSourceResponse(stream())


async def main() -> None:
    args = parse_args()
    app = Starlette(routes=[Route("/events", events)])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, loop="none", log_level="error", backlog=4096
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    print(f"ready {port}", flush=True)
    await produce(queues, args)
    server.should_exit = True
    server.force_exit = True
    await serving


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
