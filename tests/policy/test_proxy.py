"""Behind a reverse proxy: forwarded addresses are believed from trusted proxies only,
so limits count real clients and a forged header changes nothing."""

from __future__ import annotations

import logging

import pytest

from rawsse.policy.proxy import ProxyResolver
from tests.conftest import DIRECT_CLIENTS, TEST_KEY, make_config, running_server, wait_for
from tests.support.client import RawConnection, exchange, get, raw_stream

TRUSTED = ProxyResolver(["127.0.0.1", "10.0.0.0/8", "::1"])


@pytest.mark.parametrize(
    ("peer", "headers", "client"),
    [
        # Untrusted peers: headers are ignored, whatever they say.
        ("198.51.100.1", [(b"x-forwarded-for", b"203.0.113.5")], "198.51.100.1"),
        ("198.51.100.1", [(b"x-real-ip", b"203.0.113.5")], "198.51.100.1"),
        # A trusted proxy: the nearest untrusted hop.
        ("127.0.0.1", [(b"x-forwarded-for", b"203.0.113.5")], "203.0.113.5"),
        ("127.0.0.1", [(b"x-forwarded-for", b"203.0.113.5, 10.1.2.3")], "203.0.113.5"),
        # A client's forged entry sits left of what the proxy appended: never reached.
        ("127.0.0.1", [(b"x-forwarded-for", b"6.6.6.6, 203.0.113.5")], "203.0.113.5"),
        # Several headers are one list, in order.
        (
            "127.0.0.1",
            [(b"x-forwarded-for", b"6.6.6.6"), (b"x-forwarded-for", b"203.0.113.5")],
            "203.0.113.5",
        ),
        # Garbage ends the walk at the last trusted hop, never used as a key.
        ("127.0.0.1", [(b"x-forwarded-for", b"nonsense")], "127.0.0.1"),
        ("127.0.0.1", [(b"x-forwarded-for", b"nonsense, 10.0.0.7")], "10.0.0.7"),
        # Only trusted hops: the farthest of them.
        ("127.0.0.1", [(b"x-forwarded-for", b"10.0.0.9, 10.0.0.7")], "10.0.0.9"),
        # X-Real-IP when there is no X-Forwarded-For.
        ("127.0.0.1", [(b"x-real-ip", b"203.0.113.8")], "203.0.113.8"),
        ("127.0.0.1", [(b"x-real-ip", b"bogus")], "127.0.0.1"),
        ("127.0.0.1", [], "127.0.0.1"),
        # Ports and IPv6 forms.
        ("127.0.0.1", [(b"x-forwarded-for", b"203.0.113.5:4711")], "203.0.113.5"),
        ("::1", [(b"x-forwarded-for", b"[2001:db8::7]:4711")], "2001:db8::7"),
        ("::ffff:127.0.0.1", [(b"x-forwarded-for", b"2001:db8::7")], "2001:db8::7"),
    ],
)
def test_client_address(peer: str, headers: list[tuple[bytes, bytes]], client: str) -> None:
    assert TRUSTED.client(peer, headers) == client


def test_nothing_is_trusted_by_default() -> None:
    resolver = ProxyResolver([])
    assert not resolver.enabled and not resolver.is_trusted("127.0.0.1")
    assert resolver.client("127.0.0.1", [(b"x-forwarded-for", b"1.2.3.4")]) == "127.0.0.1"


async def test_limits_count_forwarded_clients_and_ignore_forged_headers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="rawsse.access")
    config = make_config(
        trusted_proxies=("127.0.0.1",), max_streams_per_address=1, max_connections_per_address=1
    )
    async with running_server(config) as server:
        hub = server.hub
        # Through the trusted proxy (127.0.0.1): two clients, one stream each, on more
        # sockets than the per-address connection cap (the proxy is exempt from it).
        a, head_a = await raw_stream(server.port, "/events?topic=t", "X-Forwarded-For: 203.0.113.1")
        b, head_b = await raw_stream(server.port, "/events?topic=t", "X-Forwarded-For: 203.0.113.2")
        assert head_a.startswith(b"HTTP/1.1 200") and head_b.startswith(b"HTTP/1.1 200")
        await wait_for(lambda: hub.subscriber_count == 2)
        again = await exchange(server.port, get("/events?topic=t", "X-Forwarded-For: 203.0.113.1"))
        assert again.headers["connection"] == "close" and b"retry:" in again.body
        assert hub.subscriber_count == 2
        # From an untrusted address, X-Forwarded-For is ignored: a forged header does not
        # buy a second stream.
        c, head_c = await raw_stream(
            server.port, "/events?topic=t", "X-Forwarded-For: 203.0.113.3", source="127.0.0.2"
        )
        assert head_c.startswith(b"HTTP/1.1 200")
        await wait_for(lambda: hub.subscriber_count == 3)
        forged = await RawConnection.open(server.port, source="127.0.0.2")
        await forged.send(get("/healthz"))  # over its connection cap of one: closed
        assert await forged.read_until_closed() == b""
        await forged.close()
        for conn in (a, b, c):
            await conn.close()
        await wait_for(lambda: hub.subscriber_count == 0)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "203.0.113.1 via 127.0.0.1:" in logged
    assert "203.0.113.3" not in logged  # the forged address appears nowhere


