"""Mercure mode (0.x) over real sockets: a Symfony-style publisher (a form POSTed with a
Bearer token) and httpx-sse subscribers at /.well-known/mercure; selectors, tokens from
the header, the query and the cookie, private updates every way they could leak, replay
and ``earliest``, and each kind of bad input answered with its status and reason."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
import pytest

from rawsse.backends.redis.backend import RedisBackend
from rawsse.h1.mercure import HUB_PATH
from rawsse.hub.hub import Hub
from tests.conftest import (
    TEST_KEY,
    make_config,
    running_server,
    running_servers,
    scaled,
    wait_for,
)
from tests.support.redis_server import RedisServer
from tests.support.streams import Reader, collect

SECRET = "!ChangeThisMercureHubJWTSecretKey!"
OTHER_SECRET = "a-different-secret-of-32-bytes-or-more!!"
BOOK_1 = "https://example.com/books/1"
BOOK_2 = "https://example.com/books/2"
BOOKS = "https://example.com/books/{id}"


def token(
    publish: list[str] | None = None,
    subscribe: list[str] | None = None,
    *,
    secret: str = SECRET,
    ttl: float | None = 3600,
    claim: str = "mercure",
    **extra: Any,
) -> str:
    grants: dict[str, Any] = {}
    if publish is not None:
        grants["publish"] = publish
    if subscribe is not None:
        grants["subscribe"] = subscribe
    claims: dict[str, Any] = {claim: grants, **extra}
    if ttl is not None:
        claims["exp"] = int(time.time() + ttl)
    return str(jwt.encode(claims, secret, algorithm="HS256"))


PUBLISHER = token(publish=["*"])


def mercure_config(**changes: Any) -> Any:
    return make_config(mercure=True, jwt_secret=SECRET, **changes)


async def publish(
    url: str,
    fields: list[tuple[str, str]],
    *,
    bearer: str | None = PUBLISHER,
    headers: dict[str, str] | None = None,
    cookies: dict[str, str] | None = None,
) -> httpx.Response:
    """What symfony/mercure's Hub sends: a form with repeated fields, a Bearer token."""
    sent = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
    if bearer is not None:
        sent["Authorization"] = f"Bearer {bearer}"
    async with httpx.AsyncClient(timeout=scaled(5), cookies=cookies) as client:
        return await client.post(url + HUB_PATH, content=urlencode(fields), headers=sent)


def hub_url(url: str, *selectors: str, **params: str) -> str:
    query = httpx.QueryParams([("topic", s) for s in selectors] + list(params.items()))
    return f"{url}{HUB_PATH}?{query}"


