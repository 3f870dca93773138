"""The ordinary HTTP surface over real sockets: routing, keep-alive, pipelining, HEAD,
limits, timeouts and every kind of bad input, each answered with the right status and
a short reason, leaving the server unharmed (checked by ``running_server`` on exit)."""

from __future__ import annotations

import logging
import re

import pytest

from tests.conftest import TEST_KEY, make_config, running_server
from tests.support.client import RawConnection, exchange, get, raw_stream
from tests.support.sse_parser import dechunk, parse

AUTH = f"Authorization: Bearer {TEST_KEY}"


def post(path: str, body: bytes, *headers: str) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: t", f"Content-Length: {len(body)}", *headers, "", ""]
    return "\r\n".join(head).encode() + body


async def test_keep_alive_and_pipelining_on_one_connection() -> None:
    async with running_server() as server:
        conn = await RawConnection.open(server.port)
        await conn.send(get("/healthz"))
        first = await conn.answer()
        await conn.send(get("/healthz"))
        second = await conn.answer()
        assert (first.status, first.body) == (second.status, second.body) == (200, b"ok\n")
        # Three requests in one write: three answers, in order.
        form = b"topic=t&data=x"
        await conn.send(
            get("/healthz")
            + post("/publish", form, AUTH, "Content-Type: application/x-www-form-urlencoded")
            + get("/nope")
        )
        answers = [
            await conn.answer(),
            await conn.answer(head_only_for=b"POST"),
            await conn.answer(),
        ]
        assert [a.status for a in answers] == [200, 200, 404]
        assert answers[1].body.decode().startswith(server.hub.backend.epoch + "-")
        await conn.close()


