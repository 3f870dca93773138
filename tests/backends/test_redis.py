"""The Redis backend against a real ``redis-server`` started by the test: ids from Redis,
the seams (replay and live, new topics), several servers sharing one order, replay
decisions, pipelined publishes, incremental subscriptions, and faults (a lost
connection, a restart with the append-only file, a restart that lost everything).

"Several servers" are several :class:`Server` objects in one loop, each with its own
backend and therefore its own Redis connections, exactly as separate processes have
(``test_workers`` runs real processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent

from rawsse.backends.base import LOST_EVENT, Replay
from rawsse.config import Config
from rawsse.errors import DuplicateId, InvalidEvent
from rawsse.hub.hub import Hub
from rawsse.hub.subscriber import Subscriber
from rawsse.hub.views import View
from rawsse.matching.selectors import Kind, selector
from rawsse.server.server import Server
from tests.conftest import TEST_KEY, make_config, running_servers, scaled, wait_for
from tests.support.client import RawConnection, metric_at
from tests.support.fakes import RecordingTransport
from tests.support.redis_server import RedisServer, redis_server
from tests.support.streams import Reader, collect, events_after

if os.environ.get("RAWSSE_REQUIRE_EXTERNAL") != "1":
    pytest.importorskip("redis", reason="the redis extra is not installed")

from rawsse.backends.redis.backend import RedisBackend

AUTH = {"Authorization": f"Bearer {TEST_KEY}"}


def redis_hub(redis: RedisServer, config: Config | None = None, **options: Any) -> Hub:
    config = config or make_config()
    backend = RedisBackend(redis.url, history=config.history, timeout=scaled(1.0), **options)
    return Hub(config, backend=backend)


@contextlib.asynccontextmanager
async def redis_servers(
    redis: RedisServer, count: int, config: Config | None = None, **options: Any
) -> AsyncIterator[list[Server]]:
    """``count`` servers sharing ``redis``, each with its own backend."""
    config = config or make_config()
    setups = [(config, redis_hub(redis, config, **options)) for _ in range(count)]
    async with running_servers(setups) as servers:
        yield servers


@contextlib.asynccontextmanager
async def admin(redis: RedisServer) -> AsyncIterator[Any]:
    """One connection to Redis for the test's own commands."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis.url, single_connection_client=True, protocol=2)
    try:
        yield client
    finally:
        await client.aclose()


async def publish(server: Server, topic: str, data: str, **fields: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=scaled(5)) as client:
        return await client.post(
            f"{server.url}/publish", data={"topic": topic, "data": data, **fields}, headers=AUTH
        )


# -- ids, delivery, replay ---------------------------------------------------------------


async def test_ids_come_from_redis_and_every_server_delivers_the_same(redis: RedisServer) -> None:
    """Events published alternately through two servers reach the subscribers of both
    in one order, with the same ids, and those ids are ``EPOCH-SEQ`` of the epoch
    kept in Redis."""
    async with redis_servers(redis, 2) as (a, b), admin(redis) as client:
        epoch = (await client.get("rawsse:epoch")).decode()
        async with (
            Reader(f"{a.url}/events?topic=t&topic=u") as on_a,
            Reader(f"{b.url}/events?topic=t") as on_b,
        ):
            ids = []
            for i in range(20):
                answer = await publish((a, b)[i % 2], "t", f"e{i}")
                assert answer.status_code == 200
                ids.append(answer.text.strip())
            assert ids == [f"{epoch}-{n}" for n in range(1, 21)]
            seen_a = await on_a.wait_count(20)
            seen_b = await on_b.wait_count(20)
            assert [(e.id, e.data) for e in seen_a] == [(ids[i], f"e{i}") for i in range(20)]
            assert [(e.id, e.data) for e in seen_b] == [(e.id, e.data) for e in seen_a]
            # An event on two topics reaches a reader of both once.
            both = await a.hub.publish_async(["t", "u"], "both", event="pair")
            (event,) = (await on_a.wait_count(21))[20:]
            assert (event.id, event.data, event.event) == (both, "both", "pair")
            await b.hub.publish_async("t", "last")
            assert [e.data for e in await on_a.wait_count(22)][20:] == ["both", "last"]


async def test_a_stream_on_a_topic_new_to_the_process_is_live_once_answered(
    redis: RedisServer,
) -> None:
    """The answer to a stream on a topic this process does not listen to yet waits for
    the subscription: an event published elsewhere right after the client sees the
    head arrives."""
    async with redis_servers(redis, 2) as (a, b):
        for i in range(20):
            async with Reader(f"{a.url}/events?topic=fresh-{i}") as reader:
                await b.hub.publish_async(f"fresh-{i}", "first")
                (event,) = await reader.wait_count(1)
                assert event.data == "first"