async def test_a_symfony_style_publish_reaches_template_and_exact_subscribers() -> None:
    async with (
        running_server(mercure_config()) as server,
        Reader(hub_url(server.url, BOOKS)) as by_template,
        Reader(hub_url(server.url, BOOK_1)) as by_topic,
        Reader(hub_url(server.url, "*")) as everything,
    ):
        answer = await publish(
            server.url,
            [
                ("topic", BOOK_1),
                ("topic", "https://example.com/authors/9"),
                ("data", '{"@id": "/books/1"}'),
                ("data", "ignored: the first data wins"),
                ("id", "urn:example:1"),
                ("type", "update"),
                ("retry", "3000"),
                ("unknown", "ignored"),
            ],
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/plain")
        assert answer.text == "urn:example:1"  # the id alone, no newline
        await publish(server.url, [("topic", BOOK_2), ("data", "two")])
        await publish(server.url, [("topic", "https://example.com/authors/1"), ("data", "a")])
        (first, second) = await by_template.wait_count(2)
        assert (first.id, first.event, first.data) == (
            "urn:example:1",
            "update",
            '{"@id": "/books/1"}',
        )
        assert first.retry == 3000
        assert second.data == "two" and second.id  # a hub-made id
        assert [e.data for e in await by_topic.wait_count(1)] == ['{"@id": "/books/1"}']
        assert [e.data for e in await everything.wait_count(3)] == [
            '{"@id": "/books/1"}',
            "two",
            "a",
        ]
        await asyncio.sleep(0)
        assert len(by_template.events) == 2 and len(by_topic.events) == 1


async def test_a_private_update_reaches_only_subscribers_granted_one_of_its_topics() -> None:
    """Every way in: anonymous, a grant for another topic, a native stream on the same
    topic, and the same selectors sharing frames. Only the granted get it, by the
    header, the query parameter or the cookie."""
    granted = token(subscribe=[BOOKS])
    by_alternate = token(subscribe=["https://example.com/authors/9"])
    not_granted = token(subscribe=[BOOK_2])
    async with running_server(mercure_config()) as server:
        url = hub_url(server.url, BOOK_1)
        async with (
            Reader(url) as anonymous,
            Reader(url, {"Authorization": f"Bearer {granted}"}) as by_header,
            Reader(hub_url(server.url, BOOK_1, authorization=granted)) as by_query,
            Reader(url, {"Cookie": f"mercureAuthorization={granted}"}) as by_cookie,
            Reader(url, {"Authorization": f"Bearer {by_alternate}"}) as alternate,
            Reader(url, {"Authorization": f"Bearer {not_granted}"}) as other,
            Reader(f"{server.url}/events?topic={BOOK_1}") as native,
        ):
            await publish(server.url, [("topic", BOOK_1), ("data", "public one")])
            await publish(
                server.url,
                [
                    ("topic", BOOK_1),
                    ("topic", "https://example.com/authors/9"),
                    ("data", "SECRET"),
                    ("private", ""),  # present, whatever its value
                ],
            )
            await publish(server.url, [("topic", BOOK_1), ("data", "public two")])
            for reader in (by_header, by_query, by_cookie, alternate):
                events = await reader.wait_count(3)
                assert [e.data for e in events] == ["public one", "SECRET", "public two"]
            for reader in (anonymous, other, native):
                events = await reader.wait_count(2)
                assert [e.data for e in events] == ["public one", "public two"]
            await asyncio.sleep(0.05)
            for reader in (anonymous, other, native):
                assert all(e.data != "SECRET" for e in reader.events)


async def test_replay_resumes_by_header_or_parameter_and_keeps_private_updates_private() -> None:
    granted = token(subscribe=["*"])
    async with running_server(mercure_config()) as server:
        ids = []
        for data, private in (("one", False), ("SECRET", True), ("two", False)):
            fields = [("topic", BOOK_1), ("data", data)] + ([("private", "on")] if private else [])
            ids.append((await publish(server.url, fields)).text)
        await publish(server.url, [("topic", BOOK_2), ("data", "other book")])
        url = hub_url(server.url, BOOK_1)
        assert [e.data for e in await collect(url, 1, {"Last-Event-ID": ids[0]})] == ["two"]
        replayed = await collect(hub_url(server.url, BOOK_1, lastEventID=ids[0]), 1)
        assert [e.data for e in replayed] == ["two"]
        granted_replay = await collect(
            url, 2, {"Last-Event-ID": ids[0], "Authorization": f"Bearer {granted}"}
        )
        assert [e.data for e in granted_replay] == ["SECRET", "two"]
        # earliest: the whole matching history, merged across the topics a template matches.
        everything = await collect(hub_url(server.url, BOOKS, lastEventID="earliest"), 3)
        assert [e.data for e in everything] == ["one", "two", "other book"]


@pytest.mark.parametrize(
    ("fields", "status", "reason"),
    [
        ([("data", "no topic")], 400, "needs a topic"),
        ([("topic", "/.well-known/mercure/subscriptions/x"), ("data", "x")], 403, "reserved"),
        ([("topic", "https://hub.example/.well-known/mercure"), ("data", "x")], 403, "reserved"),
        ([("topic", "t"), ("id", "#fragment")], 400, "must not start with #"),
        ([("topic", "t"), ("id", "earliest")], 400, "earliest"),
        ([("topic", "t"), ("id", "a\nb")], 400, "id"),
        ([("topic", "t"), ("type", "a\nb")], 400, "event"),
        ([("topic", "t"), ("retry", "soon")], 400, "retry"),
        ([("topic", "t\x00")], 400, "control"),
    ],
)
async def test_a_bad_publish_is_refused_with_its_status_and_reason(
    fields: list[tuple[str, str]], status: int, reason: str
) -> None:
    async with running_server(mercure_config()) as server:
        answer = await publish(server.url, fields)
        assert answer.status_code == status, answer.text
        assert reason in answer.text
        assert server.hub.metrics.events_published == 0


async def test_a_publish_needs_a_grant_covering_every_topic() -> None:
    async with running_server(mercure_config()) as server:
        missing = await publish(server.url, [("topic", BOOK_1)], bearer=None)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        forged = await publish(
            server.url, [("topic", BOOK_1)], bearer=token(["*"], secret=OTHER_SECRET)
        )
        assert forged.status_code == 401 and "invalid_token" in forged.headers["www-authenticate"]
        subscriber_only = await publish(
            server.url, [("topic", BOOK_1)], bearer=token(subscribe=["*"])
        )
        assert subscriber_only.status_code == 403
        partial = token(publish=[BOOKS])
        covered = await publish(server.url, [("topic", BOOK_1), ("data", "ok")], bearer=partial)
        assert covered.status_code == 200
        uncovered = await publish(
            server.url,
            [("topic", BOOK_1), ("topic", "https://example.com/authors/1")],
            bearer=partial,
        )
        assert uncovered.status_code == 403
        assert "insufficient_scope" in uncovered.headers["www-authenticate"]
        wrong_type = await publish(
            server.url, [("topic", BOOK_1)], headers={"Content-Type": "application/json"}
        )
        assert wrong_type.status_code in (400, 415)
        assert server.hub.metrics.events_published == 1


async def test_a_publish_by_cookie_must_come_from_a_publish_origin() -> None:
    config = mercure_config(publish_origins=("https://app.example",))
    cookie = {"mercureAuthorization": PUBLISHER}
    async with running_server(config) as server:

        async def by_cookie(headers: dict[str, str]) -> httpx.Response:
            fields = [("topic", BOOK_1), ("data", "x")]
            return await publish(server.url, fields, bearer=None, cookies=cookie, headers=headers)

        no_origin = await by_cookie({})
        assert no_origin.status_code == 403 and "publish origin" in no_origin.text
        assert (await by_cookie({"Origin": "https://evil.example"})).status_code == 403
        assert (await by_cookie({"Origin": "https://app.example"})).status_code == 200
        from_page = await by_cookie({"Referer": "https://app.example/page?x=1"})
        assert from_page.status_code == 200
        assert server.hub.metrics.events_published == 2


async def test_subscribers_may_be_anonymous_unless_required_and_a_bad_token_is_refused() -> None:
    async with (
        running_server(mercure_config()) as server,
        httpx.AsyncClient(timeout=scaled(5)) as client,
    ):
        bad = await client.get(
            hub_url(server.url, BOOK_1), headers={"Authorization": "Bearer not.a.token"}
        )
        assert bad.status_code == 401
        forged = token(subscribe=["*"], secret=OTHER_SECRET)
        refused = await client.get(hub_url(server.url, BOOK_1, authorization=forged))
        assert refused.status_code == 401
        malformed = await client.get(
            hub_url(server.url, BOOK_1),
            headers={"Authorization": f"Bearer {token(subscribe='*')}"},  # type: ignore[arg-type]
        )
        assert malformed.status_code == 401 and "array of strings" in malformed.text
    async with running_server(mercure_config(subscribe_auth=True)) as server:
        async with httpx.AsyncClient(timeout=scaled(5)) as client:
            anonymous = await client.get(hub_url(server.url, BOOK_1))
            assert anonymous.status_code == 401
            assert anonymous.headers["www-authenticate"] == "Bearer"
        granted = token(subscribe=[BOOK_1])
        async with Reader(
            hub_url(server.url, BOOK_1), {"Authorization": f"Bearer {granted}"}
        ) as reader:
            await publish(server.url, [("topic", BOOK_1), ("data", "hello")])
            assert [e.data for e in await reader.wait_count(1)] == ["hello"]


async def test_separate_keys_for_publishers_and_subscribers() -> None:
    config = make_config(mercure=True, publisher_jwt_key=SECRET, subscriber_jwt_key=OTHER_SECRET)
    async with running_server(config) as server:
        published = await publish(server.url, [("topic", BOOK_1), ("data", "x")])
        assert published.status_code == 200
        wrong_key = await publish(
            server.url, [("topic", BOOK_1)], bearer=token(["*"], secret=OTHER_SECRET)
        )
        assert wrong_key.status_code == 401
        async with httpx.AsyncClient(timeout=scaled(5)) as client:
            signed_by_publisher_key = token(subscribe=["*"], secret=SECRET)
            refused = await client.get(
                hub_url(server.url, BOOK_1),
                headers={"Authorization": f"Bearer {signed_by_publisher_key}"},
            )
            assert refused.status_code == 401
        subscriber = token(subscribe=["*"], secret=OTHER_SECRET)
        async with Reader(
            hub_url(server.url, BOOK_1), {"Authorization": f"Bearer {subscriber}"}
        ) as reader:
            await publish(server.url, [("topic", BOOK_1), ("data", "private"), ("private", "on")])
            assert [e.data for e in await reader.wait_count(1)] == ["private"]


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("", "at least one topic selector"),
        ("topic=https://example.com/{", "not a URI template"),
        ("topic=https://example.com/{=x}", "reserved"),
        ("topic=", "1 to"),
    ],
)
async def test_a_bad_subscription_is_refused_with_the_reason(query: str, reason: str) -> None:
    async with running_server(mercure_config()) as server:
        async with httpx.AsyncClient(timeout=scaled(5)) as client:
            answer = await client.get(f"{server.url}{HUB_PATH}?{query}")
        assert answer.status_code == 400, answer.text
        assert reason in answer.text
        assert server.hub.subscriber_count == 0


