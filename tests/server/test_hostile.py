"""Hostile input over real sockets: each is answered with the right status and a short
reason (or the connection is closed), and the server is unharmed afterwards: it still
serves, holds no subscriber, connection or task, and its memory stays flat.
``running_server`` checks the last three on exit, for every test here."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import resource
import time
import tracemalloc

import jwt
import pytest

from rawsse.policy.auth import mint_token
from rawsse.server.server import Server
from tests.conftest import (
    DIRECT_CLIENTS,
    NO_CLIENT_LIMITS,
    TEST_KEY,
    make_config,
    running_server,
    scaled,
    wait_for,
)
from tests.support.client import RawConnection, raw_stream
from tests.support.streams import collect

SECRET = "a-test-secret-that-is-long-enough-for-hs256"
NOW = int(time.time())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


ALG_NONE = ".".join(
    [
        _b64(b'{"alg":"none","typ":"JWT"}'),
        _b64(json.dumps({"rawsse": {"publish": ["*"], "subscribe": ["*"]}}).encode()),
        "",
    ]
)
TOKENS = {
    "forged": jwt.encode({"rawsse": {"publish": ["*"], "subscribe": ["*"]}}, "x" * 40, "HS256"),
    "expired": jwt.encode(
        {"rawsse": {"publish": ["*"], "subscribe": ["*"]}, "exp": NOW - 60}, SECRET, "HS256"
    ),
    "alg none": ALG_NONE,
    "not a token": "a.b.c",
}


def _token(**claims: object) -> str:
    return jwt.encode({"rawsse": {"publish": ["*"], "subscribe": ["*"]}, **claims}, SECRET)


#: Tokens PyJWT accepts (or chokes on) whose expiry rawsse could not honour:
#: (name, token, reason expected).
BAD_EXPIRY_TOKENS = [
    ("an exp as a numeric string", _token(exp=str(NOW + 3600)), b"exp must be a number"),
    ("a 400-digit exp", _token(exp=10**400), b"exp out of range"),
    # PyJWT refuses these itself (older releases raised OverflowError from int()).
    ("an infinite exp", _token(exp=float("inf")), b"token"),
    ("an infinite nbf", _token(nbf=float("inf")), b"token"),
]


def request(head: str, body: bytes = b"") -> bytes:
    return head.replace("\n", "\r\n").encode("latin-1") + b"\r\n\r\n" + body


def publish(query: str, body: bytes, *headers: str, key: str = TEST_KEY) -> bytes:
    lines = [
        f"POST /publish{query} HTTP/1.1",
        "Host: t",
        "Connection: close",
        f"Authorization: Bearer {key}",
        f"Content-Length: {len(body)}",
        *headers,
    ]
    return request("\n".join(lines), body)


def get(target: str, *headers: str) -> bytes:
    return request("\n".join([f"GET {target} HTTP/1.1", "Host: t", "Connection: close", *headers]))


FORM = "Content-Type: application/x-www-form-urlencoded"
JSON = "Content-Type: application/json"

#: (name, bytes sent, status expected, part of the reason expected)
CASES: list[tuple[str, bytes, int, bytes]] = [
    # Malformed request lines and headers.
    ("garbage", b"GARBAGE\r\n\r\n", 400, b"illegal request line"),
    ("HTTP/0.9", b"GET /\r\n\r\n", 400, b"illegal request line"),
    ("binary", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40, 400, b"illegal"),
    ("bad method chars", b"G(T /healthz HTTP/1.1\r\nHost: t\r\n\r\n", 400, b"illegal"),
    ("header without colon", request("GET /healthz HTTP/1.1\nHost: t\nBad"), 400, b"header"),
    ("space before colon", request("GET /healthz HTTP/1.1\nHost : t"), 400, b"header"),
    ("NUL in a header", request("GET /healthz HTTP/1.1\nHost: t\nX: a\0b"), 400, b"header"),
    ("non-ASCII header name", b"GET / HTTP/1.1\r\nHost: t\r\nX\xff: a\r\n\r\n", 400, b"header"),
    ("no Host", request("GET /healthz HTTP/1.1"), 400, b"Host"),
    ("two Hosts", request("GET /healthz HTTP/1.1\nHost: a\nHost: b"), 400, b"Host"),
    ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, b"HTTP/1.0 and HTTP/1.1"),
    ("HTTP/1.2", request("GET /healthz HTTP/1.2\nHost: t"), 505, b"HTTP/1.0 and HTTP/1.1"),
    ("absolute-form target", get("http://evil.example/healthz"), 400, b"start with /"),
    (
        "CONNECT",
        request("CONNECT evil:443 HTTP/1.1\nHost: evil:443\nConnection: close"),
        400,
        b"start with /",
    ),
    ("invalid UTF-8 in the path", b"GET /\xff HTTP/1.1\r\nHost: t\r\n\r\n", 400, b"illegal"),
    # Request smuggling shapes.
    (
        "Content-Length and Transfer-Encoding",
        publish("?topic=t", b"0\r\n\r\n", "Transfer-Encoding: chunked"),
        400,
        b"both Content-Length and Transfer-Encoding",
    ),
    (
        "two different Content-Lengths",
        publish("?topic=t", b"abcde", "Content-Length: 4"),
        400,
        b"conflicting Content-Length",
    ),
    (
        "a Content-Length list",
        request("POST /publish HTTP/1.1\nHost: t\nContent-Length: 1, 2", b"ab"),
        400,
        b"conflicting Content-Length",
    ),
    (
        "negative Content-Length",
        request("POST /publish HTTP/1.1\nHost: t\nContent-Length: -1"),
        400,
        b"bad Content-Length",
    ),
    (
        "Transfer-Encoding gzip",
        request("POST /publish HTTP/1.1\nHost: t\nTransfer-Encoding: gzip, chunked", b"0\r\n\r\n"),
        501,
        b"chunked",
    ),
    (
        "two Transfer-Encodings",
        request(
            "POST /publish HTTP/1.1\nHost: t\nTransfer-Encoding: chunked\n"
            "Transfer-Encoding: chunked",
            b"0\r\n\r\n",
        ),
        501,
        b"multiple Transfer-Encoding",
    ),
    (
        "Transfer-Encoding in HTTP/1.0",
        request("POST /publish HTTP/1.0\nTransfer-Encoding: chunked", b"0\r\n\r\n"),
        400,
        b"HTTP/1.0",
    ),
    (
        "bad chunk size",
        request("POST /publish HTTP/1.1\nHost: t\nTransfer-Encoding: chunked", b"zz\r\nab\r\n"),
        400,
        b"chunk",
    ),
    # Oversized parts.
    ("a 20 KiB header", get("/healthz", "X-Big: " + "a" * 20_000), 431, b"too large"),
    ("10 000 tiny headers", get("/healthz", *["X: y"] * 10_000), 431, b"too large"),
    (
        "declared body over the limit",
        request("POST /publish HTTP/1.1\nHost: t\nContent-Length: 999999999"),
        413,
        b"too large",
    ),
    (
        "chunked body over the limit",
        request(
            "POST /publish HTTP/1.1\nHost: t\nTransfer-Encoding: chunked",
            b"".join(b"ffff\r\n" + b"a" * 0xFFFF + b"\r\n" for _ in range(17)),
        ),
        413,
        b"too large",
    ),
    (
        "a body of 2-byte chunks",
        request(
            "POST /healthz HTTP/1.1\nHost: t\nTransfer-Encoding: chunked",
            b"2\r\nab\r\n" * 2000 + b"0\r\n\r\n",
        ),
        400,
        b"chunks under 16 bytes on average",
    ),
    (
        "a batch of 2-byte chunks",
        request(
            "POST /publish HTTP/1.1\nHost: t\nTransfer-Encoding: chunked\n"
            "Content-Type: application/x-ndjson\nAuthorization: Bearer test-key",
            b"2\r\n{}\r\n" * 2000 + b"0\r\n\r\n",
        ),
        400,
        b"chunks under 16 bytes on average",
    ),
    ("a 9 KiB query", get("/events?topic=" + "a" * 9000), 414, b"too long"),
    ("65 topics", get("/events?" + "&".join(f"topic=t{i}" for i in range(65))), 400, b"at most"),
    ("a 300-character topic", get("/events?topic=" + "a" * 300), 400, b"1 to 256"),
    ("no topic", get("/events"), 400, b"at least one topic"),
    ("an empty topic", get("/events?topic="), 400, b"1 to 256"),
    # Unknown methods and paths.
    ("BREW", request("BREW /events?topic=a HTTP/1.1\nHost: t\nConnection: close"), 405, b"method"),
    (
        "DELETE on publish",
        request("DELETE /publish HTTP/1.1\nHost: t\nConnection: close"),
        405,
        b"method",
    ),
    ("path traversal", get("/../../etc/passwd"), 404, b"not found"),
    # Invalid UTF-8 and newline / NUL injection in topic, id and event.
    ("invalid UTF-8 topic", get("/events?topic=%FF"), 400, b"UTF-8"),
    ("newline in a topic", get("/events?topic=a%0Ab"), 400, b"control"),
    ("NUL in a topic", get("/events?topic=a%00b"), 400, b"control"),
    ("newline in an id", publish("?topic=t&id=a%0Aevent:x", b"x"), 400, b"id"),
    ("CR in an event", publish("?topic=t&event=a%0Db", b"x"), 400, b"event"),
    ("NUL in an id", publish("", b"topic=t&data=x&id=a%00b", FORM), 400, b"id"),
    ("newline in a published topic", publish("?topic=a%0Ab", b"x"), 400, b"control"),
    ("invalid UTF-8 data", publish("?topic=t", b"\xff\xfe"), 400, b"UTF-8"),
    ("invalid UTF-8 form", publish("", b"topic=t&data=%FF", FORM), 400, b"UTF-8"),
    (
        "NUL event in JSON",
        publish("", b'{"topic":"t","data":"x","event":"a\\u0000"}', JSON),
        400,
        b"event",
    ),
    ("JSON that is not an object", publish("", b"[1, 2]", JSON), 400, b"object"),
    ("deep JSON", publish("", b"[" * 100_000 + b"]" * 100_000, JSON), 400, b"JSON"),
    ("a negative retry", publish("?topic=t&retry=-5", b"x"), 400, b"retry"),
    # Integers past Python's 4300-digit conversion limit, or past what a browser can wait.
    (
        "a 5000-digit retry in the query",
        publish("?topic=t&retry=" + "9" * 5000, b"x"),
        400,
        b"retry",
    ),
    (
        "a 5000-digit retry in a form",
        publish("", b"topic=t&data=x&retry=" + b"9" * 5000, FORM),
        400,
        b"retry",
    ),
    (
        "a 5000-digit retry in JSON",
        publish("", b'{"topic":"t","data":"x","retry":' + b"9" * 5000 + b"}", JSON),
        400,
        b"too long",
    ),
    (
        "a 5000-digit number in JSON",
        publish("", b'{"topic":"t","data":"x","n":' + b"9" * 5000 + b"}", JSON),
        400,
        b"too long",
    ),
    ("a retry past 2**31 - 1 ms", publish("?topic=t&retry=2147483648", b"x"), 400, b"retry"),
    (
        "a large retry in JSON",
        publish("", b'{"topic":"t","data":"x","retry":' + b"9" * 400 + b"}", JSON),
        400,
        b"retry",
    ),
    # The hub's own notices cannot be forged.
    (
        "a rawsse-lost event in the query",
        publish("?topic=t&event=rawsse-lost", b"{}"),
        400,
        b"reserved",
    ),
    (
        "a rawsse- event in a form",
        publish("", b"topic=t&data=x&event=rawsse-auth-expiring", FORM),
        400,
        b"reserved",
    ),
    (
        "a rawsse- event in JSON",
        publish("", b'{"topic":"t","data":"x","event":"rawsse-x"}', JSON),
        400,
        b"reserved",
    ),
    ("an unknown content type", publish("", b"x", "Content-Type: text/csv"), 415, b"content type"),
    # Credentials.
    ("a wrong publish key", publish("?topic=t", b"x", key="wrong"), 401, b"wrong publish key"),
    *[
        (f"{kind} token to publish", publish("?topic=t", b"x", key=token), 401, b"")
        for kind, token in TOKENS.items()
    ],
    *[
        (
            f"{kind} token to subscribe",
            get("/events?topic=t", f"Authorization: Bearer {token}"),
            401,
            b"",
        )
        for kind, token in TOKENS.items()
    ],
    *[
        (f"{name} to publish", publish("?topic=t", b"x", key=token), 401, reason)
        for name, token, reason in BAD_EXPIRY_TOKENS
    ],
    *[
        (
            f"{name} to subscribe",
            get("/events?topic=t", f"Authorization: Bearer {token}"),
            401,
            reason,
        )
        for name, token, reason in BAD_EXPIRY_TOKENS
    ],
    (
        "a token in a forbidden query parameter",
        get("/events?topic=t&authorization=" + mint_token(SECRET, subscribe=["*"])),
        401,
        b"missing token",
    ),
]


def hostile_config() -> object:
    return make_config(jwt_secret=SECRET, subscribe_auth=True, max_event_size=1_000_000)


async def send_and_read(port: int, raw: bytes) -> bytes:
    """Send ``raw`` and read until the server closes; return what it answered."""
    conn = await RawConnection.open(port)
    try:
        with contextlib.suppress(ConnectionError):
            await conn.send(raw)
        try:
            return await conn.read_until_closed()
        except ConnectionError:
            return b""
    finally:
        await conn.close()


def status_and_body(answer: bytes) -> tuple[int, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), answer[:200]
    return int(head.split()[1]), body


async def assert_unharmed(server: Server) -> None:
    answer = await send_and_read(server.port, get("/healthz"))
    assert status_and_body(answer) == (200, b"ok\n")
    await wait_for(lambda: server.connection_count == 0)
    assert server.hub.subscriber_count == 0 and server.hub.metrics.events_published == 0


@pytest.mark.parametrize(("name", "raw", "status", "reason"), CASES, ids=[c[0] for c in CASES])
async def test_hostile_request(name: str, raw: bytes, status: int, reason: bytes) -> None:
    async with running_server(hostile_config()) as server:
        got_status, body = status_and_body(await send_and_read(server.port, raw))
        assert got_status == status, (name, body)
        assert reason in body, (name, body)
        assert len(body) < 200  # a short reason, not an echo of the input
        await assert_unharmed(server)


async def test_memory_stays_flat_under_repeated_hostile_input() -> None:
    """Every case, over and over: what rawsse and h11 hold does not grow."""

    def held(snapshot: tracemalloc.Snapshot) -> int:
        return sum(
            stat.size
            for stat in snapshot.statistics("filename")
            if "/rawsse/" in stat.traceback[0].filename or "/h11/" in stat.traceback[0].filename
        )

    config = make_config(jwt_secret=SECRET, subscribe_auth=True, **NO_CLIENT_LIMITS)
    async with running_server(config) as server:
        cases = [raw for _name, raw, _status, _reason in CASES]

        async def round_of_cases() -> None:
            for raw in cases:
                await send_and_read(server.port, raw)
            await wait_for(lambda: server.connection_count == 0)

        tracemalloc.start()
        try:
            await round_of_cases()
            before = held(tracemalloc.take_snapshot())
            for _ in range(3):
                await round_of_cases()
            after = held(tracemalloc.take_snapshot())
        finally:
            tracemalloc.stop()
        assert after - before < 64 * 1024, (before, after)
        await assert_unharmed(server)


async def test_slowloris_headers_are_cut_off() -> None:
    """A head sent one byte at a time is answered 408 once ``request_timeout`` has passed
    since its first byte, however steadily the bytes keep coming."""
    async with running_server(make_config(request_timeout=1.0)) as server:
        conn = await RawConnection.open(server.port)
        loop = asyncio.get_running_loop()
        started = loop.time()
        trickle = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 1000
        answer = b""
        for byte in trickle:
            try:
                await conn.send(bytes([byte]))
            except ConnectionError:
                break
            with contextlib.suppress(asyncio.TimeoutError):
                answer += await asyncio.wait_for(conn.reader.read(1024), 0.1)
            if answer:
                break
        answer += await conn.read_until_closed()
        elapsed = loop.time() - started
        assert status_and_body(answer) == (408, b"request timeout\n")
        assert 1.0 <= elapsed < scaled(3), elapsed
        await conn.close()
        await assert_unharmed(server)


@contextlib.contextmanager
def open_files_raised() -> object:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        yield hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def open_silent(port: int, count: int, sources: list[str]) -> list[RawConnection]:
    conns = []
    for i in range(count):
        conns.append(await RawConnection.open(port, source=sources[i % len(sources)]))
    return conns


async def test_thousands_of_silent_connections_from_one_address() -> None:
    """With the default limits, one address cannot hold more than its share: the rest
    are closed at once, and everyone else is still served."""
    with open_files_raised():
        config = make_config(request_timeout=2.0, **DIRECT_CLIENTS)
        async with running_server(config) as server:
            conns = []
            try:
                conns = await open_silent(server.port, 1000, ["127.0.0.2"])
                limit = server.config.max_connections_per_address
                await wait_for(lambda: server.connection_count <= limit)
                answer = await send_and_read(server.port, get("/healthz"))  # from 127.0.0.1
                assert status_and_body(answer) == (200, b"ok\n")
                # The held ones are cut off by the request timeout.
                await wait_for(lambda: server.connection_count == 0, timeout=10)
                assert server.hub.metrics.rejected["limit"] >= 1000 - limit
            finally:
                for conn in conns:
                    await conn.close()


async def test_thousands_of_silent_connections_without_limits_time_out() -> None:
    """With the per-address limits off, silent connections cost a request timeout each
    and no more: the server keeps serving and closes every one of them."""
    with open_files_raised():
        config = make_config(request_timeout=3.0, **NO_CLIENT_LIMITS)
        async with running_server(config) as server:
            sources = [f"127.0.0.{i}" for i in range(2, 12)]
            conns = []
            try:
                conns = await open_silent(server.port, 3000, sources)
                answer = await send_and_read(server.port, get("/healthz"))
                assert status_and_body(answer) == (200, b"ok\n")
                for conn in conns:
                    assert await conn.read_until_closed(timeout=10) == b""
                await wait_for(lambda: server.connection_count == 0)
            finally:
                for conn in conns:
                    await conn.close()


async def test_a_stream_client_that_keeps_talking_is_cut_off() -> None:
    async with running_server() as server:
        conn, _ = await raw_stream(server.port, "/events?topic=t")
        await wait_for(lambda: server.hub.subscriber_count == 1)
        with contextlib.suppress(ConnectionError):
            for _ in range(10):
                await conn.send(b"x" * 4096)
        await wait_for(lambda: server.hub.subscriber_count == 0)
        assert server.hub.metrics.disconnects["limit"] == 1
        await conn.close()


async def test_a_body_of_many_chunks_is_published_whole_across_turns() -> None:
    """A raw-body publish in 600 chunks of 20 bytes, read over several loop iterations,
    and an NDJSON batch of 2 000 one-line chunks: both published whole."""
    async with running_server() as server:
        pieces = [b"%020d" % n for n in range(600)]
        lines = [b'{"topic":"t","data":"%d"}\n' % n for n in range(2000)]
        reader = asyncio.create_task(collect(f"{server.url}/events?topic=t", 2001))
        await wait_for(lambda: server.hub.subscriber_count == 1)
        for target, extra, chunks in (
            ("/publish?topic=t", "", pieces),
            ("/publish", "\nContent-Type: application/x-ndjson", lines),
        ):
            framed = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
            head = f"POST {target} HTTP/1.1\nHost: t\nTransfer-Encoding: chunked\n"
            head += f"Authorization: Bearer {TEST_KEY}{extra}\nConnection: close"
            status, body = status_and_body(await send_and_read(server.port, request(head, framed)))
            assert status == 200, body
        events = await reader
        assert events[0].data == b"".join(pieces).decode()
        assert [e.data for e in events[1:]] == [str(n) for n in range(2000)]
