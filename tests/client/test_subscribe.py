"""rawsse.client subscribing against a real hub: events and the hub's notices as
types, resuming by Last-Event-ID, and surviving what ends a stream: a hub over its
limits, a server restart (a real process on Redis), a drop for slowness, a server gone
for good (failing over to another on the same Redis), a token about to expire."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from typing import Any

from rawsse.client import AsyncClient, AuthExpiring, Client, Event, Lost, Notice
from rawsse.hub.hub import Hub
from rawsse.policy.auth import mint_token
from tests.conftest import (
    NO_CLIENT_LIMITS,
    TEST_KEY,
    make_config,
    running_server,
    running_servers,
    scaled,
    wait_for,
)
from tests.support.cli import start_hub
from tests.support.redis_server import RedisServer

SECRET = "a-secret-for-the-client-tests-32b!"


class Consumer:
    """An async subscription read in the background, its items kept."""

    def __init__(self, client: AsyncClient, topics: Any, **options: Any) -> None:
        self.items: list[Event | Notice] = []
        self._source = client.subscribe(topics, **options)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Consumer:
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._source.aclose()  # type: ignore[attr-defined]

    async def _read(self) -> None:
        async for item in self._source:
            self.items.append(item)

    @property
    def events(self) -> list[Event]:
        return [i for i in self.items if isinstance(i, Event)]

    async def data(self, count: int, timeout: float = 10.0) -> list[str]:
        await wait_for(lambda: len(self.events) >= count, timeout)
        return [e.data for e in self.events]


async def test_events_arrive_typed_and_a_resume_starts_after_the_last() -> None:
    async with running_server() as server, AsyncClient(server.url, key=TEST_KEY) as hub:
        async with Consumer(hub, ["a", "b"]) as consumer:
            await wait_for(lambda: server.hub.subscriber_count == 1)
            first = await hub.publish("a", "one")
            await hub.publish("b", "two", event="note")
            assert await consumer.data(2) == ["one", "two"]
            assert consumer.events[1] == Event(consumer.events[1].id, "note", "two")
        async with Consumer(hub, "a", last_event_id=first) as resumed:
            await hub.publish("a", "three")
            assert await resumed.data(1) == ["three"]
        async with Consumer(hub, "a", last_event_id="0badc0de-3") as lost:
            await wait_for(lambda: len(lost.items) >= 1)
            (notice,) = lost.items[:1]
            assert isinstance(notice, Lost) and notice.reason == "epoch"
            assert notice.last_event_id == "0badc0de-3" and notice.resume_id
            assert [e.data for e in await _wait_events(lost, 2)] == ["one", "three"]


async def _wait_events(consumer: Consumer, count: int) -> list[Event]:
    await wait_for(lambda: len(consumer.events) >= count)
    return consumer.events


async def test_the_sync_client_subscribes_in_a_thread() -> None:
    async with running_server() as server:
        received: list[Event | Notice] = []
        ready = threading.Event()

        def consume() -> None:
            with Client(server.url, key=TEST_KEY) as hub:
                ready.set()
                for item in hub.subscribe("a"):
                    received.append(item)
                    if len(received) == 2:
                        break

        reading = asyncio.create_task(asyncio.to_thread(consume))
        await wait_for(lambda: server.hub.subscriber_count == 1)
        ids = [server.hub.publish("a", "x"), server.hub.publish("a", "y")]
        await reading
        assert [(e.id, e.data) for e in received if isinstance(e, Event)] == [
            (ids[0], "x"),
            (ids[1], "y"),
        ]


async def test_a_hub_over_its_limits_is_retried_when_it_says() -> None:
    """max_streams 1: the second subscription is answered 200 with a retry: and no
    events; the client waits that long (jitter on top) and gets in once there is room."""
    config = make_config(max_streams=1, limit_retry=400)
    async with running_server(config) as server, AsyncClient(server.url, key=TEST_KEY) as hub:
        async with Consumer(hub, "a") as first:
            await wait_for(lambda: server.hub.subscriber_count == 1)
            waits: list[float] = []
            real = hub.sleep

            async def noted(seconds: float) -> None:
                waits.append(seconds)
                await real(seconds)

            hub.sleep = noted
            async with Consumer(hub, "a") as second:
                await wait_for(lambda: len(waits) >= 1)
                assert all(0.2 <= w <= 0.75 for w in waits), waits  # 400 ms ± 50 %, + 25 %
                assert second.items == []
        await wait_for(lambda: server.hub.subscriber_count == 0)
        async with Consumer(hub, "a") as later:
            await wait_for(lambda: server.hub.subscriber_count == 1)
            await hub.publish("a", "in")
            assert await later.data(1) == ["in"]
        assert [e.data for e in first.events] == []


async def test_a_consumer_survives_a_server_restart_with_nothing_lost(
    redis: RedisServer,
) -> None:
    """A real server process on Redis is stopped (its streams told to come back) and
    started again on the same port; what was published meanwhile (through another
    server) is replayed on the reconnection, in order, once."""
    port = _free_port()
    args = ("--redis", redis.url, "--port", str(port), "--publish-key", TEST_KEY,
            "--shutdown-retry-window", "300")  # fmt: skip
    first = start_hub(*args)
    config = make_config(redis=redis.url)
    try:
        async with (
            running_server(config) as other,
            AsyncClient(first.url) as hub,
            Consumer(hub, "a") as consumer,
        ):
            await _wait_subscribed(first.url)
            sent = [await other.hub.publish_async("a", f"e{i}") for i in range(3)]
            assert await consumer.data(3) == ["e0", "e1", "e2"]
            code, _ = first.stop(signal.SIGTERM)
            assert code == 0
            sent += [await other.hub.publish_async("a", f"e{i}") for i in range(3, 6)]
            second = start_hub(*args)
            try:
                await _wait_subscribed(second.url)
                sent.append(await other.hub.publish_async("a", "e6"))
                assert await consumer.data(7) == [f"e{i}" for i in range(7)]
                assert [e.id for e in consumer.events] == sent
                assert not any(isinstance(i, Lost) for i in consumer.items)
            finally:
                second.stop()
    finally:
        first.stop(signal.SIGKILL)


def _free_port() -> int:
    from tests.conftest import free_port

    return free_port()


async def _wait_subscribed(url: str) -> None:
    """Until the hub at ``url`` has a stream (its /metrics says so)."""
    from tests.support.client import metric_at

    deadline = asyncio.get_running_loop().time() + scaled(10)
    while True:
        with contextlib.suppress(Exception):
            if await metric_at(url, "rawsse_connected_clients") >= 1:
                return
        assert asyncio.get_running_loop().time() < deadline, "no stream came"
        await asyncio.sleep(0.05)


async def test_a_consumer_dropped_for_slowness_resumes_with_nothing_lost() -> None:
    """The consumer stops reading while big events are published: the hub drops it
    (over max_buffer); once it reads again it has every event the history kept, in
    order, once, through a reconnection."""
    config = make_config(max_buffer=256 * 1024, history=1000, **NO_CLIENT_LIMITS)
    payload = "x" * 60_000
    async with running_server(config) as server:
        received: list[str] = []
        resume = threading.Event()

        def consume() -> None:
            with Client(server.url, key=TEST_KEY) as hub:
                for item in hub.subscribe("a"):
                    if isinstance(item, Event):
                        received.append(item.data[:3] + item.data[-4:])
                        if len(received) == 1:
                            assert resume.wait(scaled(20))
                        if len(received) == 301:
                            return

        reading = asyncio.create_task(asyncio.to_thread(consume))
        await wait_for(lambda: server.hub.subscriber_count == 1)
        server.hub.publish("a", "go-" + "0000")
        await wait_for(lambda: len(received) == 1)
        for i in range(300):
            server.hub.publish("a", payload + f"{i:04d}")
            if i % 20 == 0:
                await asyncio.sleep(0)  # let the flushes go out
        await wait_for(lambda: server.hub.metrics.disconnects.get("slow_buffer", 0) >= 1)
        resume.set()
        await asyncio.wait_for(reading, scaled(30))
        assert received == ["go-0000"] + [f"xxx{i:04d}" for i in range(300)]


async def test_a_consumer_fails_over_to_another_server_and_resumes_exactly(
    redis: RedisServer,
) -> None:
    config = make_config(redis=redis.url)
    setups = [(config, Hub(config)) for _ in range(2)]
    async with (
        running_servers(setups) as (a, b),
        AsyncClient([a.url, b.url]) as hub,
        Consumer(hub, "a") as consumer,
    ):
        await wait_for(lambda: a.hub.subscriber_count == 1)
        sent = [await b.hub.publish_async("a", "before")]
        assert await consumer.data(1) == ["before"]
        await a.shutdown(timeout=scaled(5))  # gone for good: its port refuses
        sent.append(await b.hub.publish_async("a", "while moving"))
        await wait_for(lambda: b.hub.subscriber_count == 1, timeout=15)
        sent.append(await b.hub.publish_async("a", "after"))
        assert await consumer.data(3) == ["before", "while moving", "after"]
        assert [e.id for e in consumer.events] == sent


async def test_a_fresh_token_keeps_the_stream_going() -> None:
    """Subscribe auth with a token close to its expiry: the notice comes as an
    AuthExpiring item, the hook's fresh token re-makes the stream at once, resuming,
    and it outlives the first token."""
    # The notice comes 2 s before expiry, 1 to 2 s in (exp is whole seconds): after
    # "before", so that the stream it re-makes has an id to resume from.
    config = make_config(jwt_secret=SECRET, subscribe_auth=True, token_expiry_notice=2.0)
    short = mint_token(SECRET, subscribe=["a"], ttl=4)
    fresh: list[str] = []

    def renew(notice: AuthExpiring) -> str:
        assert 0 < notice.expires_in <= 2.0
        fresh.append(mint_token(SECRET, subscribe=["a"], ttl=3600))
        return fresh[-1]

    async with (
        running_server(config) as server,
        AsyncClient(server.url, key=TEST_KEY) as hub,
        Consumer(hub, "a", token=short, on_auth_expiring=renew) as consumer,
    ):
        await wait_for(lambda: server.hub.subscriber_count == 1)
        await hub.publish("a", "before")
        await wait_for(lambda: len(fresh) == 1, timeout=8)
        await wait_for(lambda: any(isinstance(i, AuthExpiring) for i in consumer.items))
        await hub.publish("a", "between")
        deadline = time.time() + 4
        await wait_for(lambda: time.time() > deadline and server.hub.subscriber_count == 1, 10)
        await hub.publish("a", "after the first token expired")
        assert await consumer.data(3) == ["before", "between", "after the first token expired"]