async def test_a_stream_ends_at_its_tokens_expiry() -> None:
    config = mercure_config(token_expiry_notice=0.2)
    short = token(subscribe=["*"], ttl=2)
    async with running_server(config) as server:
        async with Reader(
            hub_url(server.url, BOOK_1), {"Authorization": f"Bearer {short}"}
        ) as reader:
            await asyncio.wait_for(reader.ended.wait(), scaled(6))
            assert any(e.event == "rawsse-auth-expiring" for e in reader.events)
        await wait_for(lambda: server.hub.subscriber_count == 0)


async def test_the_hub_url_is_not_served_unless_mercure_mode_is_on() -> None:
    async with running_server(make_config(jwt_secret=SECRET)) as server:
        async with httpx.AsyncClient(timeout=scaled(5)) as client:
            answer = await client.get(hub_url(server.url, BOOK_1))
        assert answer.status_code == 404


async def test_on_redis_every_server_serves_mercure_and_keeps_private_updates_private(
    redis: RedisServer,
) -> None:
    """Published by form on A, read on B: the same ids everywhere, a private update only
    to B's granted subscriber, replay on B as live, by exact topic and by template."""
    config = mercure_config(redis=redis.url)
    setups = [(config, Hub(config)) for _ in range(2)]
    granted = token(subscribe=[BOOK_1])
    async with running_servers(setups) as (a, b):
        url = hub_url(b.url, BOOK_1)
        async with (
            Reader(url) as anonymous,
            Reader(url, {"Authorization": f"Bearer {granted}"}) as reader,
            Reader(hub_url(b.url, BOOKS)) as by_template,
        ):
            ids = []
            for data, private in (("one", False), ("SECRET", True), ("two", False)):
                fields = [("topic", BOOK_1), ("data", data)]
                answer = await publish(a.url, fields + ([("private", "on")] if private else []))
                assert answer.status_code == 200, answer.text
                ids.append(answer.text)
            assert [(e.data, e.id) for e in await reader.wait_count(3)] == list(
                zip(["one", "SECRET", "two"], ids, strict=True)
            )
            assert all(i.startswith("urn:uuid:") for i in ids)
            assert isinstance(a.hub.backend, RedisBackend)
            assert [e.data for e in await anonymous.wait_count(2)] == ["one", "two"]
            assert [e.data for e in await by_template.wait_count(2)] == ["one", "two"]
        replayed = await collect(url, 1, {"Last-Event-ID": ids[0]})
        assert [e.data for e in replayed] == ["two"]
        replayed = await collect(hub_url(b.url, BOOKS), 1, {"Last-Event-ID": ids[0]})
        assert [e.data for e in replayed] == ["two"]
        granted_replay = await collect(
            hub_url(b.url, BOOKS, lastEventID="earliest"),
            3,
            {"Authorization": f"Bearer {granted}"},
        )
        assert [e.data for e in granted_replay] == ["one", "SECRET", "two"]