async def test_reconnecting_to_another_server_replays_exactly_what_was_missed(
    redis: RedisServer,
) -> None:
    """A producer publishes without pause; a client reads, drops and reconnects with
    its last id, each time to the other server: every event once, in order."""
    async with redis_servers(redis, 2) as servers:
        stop = asyncio.Event()

        async def produce() -> None:
            n = 0
            while not stop.is_set() and n < 5000:
                n += 1
                await servers[n % 2].hub.publish_async("t", str(n))

        producer = asyncio.create_task(produce())
        seen: list[int] = []
        last_id: str | None = None
        for round in range(6):
            url = f"{servers[round % 2].url}/events?topic=t"
            events = await events_after(url, last_id, 40)
            assert all(e.event == "message" for e in events)
            seen += [int(e.data) for e in events]
            last_id = events[-1].id
        stop.set()
        await producer
        assert seen == list(range(seen[0], seen[0] + len(seen)))


async def test_replay_decisions_match_the_memory_backend(redis: RedisServer) -> None:
    """Expired, another epoch, unknown, and a publisher's own id: as with memory."""
    config = make_config(history=3)
    async with redis_servers(redis, 1, config) as (server,):
        hub = server.hub
        ids = [await hub.publish_async("t", f"e{i}") for i in range(10)]
        url = f"{server.url}/events?topic=t"
        events = await events_after(url, ids[2], 4)
        assert events[0].event == LOST_EVENT
        notice = json.loads(events[0].data)
        assert notice == {"reason": "expired", "last_event_id": ids[2], "resume_id": ids[6]}
        assert [e.data for e in events[1:]] == ["e7", "e8", "e9"]
        other = await events_after(url, "deadbeef-4", 4)
        assert json.loads(other[0].data)["reason"] == "epoch"
        assert [e.data for e in other[1:]] == ["e7", "e8", "e9"]
        (unknown,) = await events_after(url, "no-such-id", 1)
        assert json.loads(unknown.data) == {
            "reason": "unknown",
            "last_event_id": "no-such-id",
            "resume_id": ids[9],
        }
        ahead = ids[9].split("-")[0] + "-99"
        (unknown,) = await events_after(url, ahead, 1)
        assert json.loads(unknown.data)["reason"] == "unknown"
        # A publisher's own id resolves, and may not be used twice.
        mine = await hub.publish_async("t", "chosen", id="order-1")
        assert mine == "order-1"
        with pytest.raises(DuplicateId, match="already"):
            await hub.publish_async("t", "again", id="order-1")
        with pytest.raises(InvalidEvent, match="reserved"):
            await hub.publish_async("t", "forged", id="0123abcd-1")
        after = await hub.publish_async("t", "after")
        (event,) = await events_after(url, "order-1", 1)
        assert (event.id, event.data) == (after, "after")
        answer = await publish(server, "t", "x", id="order-1")
        assert answer.status_code == 409  # a duplicate: published once, and said so


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_an_id_on_a_topic_not_read_is_as_unknown_as_one_never_used(
    redis: RedisServer, backend: str
) -> None:
    """With subscribe authorization, a client reading ``public`` sends as its
    ``Last-Event-ID`` a publisher's id used on ``private``: it is told exactly what an id
    never used gets, and the notice's resume id is where ``public`` stands, not the
    hub's counter. (Before, the first replayed from there without a notice, the second
    was told ``unknown`` with the counter as resume id.)"""
    from rawsse.policy.auth import mint_token

    secret = "s" * 32
    config = make_config(jwt_secret=secret, subscribe_auth=True)
    hub = redis_hub(redis, config) if backend == "redis" else Hub(config)
    async with running_servers([(config, hub)]) as (server,):
        public = await hub.publish_async("public", "p1")
        await hub.publish_async("private", "s1", id="order-1")
        for i in range(5):
            await hub.publish_async("private", f"s{i + 2}")
        token = mint_token(secret, subscribe=["public"], ttl=60)
        headers = {"Authorization": f"Bearer {token}"}
        url = f"{server.url}/events?topic=public"
        notices = []
        for last_id in ("order-1", "never-used"):
            (event,) = await collect(url, 1, headers={**headers, "Last-Event-ID": last_id})
            assert event.event == LOST_EVENT
            notices.append({**json.loads(event.data), "last_event_id": "-"})
        assert (
            notices[0]
            == notices[1]
            == {
                "reason": "unknown",
                "last_event_id": "-",
                "resume_id": public,
            }
        )
        # Its own topic's publisher id still resolves.
        mine = await hub.publish_async("public", "p2", id="news-1")
        after = await hub.publish_async("public", "p3")
        (event,) = await collect(url, 1, headers={**headers, "Last-Event-ID": mine})
        assert (event.id, event.data) == (after, "p3")


