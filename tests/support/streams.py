"""Reading event streams in tests with httpx-sse: a count of events, after a last id,
across reconnections, or in the background (:class:`Reader`)."""

from __future__ import annotations

import asyncio
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


class Reader:
    """One open stream read in the background with httpx-sse, events kept as they come."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.headers = headers or {}
        self.events: list[ServerSentEvent] = []
        self.opened = asyncio.Event()
        self.ended = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Reader:
        self._task = asyncio.create_task(self._read())
        await asyncio.wait_for(self.opened.wait(), scaled(5))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _read(self) -> None:
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(scaled(5), read=None)) as client,
            aconnect_sse(client, "GET", self.url, headers=self.headers) as source,
        ):
            assert source.response.status_code == 200
            self.opened.set()
            async for event in source.aiter_sse():
                self.events.append(event)
        self.ended.set()

    async def wait_count(self, count: int, timeout: float = 10.0) -> list[ServerSentEvent]:
        await wait_for(lambda: len(self.events) >= count, timeout)
        return self.events[:count]