async def test_the_last_event_id_response_header_says_where_the_replay_starts() -> None:
    """Asked only when a client resumes: the id it gave when what follows is sent to it
    directly, else ``earliest`` (an unknown id, ``earliest`` itself, or a private update
    right after it that this client may not read: its id is not disclosed either)."""
    granted = {"Authorization": f"Bearer {token(subscribe=[BOOK_1])}"}
    async with running_server(mercure_config()) as server:
        ids = []
        for data, private in (("one", False), ("two", False), ("SECRET", True), ("three", False)):
            fields = [("topic", BOOK_1), ("data", data)] + ([("private", "on")] if private else [])
            ids.append((await publish(server.url, fields)).text)
        url = hub_url(server.url, BOOK_1)

        async def anchor(
            last_event_id: str | None, headers: dict[str, str] | None = None
        ) -> str | None:
            sent = dict(headers or {})
            if last_event_id is not None:
                sent["Last-Event-ID"] = last_event_id
            async with (
                httpx.AsyncClient(timeout=scaled(5)) as client,
                client.stream("GET", url, headers=sent) as response,
            ):
                assert response.status_code == 200
                return response.headers.get("last-event-id")

        assert await anchor(None) is None
        assert await anchor(ids[0]) == ids[0]  # "two" follows, visible
        assert await anchor(ids[3]) == ids[3]  # nothing follows yet
        assert await anchor(ids[1]) == "earliest"  # a private update follows, unreadable
        assert await anchor(ids[1], granted) == ids[1]
        assert await anchor(ids[2]) == "earliest"  # a private update's own id
        assert await anchor(ids[2], granted) == ids[2]
        assert await anchor("never-published") == "earliest"
        assert await anchor("earliest") == "earliest"
        async with (
            httpx.AsyncClient(timeout=scaled(5)) as client,
            client.stream("GET", hub_url(server.url, BOOKS, lastEventID=ids[0])) as response,
        ):
            assert response.headers["last-event-id"] == ids[0]  # by parameter, templates