async def test_concurrent_publishes_share_round_trips(redis: RedisServer) -> None:
    async with redis_servers(redis, 1) as (server,):
        hub = server.hub
        backend = hub.backend
        assert isinstance(backend, RedisBackend)
        before = backend._calls.round_trips
        ids = await asyncio.gather(*(hub.publish_async("t", str(i)) for i in range(500)))
        numbers = [int(i.split("-")[1]) for i in ids]
        assert numbers == list(range(numbers[0], numbers[0] + 500))
        assert backend._calls.round_trips - before < 50


async def test_topics_are_subscribed_and_dropped_as_subscribers_come_and_go(
    redis: RedisServer,
) -> None:
    async with redis_servers(redis, 1, linger=0.2) as (server,), admin(redis) as client:

        async def channels() -> set[str]:
            names = await client.execute_command("PUBSUB", "CHANNELS", "rawsse:c:*")
            return {name.decode() for name in names}

        assert await channels() == set()
        async with Reader(f"{server.url}/events?topic=x"), Reader(f"{server.url}/events?topic=y"):
            assert await channels() == {"rawsse:c:x", "rawsse:c:y"}
        deadline = asyncio.get_running_loop().time() + scaled(5)
        while await channels():
            assert asyncio.get_running_loop().time() < deadline, await channels()
            await asyncio.sleep(0.05)
        # Back again: subscribed again, and delivered.
        async with Reader(f"{server.url}/events?topic=x") as reader:
            await server.hub.publish_async("x", "again")
            assert [e.data for e in await reader.wait_count(1)] == ["again"]


async def test_a_subscription_asked_for_as_the_connection_closes_leaves_nothing_behind(
    redis: RedisServer,
) -> None:
    """A ``SUBSCRIBE`` scheduled in the iteration that closes the Pub/Sub connection is
    not sent: sent after the pool's disconnect, it connected again and was left waiting
    (a task left behind at a server's shutdown, seen in CI)."""
    from rawsse.backends.redis.pubsub import PubSubConnection

    subscribed: list[bytes] = []
    pubsub = PubSubConnection(
        redis.url, name="rawsse-test", timeout=scaled(5), on_connected=lambda: None,
        on_subscribed=subscribed.append, on_message=lambda _c, _d: None,
        on_lost=lambda _exc: None,
    )  # fmt: skip
    running = asyncio.get_running_loop().create_task(pubsub.run())
    pubsub.subscribe(["rawsse-test:first"])
    await wait_for(lambda: subscribed == [b"rawsse-test:first"])
    pubsub.subscribe(["rawsse-test:late"])  # sent at the end of this iteration, were it open
    await pubsub.close()
    await asyncio.wait_for(running, scaled(5))
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert others == [] and subscribed == [b"rawsse-test:first"]
    async with admin(redis) as client:
        assert await client.execute_command("PUBSUB", "CHANNELS", "rawsse-test:*") == []


async def test_history_is_trimmed_to_its_size_in_redis(redis: RedisServer) -> None:
    async with redis_servers(redis, 1, make_config(history=5)) as (server,), admin(redis) as c:
        for i in range(12):
            await server.hub.publish_async(["t", "u"], str(i))
        assert await c.xlen("rawsse:s:t") == 5
        assert await c.xlen("rawsse:s:u") == 5
        assert int(await c.hget("rawsse:trimmed", "t")) == 7


# -- faults ---------------------------------------------------------------------------------


async def metric(server: Server, name: str) -> float:
    return await metric_at(server.url, name)


async def assert_unavailable(server: Server) -> None:
    """Not ready, backend down, publishes refused promptly (the client's timeout
    would fail the test if one hung), new streams told to come back."""
    async with httpx.AsyncClient(timeout=scaled(3)) as client:
        assert (await client.get(f"{server.url}/readyz")).status_code == 503
        assert (await client.get(f"{server.url}/healthz")).status_code == 200
        answer = await client.post(
            f"{server.url}/publish", data={"topic": "t", "data": "x"}, headers=AUTH
        )
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "1"
        refused = await client.get(f"{server.url}/events?topic=t")
        assert refused.status_code == 200
        assert "retry:" in refused.text and "backend unavailable" in refused.text
    assert await metric(server, "rawsse_backend_up") == 0