async def test_head_has_headers_and_no_body() -> None:
    async with running_server() as server:
        conn = await RawConnection.open(server.port)
        await conn.send(b"HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        answer = await conn.answer(head_only_for=b"HEAD")
        assert answer.status == 200 and answer.body == b""
        assert answer.headers["content-length"] == "3"
        await conn.send(b"HEAD /events?topic=a HTTP/1.1\r\nHost: t\r\n\r\n")
        answer = await conn.answer(head_only_for=b"HEAD")
        assert answer.status == 200 and answer.headers["content-type"].startswith(
            "text/event-stream"
        )
        assert server.hub.subscriber_count == 0
        await conn.send(get("/healthz"))  # still usable
        assert (await conn.answer()).status == 200
        await conn.close()


async def test_unknown_path_and_wrong_method() -> None:
    async with running_server() as server:
        answer = await exchange(server.port, get("/nowhere"))
        assert (answer.status, answer.body) == (404, b"not found\n")
        answer = await exchange(server.port, b"DELETE /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        assert answer.status == 405 and answer.headers["allow"] == "GET, HEAD"
        answer = await exchange(server.port, get("/publish"))
        assert answer.status == 405 and answer.headers["allow"] == "POST"
        answer = await exchange(server.port, post("/events?topic=a", b""), method=b"POST")
        assert answer.status == 405 and answer.headers["allow"] == "GET, HEAD"
        assert (await exchange(server.port, get("/"))).status == 404  # no demo page when embedded


async def test_demo_page_when_configured() -> None:
    page = b"<!doctype html><title>demo</title>"
    async with running_server(demo_page=page) as server:
        answer = await exchange(server.port, get("/"))
        assert answer.status == 200 and answer.body == page
        assert answer.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(
    ("raw", "status", "closes"),
    [
        # Framing errors found by h11: answered, then the connection is closed.
        (b"GARBAGE\r\n\r\n", 400, True),
        (b"GET / HTTP/1.1\r\n\r\n", 400, True),  # no Host
        (b"GET /healthz HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n", 400, True),
        (
            b"GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            400,
            True,
        ),
        (b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"x" * 20000 + b"\r\n\r\n", 431, True),
        (b"GET /healthz HTTP/9.9\r\nHost: t\r\n\r\n", 505, True),
        (b"GET /healthz?\xff HTTP/1.1\r\nHost: t\r\n\r\n", 400, True),  # raw non-ASCII target
        # Well-framed requests we refuse: the connection stays usable.
        (b"GET http://other/healthz HTTP/1.1\r\nHost: t\r\n\r\n", 400, False),
        (b"GET /events?topic=%FF HTTP/1.1\r\nHost: t\r\n\r\n", 400, False),
        (b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n", 400, False),
        (b"GET /events?topic= HTTP/1.1\r\nHost: t\r\n\r\n", 400, False),
        (b"GET /events?topic=a%0Ab HTTP/1.1\r\nHost: t\r\n\r\n", 400, False),
        (b"GET /events?topic=" + b"x" * 300 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 400, False),
        (b"GET /healthz?" + b"a=1&" * 3000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414, False),
    ],
)
async def test_malformed_requests_get_a_clear_error(raw: bytes, status: int, closes: bool) -> None:
    async with running_server() as server:
        conn = await RawConnection.open(server.port)
        await conn.send(raw)
        answer = await conn.answer()
        assert answer.status == status
        assert answer.body and len(answer.body) < 200
        if closes:
            assert answer.headers["connection"] == "close"
            assert await conn.read_until_closed() == b""
        else:
            await conn.send(get("/healthz"))
            assert (await conn.answer()).status == 200
        await conn.close()
        assert (await exchange(server.port, get("/healthz"))).status == 200
        assert server.hub.subscriber_count == 0


async def test_too_many_topics() -> None:
    async with running_server(make_config(max_topics=2)) as server:
        answer = await exchange(server.port, get("/events?topic=a&topic=b&topic=c"))
        assert answer.status == 400 and b"at most 2 topics" in answer.body


async def test_publish_needs_the_right_key() -> None:
    async with running_server() as server:
        form = b"topic=a&data=x"
        # RFC 6750: a bare challenge when no bearer credential came, invalid_token for a
        # wrong one.
        for headers, challenge in [
            ((), "Bearer"),
            (("Authorization: Bearer wrong",), 'Bearer error="invalid_token"'),
            (("Authorization: Basic dGVzdA==",), "Bearer"),
        ]:
            answer = await exchange(server.port, post("/publish", form, *headers), method=b"POST")
            assert answer.status == 401 and answer.headers["www-authenticate"] == challenge
        assert server.hub.metrics.events_published == 0


async def test_publish_is_off_without_a_configured_key() -> None:
    async with running_server(make_config(publish_key=None)) as server:
        answer = await exchange(
            server.port, post("/publish", b"topic=a&data=x", AUTH), method=b"POST"
        )
        assert answer.status == 403 and b"no publish key" in answer.body


@pytest.mark.parametrize(
    ("path", "body", "content_type", "status", "reason"),
    [
        ("/publish", b"data=x", "application/x-www-form-urlencoded", 400, b"topic"),
        (
            "/publish",
            b"topic=a&data=x&id=a%0Ab",
            "application/x-www-form-urlencoded",
            400,
            b"printable ASCII",
        ),
        # Ids that could not come back unchanged as a Last-Event-ID header.
        *[
            (
                f"/publish?topic=a&id={quoted}",
                b"x",
                "text/plain",
                400,
                b"printable ASCII",
            )
            for quoted in ("%20lead", "trail%20", "a%0Bb", "a%0Cb", "a%7Fb", "a%09b", "caf%C3%A9")
        ],
        ("/publish?topic=a&id=" + "i" * 257, b"x", "text/plain", 400, b"at most 256"),
        (
            "/publish",
            b"topic=a&data=x&event=a%00",
            "application/x-www-form-urlencoded",
            400,
            b"CR, LF or NUL",
        ),
        (
            "/publish",
            b"topic=a&data=x&retry=-1",
            "application/x-www-form-urlencoded",
            400,
            b"retry",
        ),
        (
            "/publish",
            b"topic=a&data=x&retry=soon",
            "application/x-www-form-urlencoded",
            400,
            b"retry",
        ),
        ("/publish", b"topic=a&data=%FF", "application/x-www-form-urlencoded", 400, b"UTF-8"),
        (
            "/publish",
            b"topic=a&data=x&data=y",
            "application/x-www-form-urlencoded",
            400,
            b"more than once",
        ),
        ("/publish", b"{not json", "application/json", 400, b"invalid JSON"),
        ("/publish", b"[1, 2]", "application/json", 400, b"object"),
        ("/publish", b'{"topic": 5, "data": "x"}', "application/json", 400, b"topic"),
        (
            "/publish",
            b'{"topic": "a", "data": "x", "id": "0000beef-1"}',
            "application/json",
            400,
            b"reserved",
        ),
        ("/publish?topic=a", b"\xff\xfe", "text/plain", 400, b"UTF-8"),
        ("/publish?topic=a&id=x%0D", b"x", "text/plain", 400, b"printable ASCII"),
        ("/publish", b"x", "text/plain", 415, b"content type"),
    ],
)
async def test_bad_publishes(
    path: str, body: bytes, content_type: str, status: int, reason: bytes
) -> None:
    async with running_server() as server:
        raw = post(path, body, AUTH, f"Content-Type: {content_type}")
        answer = await exchange(server.port, raw, method=b"POST")
        assert answer.status == status
        assert reason in answer.body
        assert server.hub.metrics.events_published == 0


async def test_a_duplicate_publisher_id_is_refused_with_409() -> None:
    """409, not 400: a client retrying with the id it chose learns that its first try
    was published (and nothing was published twice)."""
    async with running_server() as server:
        raw = post("/publish?topic=a&id=order-7", b"x", AUTH)
        assert (await exchange(server.port, raw, method=b"POST")).body == b"order-7\n"
        answer = await exchange(server.port, raw, method=b"POST")
        assert answer.status == 409 and b"already" in answer.body
        assert server.hub.metrics.events_published == 1


async def test_bodies_over_the_limit_get_413() -> None:
    async with running_server(make_config(max_event_size=1000)) as server:
        big = b"topic=a&data=" + b"x" * 1000
        # Declared too large: answered before the body is read, then closed.
        conn = await RawConnection.open(server.port)
        await conn.send(post("/publish", big, AUTH)[: -len(big)])
        answer = await conn.answer(head_only_for=b"POST")
        assert answer.status == 413
        assert await conn.read_until_closed() == b""
        await conn.close()
        # Chunked, found too large while reading.
        chunked = (
            b"POST /publish HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
            + AUTH.encode()
            + b"\r\n\r\n"
            + b"%x\r\n%s\r\n" % (len(big), big)
            + b"0\r\n\r\n"
        )
        assert (await exchange(server.port, chunked, method=b"POST")).status == 413
        # Small body, but the encoded event is over the limit (data lines add bytes).
        lines = b"topic=a&data=" + b"%0A" * 600
        answer = await exchange(server.port, post("/publish", lines, AUTH), method=b"POST")
        assert answer.status == 413
        assert server.hub.metrics.events_published == 0


async def test_slow_headers_are_cut_off_with_408() -> None:
    async with running_server(make_config(request_timeout=0.3)) as server:
        conn = await RawConnection.open(server.port)
        await conn.send(b"GET /healthz HTTP/1.1\r\nHo")
        answer = await conn.answer()
        assert answer.status == 408
        assert await conn.read_until_closed() == b""
        await conn.close()
        # A connection that sends nothing at all is closed silently after the timeout.
        silent = await RawConnection.open(server.port)
        assert await silent.read_until_closed() == b""
        await silent.close()


async def test_idle_keep_alive_connections_are_closed() -> None:
    async with running_server(make_config(keepalive_timeout=0.3)) as server:
        conn = await RawConnection.open(server.port)
        await conn.send(get("/healthz"))
        assert (await conn.answer()).status == 200
        assert await conn.read_until_closed() == b""
        await conn.close()


async def test_http_1_0_and_connection_close_are_honoured() -> None:
    async with running_server() as server:
        conn = await RawConnection.open(server.port)
        await conn.send(b"GET /healthz HTTP/1.0\r\n\r\n")
        raw = await conn.read_until_closed()
        assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and raw.endswith(b"\r\n\r\nok\n")
        await conn.close()
        conn = await RawConnection.open(server.port)
        await conn.send(get("/healthz", "Connection: close"))
        assert (await conn.answer()).status == 200
        assert await conn.read_until_closed() == b""
        await conn.close()
        # Every Connection header counts, not only the first, as h11 reads them: a plain
        # request is answered without h11's connection, whose state caught it before.
        conn = await RawConnection.open(server.port)
        await conn.send(get("/healthz", "Connection: keep-alive", "Connection: close"))
        answer = await conn.answer()
        assert answer.status == 200 and answer.headers["connection"] == "close"
        assert await conn.read_until_closed() == b""
        await conn.close()


async def test_metrics_exposition() -> None:
    async with running_server() as server:
        await exchange(server.port, get("/nope"))
        answer = await exchange(server.port, get("/metrics"))
        assert answer.status == 200
        assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert b"rawsse_connected_clients 0\n" in answer.body
        assert b'rawsse_requests_total{endpoint="other",status="404"} 1\n' in answer.body


async def test_a_blank_id_or_event_means_none() -> None:
    """A blank ``id`` would reset every browser's last event id (and a second one would
    be refused as a duplicate): in every form it means "no id", and the hub assigns
    one. A blank ``event`` is the default type."""
    form = "Content-Type: application/x-www-form-urlencoded"
    async with running_server() as server:
        epoch = server.hub.backend.epoch
        conn = await RawConnection.open(server.port)
        ids = []
        for raw in [
            post("/publish", b"topic=t&data=a&id=&event=", AUTH, form),
            post("/publish", b"topic=t&data=b&id=", AUTH, form),
            post("/publish?topic=t&id=&event=", b"c", AUTH),
            post(
                "/publish",
                b'{"topic": "t", "data": "d", "id": "", "event": ""}',
                AUTH,
                "Content-Type: application/json",
            ),
        ]:
            await conn.send(raw)
            answer = await conn.answer(head_only_for=b"POST")
            assert answer.status == 200, answer.body
            ids.append(answer.body.decode().strip())
        await conn.close()
        assert ids == [f"{epoch}-{seq}" for seq in (1, 2, 3, 4)]

        stream, body = await raw_stream(server.port, f"/events?topic=t&lastEventID={epoch}-0")
        while b"data: d\n\n" not in body:
            body += await stream.read_some()
        await stream.close()
        events = parse(dechunk(body.partition(b"\r\n\r\n")[2])[0].decode()).events
        assert [(e.type, e.data, e.last_event_id) for e in events] == [
            ("message", data, event_id) for data, event_id in zip("abcd", ids, strict=True)
        ]
        assert b"id: \n" not in body and b"event: \n" not in body


async def test_access_log_lines_of_answers_and_streams_share_one_shape(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``client "METHOD target HTTP/version" status``, and `` stream`` after a stream's:
    one pattern reads every request line, whatever was asked."""
    caplog.set_level(logging.INFO, logger="rawsse.access")
    async with running_server() as server:
        await exchange(server.port, get("/healthz"))
        body = b"topic=t&data=x"
        publish = (
            b"POST /publish HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s"
        ) % (TEST_KEY.encode(), len(body), body)
        assert (await exchange(server.port, publish, method=b"POST")).status == 200
        old = b"GET /nowhere HTTP/1.0\r\n\r\n"
        assert (await exchange(server.port, old)).status == 404
        conn, _ = await raw_stream(server.port, "/events?topic=t")
        await conn.close()
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.name == "rawsse.access" and "stream closed" not in r.getMessage()
    ]
    shape = re.compile(r'^\S+ "[A-Z]+ \S+ HTTP/1\.[01]" \d{3}( stream)?$')
    assert [line for line in lines if not shape.match(line)] == []
    assert [line.split('"')[1] for line in lines] == [
        "GET /healthz HTTP/1.1",
        "POST /publish HTTP/1.1",
        "GET /nowhere HTTP/1.0",
        "GET /events?topic=t HTTP/1.1",
    ]