async def test_without_a_subscribers_key_tokens_are_refused_and_anonymous_reads_public() -> None:
    config = make_config(mercure=True, publisher_jwt_key=SECRET)
    async with running_server(config) as server:
        async with httpx.AsyncClient(timeout=scaled(5)) as client:
            answer = await client.get(
                hub_url(server.url, BOOK_1),
                headers={"Authorization": f"Bearer {token(subscribe=['*'])}"},
            )
        assert answer.status_code == 401 and "no subscriber tokens" in answer.text
        async with Reader(hub_url(server.url, BOOK_1)) as anonymous:
            await publish(server.url, [("topic", BOOK_1), ("data", "hidden"), ("private", "")])
            await publish(server.url, [("topic", BOOK_1), ("data", "public")])
            assert [e.data for e in await anonymous.wait_count(1)] == ["public"]


def access_token(*details: dict[str, Any], typ: str = "at+jwt", ttl: float | None = 3600) -> str:
    """A protocol 1.0 token: RFC 9068's typ, Mercure's authorization details."""
    claims: dict[str, Any] = {"authorization_details": list(details), "sub": "user-1"}
    if ttl is not None:
        claims["exp"] = int(time.time() + ttl)
    return str(jwt.encode(claims, SECRET, algorithm="HS256", headers={"typ": typ}))


def detail(actions: list[str], *matches: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "mercure",
        "actions": actions,
        "topics": [{"match": m} for m in matches],
        **extra,
    }


def hub_1_0(url: str, *pairs: tuple[str, str]) -> str:
    return f"{url}{HUB_PATH}?{httpx.QueryParams(list(pairs))}"


