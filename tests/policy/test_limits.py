"""Rate and connection limits: the tables on their own, then each limit over real
sockets, with the answer a refused client gets (a stream request: a 200 that tells an
EventSource when to come back; anything else: 429 with Retry-After)."""

from __future__ import annotations

import contextlib

import pytest

from rawsse.policy.auth import mint_token
from rawsse.policy.limits import CountTable, RateTable, client_key, retry_range_ms
from tests.conftest import DIRECT_CLIENTS, TEST_KEY, make_config, running_server, wait_for
from tests.support.client import Answer, RawConnection, exchange, get, raw_stream
from tests.support.sse_parser import parse

SECRET = "a-test-secret-that-is-long-enough-for-hs256"


def test_token_bucket() -> None:
    table = RateTable(rate=2.0, burst=3)
    assert [table.take("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert table.take("a", 0.0) == pytest.approx(0.5)  # one token comes back in 0.5 s
    assert table.take("b", 0.0) == 0.0  # others are not affected
    assert table.take("a", 0.5) == 0.0  # refilled one
    assert table.take("a", 0.5) > 0
    table.prune(1.0)  # "a" last touched at 0.5, needs 1.5 s to fill: kept
    assert len(table) == 2
    table.prune(2.1)
    assert len(table) == 0
    off = RateTable(rate=0, burst=0)
    assert all(off.take("a", 0.0) == 0.0 for _ in range(1000)) and len(off) == 0


def test_count_table() -> None:
    table = CountTable(limit=2)
    assert table.acquire("a") and table.acquire("a") and not table.acquire("a")
    assert table.acquire("b") and table.total() == 3
    table.release("a")
    assert table.acquire("a")
    for _ in range(3):
        table.release("a")
    table.release("b")
    assert len(table) == 0  # keys are forgotten at zero
    unlimited = CountTable(limit=0)
    assert all(unlimited.acquire("a") for _ in range(1000))


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::9", "2001:db8:1:2::/64"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("fe80::1%eth0", "fe80::/64"),
    ],
)
def test_client_keys_group_ipv6_by_64(address: str, key: str) -> None:
    assert client_key(address) == key


def assert_told_to_come_back(answer: Answer, low_ms: int, high_ms: int) -> None:
    """A refused stream: 200 event stream, no event, a retry hint in range, closed."""
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert answer.headers["connection"] == "close"
    parsed = parse(answer.body.decode())
    assert parsed.events == [] and parsed.retry is not None
    assert low_ms <= parsed.retry <= high_ms, parsed.retry


async def test_new_connections_per_address_are_rate_limited() -> None:
    config = make_config(conn_rate=1, conn_burst=3, **DIRECT_CLIENTS)
    async with running_server(config) as server:
        for _ in range(3):
            assert (await exchange(server.port, get("/healthz"))).status == 200
        refused = await exchange(server.port, get("/healthz"))
        assert refused.status == 429 and refused.headers["retry-after"] == "1"
        assert refused.headers["connection"] == "close"
        # A stream request over the limit is told when to come back (about 1 s here).
        assert_told_to_come_back(await exchange(server.port, get("/events?topic=t")), 1, 2000)
        assert server.hub.subscriber_count == 0
        assert server.hub.metrics.rejected["limit"] == 2
        # Another address has its own bucket.
        conn = await RawConnection.open(server.port, source="127.0.0.2")
        await conn.send(get("/healthz"))
        assert (await conn.answer()).status == 200
        await conn.close()


async def test_open_connections_per_address_are_capped() -> None:
    config = make_config(max_connections_per_address=3, **DIRECT_CLIENTS)
    async with running_server(config) as server:
        held = [await RawConnection.open(server.port) for _ in range(3)]
        await wait_for(lambda: server.connection_count == 3)
        extra = await RawConnection.open(server.port)
        with contextlib.suppress(ConnectionError):
            assert await extra.read_until_closed() == b""  # closed at once, unanswered
        await extra.close()
        await held[0].send(get("/healthz"))  # the held ones still work
        assert (await held[0].answer()).status == 200
        await held.pop().close()
        await wait_for(lambda: server.connection_count == 2)
        again = await RawConnection.open(server.port)
        await again.send(get("/healthz"))
        assert (await again.answer()).status == 200
        for conn in [*held, again]:
            await conn.close()
        assert server.hub.metrics.rejected["limit"] == 1


async def test_streams_per_address_and_in_all_are_capped() -> None:
    config = make_config(max_streams_per_address=2, max_streams=3)
    async with running_server(config) as server:
        hub = server.hub
        low, high = retry_range_ms(config.limit_retry)
        first = [(await raw_stream(server.port, "/events?topic=t"))[0] for _ in range(2)]
        await wait_for(lambda: hub.subscriber_count == 2)
        assert_told_to_come_back(await exchange(server.port, get("/events?topic=t")), low, high)
        # HEAD opens no stream, so it is not refused.
        head = b"HEAD /events?topic=t HTTP/1.1\r\nHost: t\r\n\r\n"
        assert (await exchange(server.port, head, method=b"HEAD")).status == 200
        other, _ = await raw_stream(server.port, "/events?topic=t", source="127.0.0.2")
        await wait_for(lambda: hub.subscriber_count == 3)
        # Three in all: a fourth address is turned away too.
        conn = await RawConnection.open(server.port, source="127.0.0.3")
        await conn.send(get("/events?topic=t"))
        assert_told_to_come_back(await conn.answer(), low, high)
        await conn.close()
        await first.pop().close()
        await wait_for(lambda: hub.subscriber_count == 2)
        again, head_bytes = await raw_stream(server.port, "/events?topic=t")
        assert head_bytes.startswith(b"HTTP/1.1 200 OK") and b"chunked" in head_bytes
        await wait_for(lambda: hub.subscriber_count == 3)
        for c in [*first, other, again]:
            await c.close()
        assert hub.metrics.rejected["limit"] == 2


def publish(key: str, topic: str = "t") -> bytes:
    body = b"x"
    return (
        f"POST /publish?topic={topic} HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n"
        f"Authorization: Bearer {key}\r\n\r\n"
    ).encode() + body


async def test_publishes_per_credential_are_rate_limited() -> None:
    config = make_config(publish_rate=1, publish_burst=2, jwt_secret=SECRET)
    async with running_server(config) as server:
        conn = await RawConnection.open(server.port)
        statuses = []
        for _ in range(3):
            await conn.send(publish(TEST_KEY))
            answer = await conn.answer(head_only_for=b"POST")
            statuses.append(answer.status)
        assert statuses == [200, 200, 429]
        assert answer.headers["retry-after"] == "1" and answer.body == b"too many publishes\n"
        await conn.close()
        # A token's subject has a bucket of its own.
        token = mint_token(SECRET, publish=["*"], subject="other-service")
        answer = await exchange(server.port, publish(token), method=b"POST")
        assert answer.status == 200
        assert server.hub.metrics.events_published == 3