async def test_a_lost_connection_catches_up_from_the_last_delivered_event(
    redis: RedisServer,
) -> None:
    """Server A loses its Pub/Sub connection and cannot reconnect (Redis refuses new
    clients) while B goes on publishing. A keeps its stream, refuses publishes, and
    once it is back delivers what it missed, in order, before anything newer."""
    async with redis_servers(redis, 2) as (a, b), admin(redis) as client:
        backend_a = a.hub.backend
        assert isinstance(backend_a, RedisBackend)
        async with Reader(f"{a.url}/events?topic=t") as reader:
            ids = [await b.hub.publish_async("t", "e0")]
            await reader.wait_count(1)
            listing = (await client.execute_command("CLIENT", "LIST")).decode()
            name = f"name={backend_a.listener_name}"
            (line,) = [entry for entry in listing.splitlines() if name in entry]
            client_id = line.split()[0].split("=")[1]
            connected = len(listing.splitlines())
            await client.config_set("maxclients", connected - 1)
            await client.execute_command("CLIENT", "KILL", "ID", client_id)
            await wait_for(lambda: not backend_a.healthy)
            await assert_unavailable(a)
            ids += [await b.hub.publish_async("t", f"e{i}") for i in range(1, 6)]
            await client.config_set("maxclients", 10000)
            await wait_for(lambda: backend_a.healthy, timeout=10)
            ids.append(await b.hub.publish_async("t", "e6"))
            events = await reader.wait_count(7)
            assert [(e.id, e.data) for e in events] == [(ids[i], f"e{i}") for i in range(7)]
            assert not reader.ended.is_set()


async def test_redis_restarted_with_its_append_only_file_loses_nothing(
    redis: RedisServer,
) -> None:
    async with redis_servers(redis, 1) as (server,):
        backend = server.hub.backend
        assert isinstance(backend, RedisBackend)
        async with Reader(f"{server.url}/events?topic=t") as reader:
            ids = [await server.hub.publish_async("t", f"e{i}") for i in range(3)]
            await reader.wait_count(3)
            redis.stop()
            await wait_for(lambda: not backend.healthy)
            await assert_unavailable(server)
            redis.start()
            await wait_for(lambda: backend.healthy, timeout=10)
            ids += [(await publish(server, "t", f"e{i}")).text.strip() for i in (3, 4)]
            events = await reader.wait_count(5)
            assert [(e.id, e.data) for e in events] == [(ids[i], f"e{i}") for i in range(5)]
            assert len({i.split("-")[0] for i in ids}) == 1  # the same epoch
            assert not reader.ended.is_set()
        assert await metric(server, "rawsse_backend_up") == 1


async def test_a_stream_closed_before_its_answer_is_never_subscribed(redis: RedisServer) -> None:
    """A stream whose answer waits for Redis (a topic new to the process, or a
    ``Last-Event-ID`` that is not this hub's) and whose client leaves meanwhile is not
    subscribed once Redis answers: it holds no place in the hub, the honest subscriber
    of the same topics gets every event, and the per-address stream cap is whole again.
    (Before, each such request left a subscriber on a dead transport for ever, which
    broke every flush and heartbeat under uvloop.)"""
    config = make_config(max_streams_per_address=3)
    async with redis_servers(redis, 1, config) as (server,):
        assert redis.process is not None
        streams = server.hub.metrics.requests
        redis.process.send_signal(signal.SIGSTOP)  # every answer now waits for Redis
        try:
            targets = [b"/events?topic=orders&topic=news", b"/events?topic=news"] * 3
            for n, target in enumerate(targets, 1):
                conn = await RawConnection.open(server.port)
                last_id = b"last-event-id: publisher-chosen\r\n" if n % 2 else b""
                await conn.send(b"GET %s HTTP/1.1\r\nhost: x\r\n%s\r\n" % (target, last_id))
                # The request was read and its stream is waiting for the backend.
                await wait_for(lambda n=n: streams.get(("/events", 200), 0) == n)  # type: ignore[misc]
                conn.writer.transport.abort()
            await wait_for(lambda: server.connection_count == 0)
        finally:
            redis.process.send_signal(signal.SIGCONT)
        # An honest subscriber's answer waits behind the ghosts' (marks come in order):
        # once it is open, the backend has answered every one of them.
        async with (
            Reader(f"{server.url}/events?topic=news") as honest,
            Reader(f"{server.url}/events?topic=orders&topic=news") as both,
        ):
            assert server.hub.subscriber_count == 2
            for i in range(5):
                await publish(server, "news" if i % 2 else "orders", f"e{i}")
            assert [e.data for e in await honest.wait_count(2)] == ["e1", "e3"]
            assert [e.data for e in await both.wait_count(5)] == [f"e{i}" for i in range(5)]
            # The address's cap of 3 streams counts only the two open ones.
            async with Reader(f"{server.url}/events?topic=third") as third:
                await server.hub.publish_async("third", "yes")
                assert [e.data for e in await third.wait_count(1)] == ["yes"]
        await wait_for(lambda: server.hub.subscriber_count == 0)