async def test_protocol_1_0_exact_matchers_and_access_tokens() -> None:
    """``match`` (and its explicit spellings) and ``*``; a token with authorization
    details, by the header, the access_token parameter or 1.0's cookie; a private update
    only to the granted; Mercure-Last-Event-ID as well as Last-Event-ID on a resume."""
    reader = access_token(detail(["subscribe"], BOOK_1))
    publisher = access_token(detail(["publish"], "*"))
    async with running_server(mercure_config()) as server:
        async with (
            Reader(hub_1_0(server.url, ("match", BOOK_1))) as anonymous,
            Reader(
                hub_1_0(server.url, ("matchExact", BOOK_1)), {"Authorization": f"Bearer {reader}"}
            ) as by_header,
            Reader(
                hub_1_0(server.url, ("match_exact", BOOK_1), ("access_token", reader))
            ) as by_query,
            Reader(
                hub_1_0(server.url, ("match", "*")), {"Cookie": f"mercureAccessToken={reader}"}
            ) as by_cookie,
        ):
            ids = []
            for data, private in (("one", False), ("SECRET", True), ("two", False)):
                fields = [("topic", BOOK_1), ("data", data)] + (
                    [("private", "on")] if private else []
                )
                answer = await publish(server.url, fields, bearer=publisher)
                assert answer.status_code == 200, answer.text
                ids.append(answer.text)
            for granted in (by_header, by_query, by_cookie):
                assert [e.data for e in await granted.wait_count(3)] == ["one", "SECRET", "two"]
            assert [e.data for e in await anonymous.wait_count(2)] == ["one", "two"]
        async with (
            httpx.AsyncClient(timeout=scaled(5)) as client,
            client.stream(
                "GET",
                hub_1_0(server.url, ("match", BOOK_1), ("last_event_id", ids[1])),
                headers={"Authorization": f"Bearer {reader}"},
            ) as response,
        ):
            assert response.status_code == 200
            assert response.headers["mercure-last-event-id"] == ids[1]
            assert response.headers["last-event-id"] == ids[1]


@pytest.mark.parametrize(
    ("pairs", "status", "reason"),
    [
        ((("matchRegex", "x"),), 400, "unknown topic matcher parameter"),
        ((("MATCH", "x"),), 400, "unknown topic matcher parameter"),
        ((("match", "x"), ("topic", "y")), 400, "not both"),
        ((("match", "a\x01b"),), 400, "control"),
        ((("matchURLPattern", "https://example.com/(a(b))"),), 400, "capturing group"),
        ((("matchURLPattern", "https://example.com/:id/:id"),), 400, "two groups"),
        ((("matchURLPattern", "https://example.com/{a"),), 400, "not closed"),
        ((("match_urlpattern", "https://example.com/(a(?=b))"),), 400, "does not compile"),
        ((("matchURLPattern", "x" * 2000),), 400, "1 to 1024"),
    ],
)
async def test_a_bad_1_0_subscription_is_refused_with_the_reason(
    pairs: tuple[tuple[str, str], ...], status: int, reason: str
) -> None:
    async with (
        running_server(mercure_config()) as server,
        httpx.AsyncClient(timeout=scaled(5)) as client,
    ):
        answer = await client.get(hub_1_0(server.url, *pairs))
        assert answer.status_code == status, answer.text
        assert reason in answer.text


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (access_token(detail(["subscribe"], "*"), typ="JWT"), "at+jwt"),
        (access_token(detail(["subscribe"], "*"), ttl=None), "exp"),
        (
            access_token({"type": "mercure", "actions": ["read"], "topics": [{"match": "*"}]}),
            "actions",
        ),
        (access_token({"type": "mercure", "actions": ["subscribe"], "topics": []}), "topics"),
        (
            access_token({"type": "mercure", "actions": ["subscribe"], "topics": ["*"]}),
            "match string",
        ),
        (
            access_token(
                {
                    "type": "mercure",
                    "actions": ["subscribe"],
                    "topics": [{"match": "/b/(", "matchType": "URLPattern"}],
                }
            ),
            "not a URL pattern",
        ),
        (
            access_token(
                {
                    "type": "mercure",
                    "actions": ["subscribe"],
                    "topics": [{"match": "a", "matchType": "Glob"}],
                }
            ),
            "matchType",
        ),
    ],
)
async def test_a_malformed_access_token_is_refused_whole(bad: str, reason: str) -> None:
    async with (
        running_server(mercure_config()) as server,
        httpx.AsyncClient(timeout=scaled(5)) as client,
    ):
        answer = await client.get(
            hub_1_0(server.url, ("match", BOOK_1)), headers={"Authorization": f"Bearer {bad}"}
        )
        assert answer.status_code == 401, answer.text
        assert reason in answer.text


