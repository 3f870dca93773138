"""The HTTP exchange, sans I/O: answers written without h11's send cycle are the very
bytes h11 writes, and the requests after them are read as before."""

from __future__ import annotations

import h11
import pytest

from rawsse.errors import RequestError
from rawsse.h1.exchange import (
    BODY_PIECES_PER_TURN,
    CLIENT_CLOSED,
    MORE_LATER,
    Ending,
    Exchange,
    Request,
)

TEXT = (b"content-type", b"text/plain; charset=utf-8")

ANSWERS = [
    (200, [TEXT, (b"content-length", b"6")], b"1-234\n"),
    (404, [TEXT, (b"content-length", b"10")], b"not found\n"),
    (429, [(b"retry-after", b"3"), TEXT, (b"content-length", b"19")], b"too many publishes\n"),
    (
        200,
        [
            (b"access-control-allow-origin", b"https://app.example"),
            (b"vary", b"Origin"),
            TEXT,
            (b"content-length", b"3"),
        ],
        b"ok\n",
    ),
]


def publish(body: bytes, *extra: bytes) -> bytes:
    head = [b"POST /publish?topic=t HTTP/1.1", b"Host: x", b"Content-Length: %d" % len(body)]
    return b"\r\n".join([*head, *extra]) + b"\r\n\r\n" + body


def what_h11_writes(
    request: bytes, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> bytes:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(request)
    while not isinstance(conn.next_event(), h11.EndOfMessage):
        pass
    reason = {200: b"OK", 404: b"Not Found", 429: b"Too Many Requests"}[status]
    parts = [
        conn.send(h11.Response(status_code=status, headers=headers, reason=reason)),
        conn.send(h11.Data(data=body)),
        conn.send(h11.EndOfMessage()),
    ]
    return b"".join(p for p in parts if p)


def next_request(exchange: Exchange) -> Request:
    request = exchange.next_request()
    assert isinstance(request, Request)
    return request


@pytest.mark.parametrize(("status", "headers", "body"), ANSWERS)
def test_a_kept_alive_answer_is_byte_for_byte_what_h11_writes(
    status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    request = publish(b"hello")
    exchange = Exchange(max_header_size=8192, max_body_size=1024)
    # Twice on one connection: the second answer comes from the cached head.
    for _ in range(2):
        exchange.receive(request)
        assert next_request(exchange).body == b"hello"
        data, ending = exchange.answer(status, headers, body, close=False)
        assert ending is Ending.KEEP_ALIVE
        assert data == what_h11_writes(request, status, headers, body)
        assert exchange.idle


def test_requests_after_a_direct_answer_are_read_whole() -> None:
    exchange = Exchange(max_header_size=8192, max_body_size=1024)
    # Three pipelined requests in one read, the third cut in the middle of its body.
    third = publish(b"third!")
    exchange.receive(publish(b"first") + publish(b"second") + third[:-3])
    bodies = []
    for _ in range(2):
        request = next_request(exchange)
        bodies.append(request.body)
        exchange.answer(200, [TEXT, (b"content-length", b"3")], b"ok\n", close=False)
    assert exchange.next_request() is None  # the rest of the third is still to come
    assert not exchange.idle
    exchange.receive(third[-3:])
    bodies.append(next_request(exchange).body)
    assert bodies == [b"first", b"second", b"third!"]


def test_a_client_that_closes_after_its_request_is_seen_closing() -> None:
    exchange = Exchange(max_header_size=8192, max_body_size=1024)
    exchange.receive(publish(b"last"))
    exchange.receive(b"")
    assert next_request(exchange).body == b"last"
    _data, ending = exchange.answer(200, [TEXT, (b"content-length", b"3")], b"ok\n", close=False)
    assert ending is Ending.KEEP_ALIVE
    assert exchange.next_request() is CLIENT_CLOSED


@pytest.mark.parametrize(
    ("request_bytes", "closing"),
    [
        (publish(b"x", b"Connection: close"), b"Connection: close\r\n"),
        (b"POST /publish?topic=t HTTP/1.0\r\nContent-Length: 1\r\n\r\nx", b""),
    ],
    ids=["connection-close", "http-1.0"],
)
def test_answers_that_end_the_connection_still_go_through_h11(
    request_bytes: bytes, closing: bytes
) -> None:
    exchange = Exchange(max_header_size=8192, max_body_size=1024)
    exchange.receive(request_bytes)
    next_request(exchange)
    data, ending = exchange.answer(200, [TEXT, (b"content-length", b"3")], b"ok\n", close=False)
    assert ending is not Ending.KEEP_ALIVE
    assert data.endswith(closing + b"\r\nok\n")


def test_a_head_request_gets_no_body() -> None:
    exchange = Exchange(max_header_size=8192, max_body_size=1024)
    exchange.receive(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    next_request(exchange)
    data, ending = exchange.answer(200, [TEXT, (b"content-length", b"3")], b"ok\n", close=False)
    assert ending is Ending.KEEP_ALIVE
    assert data.endswith(b"content-length: 3\r\n\r\n")


def chunked(*chunks: bytes, target: bytes = b"/publish?topic=t") -> bytes:
    head = b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" % target
    framed = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)
    return head + framed + b"0\r\n\r\n"


def test_a_body_of_many_chunks_is_read_a_share_per_call() -> None:
    """Each chunk costs h11 the same whatever its size: a body of many is read
    ``BODY_PIECES_PER_TURN`` chunks a call (the connection's turn), then whole."""
    exchange = Exchange(max_header_size=16384, max_body_size=1 << 20)
    pieces = [b"%020d" % n for n in range(BODY_PIECES_PER_TURN * 2 + 10)]
    exchange.receive(chunked(*pieces))
    assert exchange.next_request() is MORE_LATER
    assert exchange.next_request() is MORE_LATER
    request = next_request(exchange)
    assert request.body == b"".join(pieces) and type(request.body) is bytes


def test_a_body_of_tiny_chunks_is_refused() -> None:
    """2-byte chunks cost the loop seconds a mebibyte: refused once the first 1024
    average under 16 bytes, before the body is read on."""
    exchange = Exchange(max_header_size=16384, max_body_size=1 << 20)
    exchange.receive(chunked(*[b"ab"] * 5000))
    with pytest.raises(RequestError) as raised:
        while exchange.next_request() is MORE_LATER:
            pass
    assert (raised.value.status, raised.value.close) == (400, True)
    assert "chunks under 16 bytes" in raised.value.reason


def test_small_but_not_tiny_chunks_and_slow_bodies_are_read() -> None:
    """Chunks of one short NDJSON line each, and a plain body that arrives a few
    hundred bytes a read, are read whole, in one buffer that each read extends."""
    exchange = Exchange(max_header_size=16384, max_body_size=1 << 20)
    line = b'{"topic":"a","data":"b"}\n'
    exchange.receive(chunked(*[line] * 3000))
    while (request := exchange.next_request()) is MORE_LATER:
        pass
    assert isinstance(request, Request) and request.body == line * 3000
    plain = Exchange(max_header_size=16384, max_body_size=1 << 20)
    body = bytes(range(256)) * 1024
    raw = publish(body)
    start = raw.index(b"\r\n\r\n") + 4
    plain.receive(raw[:start])
    assert plain.next_request() is None
    buffers = set()
    for at in range(start, len(raw), 500):
        plain.receive(raw[at : at + 500])
        buffers.add(id(plain._reader.raw))
        if at + 500 < len(raw):
            assert plain.next_request() is None
    assert len(buffers) == 1  # extended in place, not copied at each read
    request = next_request(plain)
    assert request.body == body and type(request.body) is bytes
