"""rawsse.client publishing against a real hub over real sockets: one event and many
(a generator streamed into one request), sync and async, every error the hub answers
with as its own type, and retries that never publish an event twice."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from rawsse.client import (
    AsyncClient,
    Client,
    ClientError,
    DuplicateId,
    Forbidden,
    InvalidEvent,
    RateLimited,
    TooLarge,
    Unauthorized,
    Unavailable,
)
from rawsse.policy.auth import mint_token
from tests.conftest import TEST_KEY, make_config, running_server, scaled, wait_for
from tests.support.redis_server import RedisServer
from tests.support.streams import Reader

SECRET = "a-secret-for-the-client-tests-32b!"


async def test_the_sync_client_publishes_what_subscribers_receive() -> None:
    async with running_server() as server, Reader(f"{server.url}/events?topic=a") as reader:

        def produce() -> list[str]:
            with Client(server.url, key=TEST_KEY) as hub:
                return [
                    hub.publish("a", "plain"),
                    hub.publish(["a", "b"], {"n": 2}, event="update", retry=1500),
                    hub.publish("a", "mine", id="order-7"),
                ]

        ids = await asyncio.to_thread(produce)
        events = await reader.wait_count(3)
        assert [(e.id, e.event, e.data) for e in events] == [
            (ids[0], "message", "plain"),
            (ids[1], "update", '{"n":2}'),
            ("order-7", "message", "mine"),
        ]
        assert events[1].retry == 1500
        assert ids[2] == "order-7"


async def test_the_async_client_publishes_and_keeps_one_connection() -> None:
    async with running_server() as server, Reader(f"{server.url}/events?topic=a") as reader:
        async with AsyncClient(server.url, key=TEST_KEY) as hub:
            ids = [await hub.publish("a", f"e{i}") for i in range(20)]
        assert [e.id for e in await reader.wait_count(20)] == ids
        assert server.hub.metrics.events_published == 20


async def test_a_client_is_usable_from_many_threads_at_once() -> None:
    async with running_server(make_config(publish_rate=0)) as server:
        with Client(server.url, key=TEST_KEY) as hub:

            def burst() -> list[str]:
                return [hub.publish("t", "x") for _ in range(25)]

            results = await asyncio.gather(*(asyncio.to_thread(burst) for _ in range(4)))
        ids = [i for ids in results for i in ids]
        assert len(set(ids)) == 100
        assert server.hub.metrics.events_published == 100


async def test_an_async_client_belongs_to_one_loop() -> None:
    async with running_server() as server:
        hub = AsyncClient(server.url, key=TEST_KEY)
        await hub.publish("a", "here")

        def elsewhere() -> None:
            asyncio.run(hub.publish("a", "there"))

        with pytest.raises(RuntimeError, match="event loop"):
            await asyncio.to_thread(elsewhere)
        await hub.close()


@pytest.mark.parametrize(
    ("changes", "client", "call", "kind", "status"),
    [
        ({}, {"key": "wrong"}, ("a", "x"), Unauthorized, 401),
        (
            {"publish_key": None, "jwt_secret": SECRET},
            {"token": "not.a.token"},
            ("a", "x"),
            Unauthorized,
            401,
        ),
        (
            {"publish_key": None, "jwt_secret": SECRET},
            {"token": mint_token(SECRET, publish=["other"])},
            ("a", "x"),
            Forbidden,
            403,
        ),
        ({}, {"key": TEST_KEY}, ("a", "x", {"event": "rawsse-lost"}), InvalidEvent, 400),
        ({}, {"key": TEST_KEY}, ("a", "x", {"event": "a\nb"}), InvalidEvent, 400),
        ({"max_event_size": 1024}, {"key": TEST_KEY}, ("a", "x" * 5000), TooLarge, 413),
    ],
)
async def test_each_refusal_is_its_own_error_type(
    changes: dict[str, Any],
    client: dict[str, Any],
    call: tuple[Any, ...],
    kind: type[ClientError],
    status: int,
) -> None:
    topic, data, *rest = call
    options = rest[0] if rest else {}
    async with running_server(make_config(**changes)) as server:
        async with AsyncClient(server.url, **client) as hub:
            with pytest.raises(kind) as refused:
                await hub.publish(topic, data, **options)
        assert refused.value.status == status and refused.value.reason
        assert server.hub.metrics.events_published == 0

        def sync() -> None:
            with Client(server.url, **client) as hub:
                hub.publish(topic, data, **options)

        with pytest.raises(kind):
            await asyncio.to_thread(sync)


async def test_over_the_publish_rate_is_rate_limited_with_the_hubs_wait() -> None:
    async with running_server(make_config(publish_rate=1, publish_burst=2)) as server:
        async with AsyncClient(server.url, key=TEST_KEY) as hub:
            await hub.publish("a", "1")
            await hub.publish("a", "2")
            with pytest.raises(RateLimited) as limited:
                await hub.publish("a", "3")
        assert limited.value.status == 429
        assert limited.value.retry_after is not None and limited.value.retry_after >= 1


async def test_an_id_the_caller_reuses_is_a_duplicate() -> None:
    async with running_server() as server, AsyncClient(server.url, key=TEST_KEY) as hub:
        assert await hub.publish("a", "first", id="order-1") == "order-1"
        with pytest.raises(DuplicateId) as duplicate:
            await hub.publish("a", "again", id="order-1")
        assert duplicate.value.status == 409
        assert server.hub.metrics.events_published == 1


async def test_a_draining_hub_is_unavailable_after_the_retries() -> None:
    async with running_server() as server:
        server._state.draining = True  # what a SIGTERM'd hub answers publishes with
        waits: list[float] = []
        async with AsyncClient(server.url, key=TEST_KEY, retries=2) as hub:

            async def note(seconds: float) -> None:
                waits.append(seconds)

            hub.sleep = note
            with pytest.raises(Unavailable) as down:
                await hub.publish("a", "x")
        server._state.draining = False
        assert down.value.status == 503
        assert len(waits) == 2  # two retries, each after a wait


async def test_no_hub_at_all_is_unavailable() -> None:
    async with running_server() as server:
        url = server.url
    async with AsyncClient(url, key=TEST_KEY, retries=1, timeout=scaled(1)) as hub:
        hub.sleep = _no_wait
        with pytest.raises(Unavailable) as down:
            await hub.publish("a", "x")
    assert down.value.status == 0


async def _no_wait(seconds: float) -> None:
    return None


# -- many events over one request --------------------------------------------------------


async def test_a_batch_streams_from_a_generator_as_it_is_read() -> None:
    """The second event is produced only once a subscriber has received the first:
    the batch is streamed into the hub, not gathered first."""
    async with running_server() as server, Reader(f"{server.url}/events?topic=a") as reader:
        seen = threading.Event()

        def events() -> Iterator[dict[str, Any]]:
            yield {"topic": "a", "data": "first"}
            assert seen.wait(scaled(5)), "the first event never arrived while streaming"
            yield {"topic": "a", "data": "bad", "event": "a\nb"}
            yield {"topic": ["a", "b"], "data": {"n": 3}, "id": "order-9"}

        def produce() -> list[Any]:
            with Client(server.url, key=TEST_KEY) as hub:
                return hub.publish_many(events())

        producing = asyncio.create_task(asyncio.to_thread(produce))
        await reader.wait_count(1)
        seen.set()
        first, bad, last = await producing
        assert isinstance(first, str) and last == "order-9"
        assert isinstance(bad, InvalidEvent) and bad.status == 400
        assert [e.data for e in await reader.wait_count(2)] == ["first", '{"n":3}']


async def test_an_async_batch_streams_from_an_async_generator() -> None:
    async with running_server() as server, Reader(f"{server.url}/events?topic=a") as reader:

        def received(count: int) -> Callable[[], bool]:
            return lambda: len(reader.events) >= count

        async def events() -> AsyncIterator[dict[str, Any]]:
            for i in range(3):
                yield {"topic": "a", "data": f"e{i}"}
                await wait_for(received(i + 1))  # each arrives before the next is made

        async with AsyncClient(server.url, key=TEST_KEY) as hub:
            results = await hub.publish_many(events())
        assert [e.id for e in reader.events] == results


async def test_a_batch_refused_whole_raises() -> None:
    async with running_server() as server, AsyncClient(server.url, key="wrong") as hub:
        with pytest.raises(Unauthorized):
            await hub.publish_many([{"topic": "a", "data": "x"}])
        with pytest.raises(ValueError, match="unknown event keys"):
            await hub.publish_many([{"topic": "a", "data": "x", "colour": "red"}])


# -- retries that never duplicate --------------------------------------------------------


async def test_a_retry_across_a_redis_outage_publishes_exactly_once(redis: RedisServer) -> None:
    """Redis stops taking writes for longer than the hub waits for it: the hub answers
    503 ("may still be published"), and the script runs once Redis resumes. The client
    retries with the id it chose; the hub refuses the second arrival (409), which the
    client counts as the first's success: one event, delivered once."""
    config = make_config(redis=redis.url, redis_timeout=scaled(0.3))
    async with running_server(config) as server, Reader(f"{server.url}/events?topic=a") as reader:
        async with AsyncClient(server.url, key=TEST_KEY, retries=5) as hub:
            first = await hub.publish("a", "before")
            pause_ms = int(scaled(1.0) * 1000)
            redis.command("CLIENT", "PAUSE", str(pause_ms), "WRITE")
            tries: list[float] = []
            real_sleep = hub.sleep

            async def counted(seconds: float) -> None:
                tries.append(seconds)
                await real_sleep(seconds)

            hub.sleep = counted
            event_id = await hub.publish("a", "once")
            hub.sleep = real_sleep
            after = await hub.publish("a", "after")
        events = await reader.wait_count(3)
        assert [(e.id, e.data) for e in events] == [
            (first, "before"),
            (event_id, "once"),
            (after, "after"),
        ]
        # "after" was published after the retry: a second "once" would have come before it.
        assert tries, "the publish was never retried: the outage did not happen"
