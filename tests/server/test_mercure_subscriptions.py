"""Mercure's active subscriptions (--mercure-subscriptions) over real sockets: the
private update when a subscription begins and when it ends (0.x and 1.0 forms, with
the token's payload), the API that lists them (all, by selector, one; 401, 403, 404),
and on Redis every server's, with a server that dies leaving none listed for long."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import pytest

from rawsse.h1.mercure import HUB_PATH
from rawsse.hub.hub import Hub
from tests.conftest import running_server, running_servers, scaled, wait_for
from tests.server.test_mercure import (
    SECRET,
    access_token,
    hub_1_0,
    hub_url,
    mercure_config,
    token,
    url_patterns,
)
from tests.support.cli import start_hub
from tests.support.redis_server import RedisServer
from tests.support.streams import Reader

BOOK = "https://example.com/books/1"
SUBSCRIPTIONS = HUB_PATH + "/subscriptions"
#: What a watcher reads: every subscription event (0.x's two variables).
EVENTS_0X = SUBSCRIPTIONS + "{/topic}{/subscriber}"
WATCHER = token(subscribe=[EVENTS_0X, SUBSCRIPTIONS, SUBSCRIPTIONS + "/{topic}"])


def subscriptions_config(**changes: Any) -> Any:
    return mercure_config(mercure_subscriptions=True, **changes)


async def api(url: str, path: str = SUBSCRIPTIONS, bearer: str | None = WATCHER) -> httpx.Response:
    headers = {} if bearer is None else {"Authorization": f"Bearer {bearer}"}
    async with httpx.AsyncClient(timeout=scaled(5)) as client:
        return await client.get(url + path, headers=headers)


def documents(reader: Reader, watched: str = EVENTS_0X) -> list[dict[str, Any]]:
    """The subscription events ``reader`` received, but those of the watchers (a
    watcher is told of its own subscription, and of the other watchers')."""
    found = [json.loads(e.data) for e in reader.events]
    return [d for d in found if d.get("topic", d.get("match")) != watched]


async def wait_documents(
    reader: Reader, count: int, watched: str = EVENTS_0X
) -> list[dict[str, Any]]:
    await wait_for(lambda: len(documents(reader, watched)) >= count)
    return documents(reader, watched)


async def test_a_subscription_is_announced_listed_and_ended_in_protocol_0x() -> None:
    payload = {"user": "ada"}
    claims = {"mercure": {"subscribe": [BOOK], "payload": payload}, "exp": time.time() + 60}
    reader = jwt.encode(claims, SECRET, algorithm="HS256")
    async with running_server(subscriptions_config()) as server:
        async with (
            Reader(hub_url(server.url, EVENTS_0X), {"Authorization": f"Bearer {WATCHER}"}) as watch,
            Reader(hub_url(server.url, EVENTS_0X)) as anonymous,
        ):
            async with Reader(
                hub_url(server.url, BOOK, "https://example.com/authors/{id}"),
                {"Authorization": f"Bearer {reader}"},
            ):
                begun = await wait_documents(watch, 2)
                subscriber = begun[0]["subscriber"]
                assert subscriber.startswith("urn:uuid:")
                assert begun[0] == {
                    "@context": "https://mercure.rocks/",
                    "id": f"{SUBSCRIPTIONS}/{quote(BOOK, safe='')}/{quote(subscriber, safe='')}",
                    "type": "Subscription",
                    "topic": BOOK,
                    "subscriber": subscriber,
                    "active": True,
                    "payload": payload,
                }
                assert begun[1]["topic"] == "https://example.com/authors/{id}"
                assert begun[1]["subscriber"] == subscriber  # one stream, one subscriber
                assert all(e.id for e in watch.events)  # resumable
                listing = await api(server.url)
                assert listing.status_code == 200, listing.text
                assert listing.headers["content-type"] == "application/ld+json"
                body = listing.json()
                assert body["type"] == "Subscriptions" and body["id"] == SUBSCRIPTIONS
                assert body["lastEventID"] == listing.headers["etag"].strip('"')
                assert sorted(s["topic"] for s in body["subscriptions"]) == [
                    EVENTS_0X,  # the two watchers
                    EVENTS_0X,
                    "https://example.com/authors/{id}",
                    BOOK,
                ]
                by_topic = await api(server.url, f"{SUBSCRIPTIONS}/{quote(BOOK, safe='')}")
                assert [s["subscriber"] for s in by_topic.json()["subscriptions"]] == [subscriber]
                one = await api(server.url, begun[0]["id"])
                assert one.status_code == 200
                assert one.json()["active"] is True and one.json()["lastEventID"]
            ended = (await wait_documents(watch, 4))[2:]
            assert [(d["topic"], d["active"]) for d in ended] == [
                (BOOK, False),
                ("https://example.com/authors/{id}", False),
            ]
            assert anonymous.events == []  # the events are private
        assert (await api(server.url, begun[0]["id"])).status_code == 404
        assert (await api(server.url)).json()["subscriptions"] == []


async def test_protocol_1_0_subscriptions_carry_their_matcher_type_and_payload() -> None:
    """One subscription per matcher, under the 1.0 path; the payload of the first
    subscribe detail whose matchers match the subscription's matcher."""
    reader = access_token(
        {**url_patterns(["subscribe"], "https://example.com/books/:id"), "payload": {"p": 1}},
        {"type": "mercure", "actions": ["subscribe"], "topics": [{"match": "*"}], "payload": 0},
    )
    watcher = access_token(url_patterns(["subscribe"], f"{SUBSCRIPTIONS}/*"))
    async with running_server(subscriptions_config()) as server:
        every = f"{SUBSCRIPTIONS}/:type/:match/:who"
        watched = hub_1_0(server.url, ("matchURLPattern", every))
        async with Reader(watched, {"Authorization": f"Bearer {watcher}"}) as watch:
            stream = hub_1_0(
                server.url,
                ("match", BOOK),
                ("matchURLPattern", "https://example.com/books/:id"),
            )
            async with Reader(stream, {"Authorization": f"Bearer {reader}"}):
                begun = await wait_documents(watch, 2, every)
                by_type = {d["matchType"]: d for d in begun}
                exact, pattern = by_type["Exact"], by_type["URLPattern"]
                assert exact["match"] == BOOK and exact["payload"] == {"p": 1}
                assert pattern["payload"] == {"p": 1}
                assert exact["id"].startswith(f"{SUBSCRIPTIONS}/Exact/{quote(BOOK, safe='')}/")
                collection = f"{SUBSCRIPTIONS}/URLPattern/{quote(pattern['match'], safe='')}"
                listed = await api(server.url, collection, bearer=watcher)
                assert listed.status_code == 200, listed.text
                assert [s["id"] for s in listed.json()["subscriptions"]] == [pattern["id"]]
            ended = await wait_documents(watch, 4, every)
            assert [d["active"] for d in ended] == [True, True, False, False]


@pytest.mark.parametrize(
    ("path", "bearer", "status"),
    [
        (SUBSCRIPTIONS, None, 401),
        (SUBSCRIPTIONS, "bad.token.here", 401),
        (SUBSCRIPTIONS, token(subscribe=[BOOK]), 403),
        (SUBSCRIPTIONS + "/a/b/c/d", WATCHER, 404),
        (SUBSCRIPTIONS + "//x", WATCHER, 404),
        (SUBSCRIPTIONS + "/" + quote(BOOK, safe="") + "/urn%3Auuid%3Anone", WATCHER, 404),
    ],
)
async def test_the_api_refuses_what_it_should(path: str, bearer: str | None, status: int) -> None:
    async with running_server(subscriptions_config()) as server:
        answer = await api(server.url, path, bearer)
        assert answer.status_code == status, answer.text
    async with running_server(mercure_config()) as server:  # not on: not there
        assert (await api(server.url)).status_code == 404


async def test_on_redis_every_servers_subscriptions_are_announced_and_listed(
    redis: RedisServer,
) -> None:
    config = subscriptions_config(redis=redis.url)
    async with running_servers([(config, Hub(config)) for _ in range(2)]) as (a, b):
        async with Reader(hub_url(b.url, EVENTS_0X), {"Authorization": f"Bearer {WATCHER}"}) as w:
            async with Reader(hub_url(a.url, BOOK)):
                (begun,) = await wait_documents(w, 1)
                assert begun["topic"] == BOOK and begun["active"] is True
                listed = (await api(b.url)).json()["subscriptions"]
                assert sorted(s["topic"] for s in listed) == [EVENTS_0X, BOOK]
                assert begun["id"] in [s["id"] for s in listed]
            (_, end) = await wait_documents(w, 2)
            assert end["active"] is False
        await wait_for_listed(b.url, 0)


async def test_on_redis_a_server_that_dies_leaves_no_subscription_listed_for_long(
    redis: RedisServer,
) -> None:
    """A real server process killed with SIGKILL (it says nothing on its way out): its
    subscriptions leave the other server's listing once its roster expires (10 s)."""
    dying = start_hub(
        "--mercure", "--mercure-subscriptions", "--redis", redis.url,
        env={"RAWSSE_JWT_SECRET": SECRET},
    )  # fmt: skip
    try:
        config = subscriptions_config(redis=redis.url)
        host, port = dying.url.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        query = httpx.QueryParams({"topic": BOOK})
        writer.write(f"GET {HUB_PATH}?{query} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        async with running_server(config) as b:
            await wait_for_listed(b.url, 1)
            dying.stop(signal.SIGKILL)
            await wait_for_listed(b.url, 0, timeout=15)
        writer.close()
    finally:
        dying.stop(signal.SIGKILL)


async def wait_for_listed(url: str, count: int, timeout: float = 5.0) -> None:
    """Until the API lists ``count`` subscriptions (asked every 0.1 s)."""
    listed: list[Any] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + scaled(timeout)
    while loop.time() < deadline:
        listed = (await api(url)).json()["subscriptions"]
        if len(listed) == count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{len(listed)} subscriptions listed, not {count}")
