"""Reading event streams in tests with httpx-sse: a count of events, after a last id,
across reconnections."""

from __future__ import annotations

import contextlib

import httpx
from httpx_sse import ServerSentEvent, aconnect_sse

from rawsse.hub import Hub
from tests.conftest import scaled, wait_for


async def collect(
    url: str, count: int, headers: dict[str, str] | None = None, timeout: float = 5.0
) -> list[ServerSentEvent]:
    """Read ``count`` events from ``url`` with httpx-sse."""
    got: list[ServerSentEvent] = []
    async with (
        httpx.AsyncClient(timeout=scaled(timeout)) as client,
        aconnect_sse(client, "GET", url, headers=headers or {}) as source,
    ):
        assert source.response.status_code == 200
        assert source.response.headers["content-type"].startswith("text/event-stream")
        assert source.response.headers["cache-control"] == "no-cache"
        assert source.response.headers["x-accel-buffering"] == "no"
        async with contextlib.aclosing(source.aiter_sse()) as events:
            async for event in events:
                got.append(event)
                if len(got) == count:
                    break
    return got


async def subscribed(hub: Hub, count: int) -> None:
    await wait_for(lambda: hub.subscriber_count >= count)


async def events_after(
    url: str, last_id: str | None, count: int, *, query: bool = False
) -> list[ServerSentEvent]:
    if last_id is not None and query:
        return await collect(f"{url}&lastEventID={last_id}", count)
    headers = {"Last-Event-ID": last_id} if last_id is not None else None
    return await collect(url, count, headers=headers)


async def read_with_reconnects(url: str, *, rounds: int, count: int = 50) -> list[int]:
    """Read ``count`` events (integers as data), drop, reconnect with the last id, and
    again: everything read, in order."""
    seen: list[int] = []
    last_id: str | None = None
    for _ in range(rounds):
        events = await events_after(url, last_id, count)
        seen += [int(e.data) for e in events]
        last_id = events[-1].id
    return seen