async def test_the_lost_redis_log_line_counts_streams_and_topics(
    redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with redis_servers(redis, 1) as (server,):
        backend = server.hub.backend
        assert isinstance(backend, RedisBackend)
        async with (
            Reader(f"{server.url}/events?topic=t"),
            Reader(f"{server.url}/events?topic=t"),
            Reader(f"{server.url}/events?topic=u"),
        ):
            redis.stop()
            await wait_for(lambda: not backend.healthy)
            (line,) = [r.getMessage() for r in caplog.records if "lost redis" in r.getMessage()]
            assert "3 streams on 2 topics kept" in line
            redis.start()
            await wait_for(lambda: backend.healthy, timeout=10)


async def test_a_silent_redis_is_noticed_and_publishes_fail_within_the_timeout(
    redis: RedisServer,
) -> None:
    """Redis stopped with SIGSTOP answers nothing and closes nothing, as an unreachable
    host: a publish fails after ``timeout`` (503, not a hang), the Pub/Sub connection's
    pings go unanswered and the backend is marked down; once Redis answers again the
    server is back. The publish that timed out had reached Redis, which runs it when it
    resumes: it is delivered, in its place (the 503 says "may still be published")."""
    async with redis_servers(redis, 1) as (server,):
        backend = server.hub.backend
        assert isinstance(backend, RedisBackend)
        async with Reader(f"{server.url}/events?topic=t") as reader:
            first = await server.hub.publish_async("t", "before")
            await reader.wait_count(1)
            assert redis.process is not None
            redis.process.send_signal(signal.SIGSTOP)
            try:
                async with httpx.AsyncClient(timeout=scaled(5)) as client:
                    answer = await client.post(
                        f"{server.url}/publish", data={"topic": "t", "data": "x"}, headers=AUTH
                    )
                assert answer.status_code == 503
                assert "may still be published" in answer.text
                await wait_for(lambda: not backend.healthy, timeout=10)
            finally:
                redis.process.send_signal(signal.SIGCONT)
            await wait_for(lambda: backend.healthy, timeout=10)
            after = await server.hub.publish_async("t", "after")
            events = await reader.wait_count(3)
            assert [e.data for e in events] == ["before", "x", "after"]
            assert (events[0].id, events[2].id) == (first, after)


async def test_redis_restarted_empty_ends_streams_and_tells_the_clients(tmp_path: Path) -> None:
    """Without persistence a restart loses the history: the server notices the new
    epoch, ends its streams with a ``retry:``, and the reconnecting client is told
    ``epoch``."""
    with redis_server(tmp_path, appendonly=False) as redis:
        async with redis_servers(redis, 1) as (server,):
            backend = server.hub.backend
            assert isinstance(backend, RedisBackend)
            url = f"{server.url}/events?topic=t"
            async with Reader(url) as reader:
                ids = [await server.hub.publish_async("t", f"e{i}") for i in range(2)]
                await reader.wait_count(2)
                redis.stop()
                await wait_for(lambda: not backend.healthy)
                redis.start()
                await asyncio.wait_for(reader.ended.wait(), scaled(10))
            assert backend.healthy
            new = await server.hub.publish_async("t", "after")
            assert new.split("-")[0] != ids[0].split("-")[0]
            events = await events_after(url, ids[1], 2)
            assert events[0].event == LOST_EVENT
            assert json.loads(events[0].data)["reason"] == "epoch"
            assert (events[1].id, events[1].data) == (new, "after")
            assert await metric(server, 'rawsse_disconnects_total{reason="history_gap"}') == 1


async def test_redis_back_from_an_older_copy_starts_a_new_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis restarted from a snapshot older than what server A delivered: server B,
    which delivered less, marks and publishes first (A's marks are held until then),
    and is given a number A had delivered already. When A marks, the counter is behind
    A's number: a new epoch begins, A ends its streams, and A's reader, reconnecting
    with its last id, is told ``epoch`` and replayed what Redis keeps, B's event
    among it. (Before, A moved the counter up silently: its reader never got B's
    event, and nothing told it.)"""
    with redis_server(tmp_path, appendonly=False) as redis:
        async with redis_servers(redis, 2) as (a, b):
            backend_a = a.hub.backend
            assert isinstance(backend_a, RedisBackend)
            url_a = f"{a.url}/events?topic=a"
            async with Reader(url_a) as on_a, Reader(f"{b.url}/events?topic=b") as on_b:
                await b.hub.publish_async("b", "b0")
                await on_b.wait_count(1)
                assert redis.command("SAVE").startswith(b"+OK")  # the copy: counter 1
                ids = [await a.hub.publish_async("a", f"a{i}") for i in range(3)]
                await on_a.wait_count(3)  # A delivered up to 4, B up to 1
                old_epoch = ids[0].split("-")[0]
                held = asyncio.Event()
                marking = backend_a._marking
                send_mark = marking._send

                def held_mark(token: int) -> None:
                    if held.is_set():
                        send_mark(token)
                    else:
                        asyncio.get_running_loop().call_later(0.01, held_mark, token)

                monkeypatch.setattr(marking, "_send", held_mark)
                redis.stop()  # no save on the way out: the copy is the older one
                await wait_for(lambda: not backend_a.healthy and not b.hub.backend.healthy)
                redis.start()
                await wait_for(lambda: b.hub.backend.healthy, timeout=10)
                reused = await b.hub.publish_async("a", "from-b")
                assert reused == f"{old_epoch}-2"  # given again: A delivered it before
                held.set()
                await asyncio.wait_for(on_a.ended.wait(), scaled(10))
                await wait_for(lambda: backend_a.healthy, timeout=10)
                assert backend_a.epoch != old_epoch
            events = await events_after(url_a, ids[-1], 2)
            assert events[0].event == LOST_EVENT
            assert json.loads(events[0].data)["reason"] == "epoch"
            assert events[1].data == "from-b" and events[1].id.split("-")[0] == backend_a.epoch


async def test_a_server_started_before_redis_becomes_ready_when_it_comes(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path)
    async with redis_servers(redis, 1) as (server,):
        await assert_unavailable(server)
        redis.start()
        try:
            await wait_for(lambda: server.hub.backend.healthy, timeout=10)
            events = await collect_after_publish(server)
            assert [e.data for e in events] == ["hello"]
        finally:
            redis.stop()


async def collect_after_publish(server: Server) -> list[ServerSentEvent]:
    async with Reader(f"{server.url}/events?topic=t") as reader:
        await server.hub.publish_async("t", "hello")
        return await reader.wait_count(1)


def test_a_missing_redis_extra_is_a_config_error() -> None:
    """``Hub(Config(redis=...))`` builds the Redis backend; a bad URL is refused."""
    from rawsse.errors import ConfigError

    hub = Hub(make_config(redis="redis://127.0.0.1:1/0"))
    assert isinstance(hub.backend, RedisBackend)
    with pytest.raises(ConfigError, match="redis"):
        make_config(redis="http://example.com")


async def test_http_publishes_over_redis_answer_each_id(redis: RedisServer) -> None:
    async with redis_servers(redis, 1) as (server,):
        events_task = asyncio.create_task(collect(f"{server.url}/events?topic=j", 3))
        await wait_for(lambda: server.hub.subscriber_count == 1)
        async with httpx.AsyncClient(timeout=scaled(5)) as client:
            answers = [
                await client.post(f"{server.url}/publish", json={"topic": "j", "data": str(i)},
                                  headers=AUTH)
                for i in range(3)
            ]  # fmt: skip
        assert [a.status_code for a in answers] == [200, 200, 200]
        events = await events_task
        assert [e.id for e in events] == [a.text.strip() for a in answers]


async def test_a_batch_over_redis_waits_for_its_answers_in_order(redis: RedisServer) -> None:
    """More lines in one read than a batch may have awaiting Redis: it settles them
    before reading on, mid-request; every line's id comes back in order, as subscribers
    receive them."""
    from rawsse.server.batch import MAX_IN_FLIGHT
    from tests.support.client import RawConnection

    first, second = MAX_IN_FLIGHT + 100, 100

    def part(numbers: range) -> bytes:
        body = b"".join(
            json.dumps({"topic": "bulk", "data": str(i)}).encode() + b"\n" for i in numbers
        )
        return b"%x\r\n%s\r\n" % (len(body), body)

    async with redis_servers(redis, 1, make_config(publish_rate=0)) as (server,):
        events_task = asyncio.create_task(
            collect(f"{server.url}/events?topic=bulk", first + second)
        )
        await wait_for(lambda: server.hub.subscriber_count == 1)
        producer = await RawConnection.open(server.port)
        await producer.send(
            b"POST /publish HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: application/x-ndjson\r\n"
            + f"Authorization: Bearer {TEST_KEY}\r\n\r\n".encode()
            + part(range(first))
        )
        # Answered by Redis while the request is still open: settled mid-request.
        await wait_for(lambda: server.hub.metrics.events_published == first)
        await producer.send(part(range(first, first + second)) + b"0\r\n\r\n")
        answer = await producer.answer(head_only_for=b"POST")
        await producer.close()
        assert answer.status == 200
        ids = [json.loads(line)["id"] for line in answer.body.splitlines()]
        events = await events_task
        assert [e.id for e in events] == ids
        assert [e.data for e in events] == [str(i) for i in range(first + second)]


async def test_a_batch_cut_short_sees_its_publishes_through(redis: RedisServer) -> None:
    """A producer that goes away mid-batch: what it sent was published, and is seen
    through to Redis's answers (counted, no coroutine left unawaited)."""
    from tests.support.client import RawConnection

    async with redis_servers(redis, 1, make_config(publish_rate=0)) as (server,):
        events_task = asyncio.create_task(collect(f"{server.url}/events?topic=cut", 50))
        await wait_for(lambda: server.hub.subscriber_count == 1)
        body = b"".join(
            json.dumps({"topic": "cut", "data": str(i)}).encode() + b"\n" for i in range(50)
        )
        producer = await RawConnection.open(server.port)
        await producer.send(
            b"POST /publish HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: application/x-ndjson\r\n"
            + f"Authorization: Bearer {TEST_KEY}\r\n\r\n".encode()
            + b"%x\r\n%s\r\n" % (len(body), body)
        )
        # Published as soon as read: delivered through Redis, its answers not yet
        # collected by the batch (that happens when it ends).
        assert [e.data for e in await events_task] == [str(i) for i in range(50)]
        assert server.hub.metrics.events_published == 0
        # A reset, not a close: the server's connection is lost mid-request.
        sock = producer.writer.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        producer.writer.transport.abort()
        await wait_for(lambda: server.hub.metrics.events_published == 50)


async def test_a_topic_that_is_not_utf_8_is_refused_before_redis(redis: RedisServer) -> None:
    """A JSON topic with a lone surrogate (``"\\ud800"``) cannot be written to Redis:
    refused with 400 like any bad topic, alone or as a batch line, the other lines
    published and every line answered."""
    async with redis_servers(redis, 1) as (server,):
        async with httpx.AsyncClient(timeout=scaled(5)) as client:
            single = await client.post(
                f"{server.url}/publish",
                content=b'{"topic": "a\\ud800", "data": "x"}',
                headers={**AUTH, "Content-Type": "application/json"},
            )
            assert single.status_code == 400 and "topic" in single.text
            body = b'{"topic": "ok", "data": "1"}\n{"topic": "\\ud800", "data": "2"}\n'
            body += b'{"topic": "ok", "data": "3"}\n'
            batch = await client.post(
                f"{server.url}/publish",
                content=body,
                headers={**AUTH, "Content-Type": "application/x-ndjson"},
            )
        results = [json.loads(line) for line in batch.text.splitlines()]
        assert batch.status_code == 400
        assert ["id" in results[0], results[1]["status"], "id" in results[2]] == [True, 400, True]


async def test_a_private_event_stays_private_on_every_server(redis: RedisServer) -> None:
    """Published private on A, it crosses Redis marked so: B's native readers and a
    reader replaying from the history on B never see it; B's hub delivers it, with
    the same id, only to a view whose grants cover its topic."""
    async with redis_servers(redis, 2) as (a, b):
        url = f"{b.url}/events?topic=t"
        async with Reader(url) as native:
            granted = RecordingTransport()
            subscriber = Subscriber(granted, ("t",), chunked=False, max_buffer=1 << 20)
            grants = View(reading=frozenset({selector(Kind.EXACT, "t")}))
            ready = b.hub.ready(("t",), None)
            if ready is not None:
                await ready
            b.hub.subscribe(subscriber, view=grants)
            first = await a.hub.publish_async("t", "public one")
            secret = await a.hub.publish_async("t", "SECRET", private=True)
            await a.hub.publish_async("t", "public two")
            assert [e.data for e in await native.wait_count(2)] == ["public one", "public two"]
            await wait_for(lambda: b"public two" in b"".join(granted.writes))
            written = b"".join(granted.writes).decode()
            assert f"id: {secret}\ndata: SECRET" in written
            assert all("SECRET" not in e.data for e in native.events)
            b.hub.unsubscribe(subscriber)
        replayed = await events_after(url, first, 1)
        assert [e.data for e in replayed] == ["public two"]


# -- selectors (Mercure's * and URI templates) ------------------------------------------


def selector_view(*templates: str, reading: tuple[str, ...] = ()) -> View:
    """A view reading ``templates`` (``*`` for every topic), granted ``reading``."""
    return View(
        frozenset(selector(Kind.TEMPLATE, t) for t in templates),
        frozenset(selector(Kind.TEMPLATE, t) for t in reading),
    )


async def join_by_selectors(
    server: Server, view: View, last_event_id: str | None = None
) -> tuple[Subscriber, RecordingTransport]:
    """A subscriber of ``server``'s hub reading ``view``'s selectors only, joined as the
    Mercure route joins it (ready for every topic first); its replay written first.
    The test unsubscribes it."""
    transport = RecordingTransport()
    subscriber = Subscriber(transport, (), chunked=False, max_buffer=1 << 20)
    ready = server.hub.ready((), last_event_id, every=True)
    if ready is not None:
        await ready
    replay = server.hub.subscribe(subscriber, last_event_id, view=view)
    subscriber.begin(b"")
    subscriber.replay(b"", (replay if isinstance(replay, Replay) else await replay).records)
    return subscriber, transport


def leave(server: Server) -> None:
    for subscriber in list(server.hub.subscribers()):
        server.hub.unsubscribe(subscriber)


def data_written(transport: RecordingTransport) -> list[str]:
    text = b"".join(transport.writes).decode()
    return [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]


async def test_selectors_read_every_servers_topics_through_one_pattern_subscription(
    redis: RedisServer,
) -> None:
    """A template and ``*`` read on B what A publishes to any topic, once each though an
    event travels on several of its topics' channels, in A's order; private events
    only where granted. B listens with one pattern subscription, made while a
    selector is read and dropped after (``linger``)."""
    async with redis_servers(redis, 2, linger=0.2) as (a, b), admin(redis) as client:

        async def patterns() -> int:
            return int(await client.execute_command("PUBSUB", "NUMPAT"))

        books, books_out = await join_by_selectors(b, selector_view("/books/{id}"))
        everything, every_out = await join_by_selectors(b, selector_view("*", reading=("*",)))
        assert await patterns() == 1
        await a.hub.publish_async(["/books/1", "/authors/1"], "book and author")
        await a.hub.publish_async("/authors/2", "author")
        await a.hub.publish_async("/books/2", "SECRET", private=True)
        await a.hub.publish_async("/books/3", "last")
        await wait_for(lambda: "last" in data_written(every_out))
        assert data_written(every_out) == ["book and author", "author", "SECRET", "last"]
        await wait_for(lambda: "last" in data_written(books_out))
        assert data_written(books_out) == ["book and author", "last"]
        b.hub.unsubscribe(books)
        b.hub.unsubscribe(everything)
        deadline = asyncio.get_running_loop().time() + scaled(5)
        while await patterns():
            assert asyncio.get_running_loop().time() < deadline, "the pattern is never dropped"
            await asyncio.sleep(0.05)
        # Read again: listened to again, and delivered.
        _, again_out = await join_by_selectors(b, selector_view("*"))
        await a.hub.publish_async("/x", "again")
        await wait_for(lambda: data_written(again_out) == ["again"])
        leave(b)


async def test_a_replay_by_selectors_merges_every_matching_topics_history(
    redis: RedisServer,
) -> None:
    """Topics are listed in Redis as they are published to: a server that never saw
    them replays a template's matching histories, merged in order, from an id or from
    ``earliest``, private events only where granted."""
    async with redis_servers(redis, 2) as (a, b):
        first = await a.hub.publish_async("/books/1", "one")
        await a.hub.publish_async("/authors/1", "author")
        await a.hub.publish_async(["/books/2", "/books/1"], "both")
        await a.hub.publish_async("/books/3", "SECRET", private=True)
        await a.hub.publish_async("/books/3", "three")
        _, after_first = await join_by_selectors(b, selector_view("/books/{id}"), first)
        assert data_written(after_first) == ["both", "three"]
        _, granted = await join_by_selectors(
            b, selector_view("/books/{id}", reading=("/books/3",)), "earliest"
        )
        assert data_written(granted) == ["one", "both", "SECRET", "three"]
        _, everything = await join_by_selectors(b, selector_view("*"), "earliest")
        assert data_written(everything) == ["one", "author", "both", "three"]
        leave(b)


async def test_a_process_reading_selectors_catches_up_on_topics_it_never_saw(
    redis: RedisServer,
) -> None:
    """While B's Pub/Sub connection is down, A publishes to topics B has never heard of;
    back, B reads which topics changed since its last event and delivers what a
    ``*`` reader missed, in order, before anything newer."""
    async with redis_servers(redis, 2) as (a, b), admin(redis) as client:
        backend_b = b.hub.backend
        assert isinstance(backend_b, RedisBackend)
        _, out = await join_by_selectors(b, selector_view("*"))
        await a.hub.publish_async("/seen", "e0")
        await wait_for(lambda: data_written(out) == ["e0"])
        listing = (await client.execute_command("CLIENT", "LIST")).decode()
        (line,) = [x for x in listing.splitlines() if f"name={backend_b.listener_name}" in x]
        await client.config_set("maxclients", len(listing.splitlines()) - 1)
        await client.execute_command("CLIENT", "KILL", "ID", line.split()[0].split("=")[1])
        await wait_for(lambda: not backend_b.healthy)
        for i in range(1, 4):
            await a.hub.publish_async(f"/new/{i}", f"e{i}")
        await client.config_set("maxclients", 10000)
        await wait_for(lambda: backend_b.healthy, timeout=10)
        await a.hub.publish_async("/seen", "e4")
        await wait_for(lambda: len(data_written(out)) == 5)
        assert data_written(out) == [f"e{i}" for i in range(5)]
        leave(b)