async def test_behind_a_proxy_on_the_same_machine_by_default(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Default flags, 150 browsers arriving within a second through a proxy on
    loopback (as nginx on the same machine): every one is counted and logged under its
    own address, so all are served and all receive the next event."""
    caplog.set_level(logging.INFO, logger="rawsse.access")
    config = make_config()
    assert config.trusted_proxies == ("127.0.0.0/8", "::1")
    async with running_server(config) as server:
        hub = server.hub
        streams = []
        for i in range(150):
            forwarded = f"X-Forwarded-For: 198.51.{100 + i // 250}.{i % 250 + 1}"
            conn, head = await raw_stream(server.port, "/events?topic=t", forwarded)
            assert head.startswith(b"HTTP/1.1 200") and b"retry:" not in head
            streams.append((conn, head))
        await wait_for(lambda: hub.subscriber_count == 150)
        event_id = hub.publish("t", "for everyone")
        for conn, head in streams:
            body = head
            while f"id: {event_id}".encode() not in body:
                body += await conn.read_some()
            await conn.close()
        await wait_for(lambda: hub.subscriber_count == 0)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "198.51.100.1 via 127.0.0.1:" in logged and "198.51.100.150 via" in logged


async def test_trusting_no_proxy_ignores_the_header_from_loopback() -> None:
    async with running_server(make_config(trusted_proxies=(), max_streams_per_address=1)) as server:
        a, head = await raw_stream(server.port, "/events?topic=t", "X-Forwarded-For: 198.51.100.1")
        assert head.startswith(b"HTTP/1.1 200")
        await wait_for(lambda: server.hub.subscriber_count == 1)
        # Another "client" by the header is the same address: over its one stream.
        refused = await exchange(server.port, get("/events?topic=t", "X-Forwarded-For: 6.6.6.6"))
        assert b"retry:" in refused.body and refused.headers["connection"] == "close"
        await a.close()
        await wait_for(lambda: server.hub.subscriber_count == 0)


async def test_a_publisher_with_its_key_is_not_held_to_the_connection_rate() -> None:
    """A publisher that opens a connection per publish (curl in a loop) from one
    address: with its key, every publish is answered (its credential's publish rate
    governs it); without a valid key, the address's connection rate still applies.
    (A rate of one connection a hundred seconds, the default burst of 40: no token
    comes back while the test runs, however slowly a loaded machine runs it; at the
    default 20/s, the last of 60 refused connections was at times let through.)"""
    config = make_config(conn_rate=0.01, **DIRECT_CLIENTS)
    async with running_server(config) as server:
        for i in range(60):
            answer = await exchange(server.port, publish_request(i, TEST_KEY), method=b"POST")
            assert answer.status == 200, (i, answer.status, answer.body)
        statuses = [
            (await exchange(server.port, publish_request(i, "wrong"), method=b"POST")).status
            for i in range(60)
        ]
        # The same address's connections, now without a valid key: the connection rate
        # (spent by the publishes above) turns them away.
        assert set(statuses) <= {401, 429} and statuses[-1] == 429


def publish_request(i: int, key: str) -> bytes:
    body = f"topic=t&data={i}".encode()
    return (
        "POST /publish HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
        f"Authorization: Bearer {key}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def test_shedding_is_logged_once_per_address(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="rawsse.limits")
    config = make_config(max_streams_per_address=1, **DIRECT_CLIENTS)
    async with running_server(config) as server:
        kept, _ = await raw_stream(server.port, "/events?topic=t")
        await wait_for(lambda: server.hub.subscriber_count == 1)
        for _ in range(5):
            refused = await exchange(server.port, get("/events?topic=t"))
            assert b"retry:" in refused.body
        await kept.close()
        await wait_for(lambda: server.hub.subscriber_count == 0)
    warnings = [r.getMessage() for r in caplog.records if r.name == "rawsse.limits"]
    assert len(warnings) == 1
    assert "turning away 127.0.0.1: too many streams" in warnings[0]
    assert "--trusted-proxy" in warnings[0]