async def test_details_of_other_types_grant_nothing() -> None:
    foreign = access_token({"type": "payment", "actions": ["publish"], "topics": [{"match": "*"}]})
    partial = access_token(detail(["publish"], BOOK_1), detail(["subscribe"], "*"))
    async with running_server(mercure_config()) as server:
        refused = await publish(server.url, [("topic", BOOK_1), ("data", "x")], bearer=foreign)
        assert refused.status_code == 403
        allowed = await publish(server.url, [("topic", BOOK_1), ("data", "x")], bearer=partial)
        assert allowed.status_code == 200
        other = await publish(server.url, [("topic", BOOK_2), ("data", "x")], bearer=partial)
        assert other.status_code == 403


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_a_publisher_may_reuse_an_id_and_a_resume_from_it_starts_after_the_last(
    backend: str, request: pytest.FixtureRequest
) -> None:
    """Mercure lets a publisher give an id again: the update is published (not refused
    as a duplicate, as the native API refuses it), and a client resuming from the id
    is sent what follows its latest use."""
    changes = {"redis": request.getfixturevalue("redis").url} if backend == "redis" else {}
    async with running_server(mercure_config(**changes)) as server:
        sent = []
        for data, id in (
            ("first", "urn:example:same"),
            ("between", ""),
            ("again", "urn:example:same"),
            ("after", ""),
        ):
            fields = [("topic", BOOK_1), ("data", data)] + ([("id", id)] if id else [])
            answer = await publish(server.url, fields)
            assert answer.status_code == 200, answer.text
            sent.append(answer.text)
        assert sent[0] == sent[2] == "urn:example:same"
        resumed = await collect(hub_url(server.url, BOOK_1), 1, {"Last-Event-ID": sent[0]})
        assert [e.data for e in resumed] == ["after"]
        async with httpx.AsyncClient(timeout=scaled(5)) as client:
            native = await client.post(
                f"{server.url}/publish",
                data={"topic": BOOK_1, "data": "x", "id": "urn:example:same"},
                headers={"Authorization": f"Bearer {TEST_KEY}"},
            )
        assert native.status_code == 409 and "already" in native.text


def url_patterns(actions: list[str], *patterns: str) -> dict[str, Any]:
    return {
        "type": "mercure",
        "actions": actions,
        "topics": [{"match": p, "matchType": "URLPattern"} for p in patterns],
    }


async def test_protocol_1_0_url_patterns_select_topics_and_grant_private_updates() -> None:
    """``matchURLPattern`` beside exact matchers: absolute and relative patterns (the
    relative ones, and relative topics, resolved against --mercure-url), an update once
    however many of its topics match; a token's URL pattern matchers grant private
    updates and publishing on what they match, and nothing else."""
    reader = access_token(url_patterns(["subscribe"], "/books/:id"))
    publisher = access_token(url_patterns(["publish"], "https://example.com/*"))
    config = mercure_config(mercure_url="https://example.com/.well-known/mercure")
    async with running_server(config) as server:
        numbered = hub_1_0(server.url, ("matchURLPattern", "https://example.com/books/:id(\\d+)"))
        relative = hub_1_0(server.url, ("matchURLPattern", "/books/*"), ("match", "urn:x"))
        async with (
            Reader(numbered) as by_number,
            Reader(relative, {"Authorization": f"Bearer {reader}"}) as granted,
            Reader(hub_1_0(server.url, ("matchURLPattern", "/books/*"))) as anonymous,
        ):
            for topics, data, private in (
                (["https://example.com/books/1", "https://example.com/books/1/x"], "one", False),
                (["https://example.com/books/abc"], "abc", False),
                (["https://example.com/books/2"], "SECRET", True),
                (["https://example.com/authors/1"], "author", False),
                (["/books/3"], "relative", False),
            ):
                fields = [("topic", t) for t in topics] + [("data", data)]
                answer = await publish(
                    server.url, fields + ([("private", "")] if private else []), bearer=publisher
                )
                assert answer.status_code == 200, answer.text
            assert [e.data for e in await by_number.wait_count(2)] == ["one", "relative"]
            assert [e.data for e in await granted.wait_count(4)] == [
                "one",
                "abc",
                "SECRET",
                "relative",
            ]
            assert [e.data for e in await anonymous.wait_count(3)] == ["one", "abc", "relative"]
        elsewhere = await publish(
            server.url,
            [("topic", "https://other.example/books/1"), ("data", "x")],
            bearer=publisher,
        )
        assert elsewhere.status_code == 403
        replayed = await collect(numbered, 2, {"Last-Event-ID": "earliest"})
        assert [e.data for e in replayed] == ["one", "relative"]
