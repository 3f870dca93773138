"""Reading plain requests without h11's connection (``rawsse.h1.plainread``) changes
nothing a client can see: the same bytes, cut anywhere, mutated, pipelined, give the
same requests, the same refusals, the same answers and the same endings as an exchange
that hands everything to ``h11.Connection``."""

from __future__ import annotations

import itertools
from typing import Any

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rawsse.errors import RequestError
from rawsse.h1 import plainread
from rawsse.h1.exchange import CLIENT_CLOSED, BodyStart, Ending, Exchange, Request
from tests.h1.test_fuzz import SEEDS, mutated

TEXT = (b"content-type", b"text/plain; charset=utf-8")

MORE_SEEDS = [
    b"POST /publish?topic=a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
    b"POST /publish?topic=b HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nbye",
    b"POST /publish?topic=a HTTP/1.1\r\nHost: t\r\nConnection: keep-alive\r\n"
    b"Content-Length: 2\r\n\r\nhi",
    b"POST /publish?topic=a HTTP/1.1\r\nHost: t\r\nConnection: keep-alive\r\n"
    b"Connection: close\r\nContent-Length: 2\r\n\r\nhi",
    b"POST /publish?topic=a HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi",
    b"POST /publish?topic=a HTTP/1.1\nHost: t\nContent-Length: 2\n\nhi",
    b"POST /publish?topic=a HTTP/1.1\r\nHost: t\r\nX-Folded: a\r\n b\r\nContent-Length: 1\r\n\r\nz",
    b"POST /publish?topic=a HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi",
    b"POST /publish?topic=a HTTP/1.1\r\nHost: t\r\nExpect: nothing\r\nContent-Length: 2\r\n\r\nhi",
    b"GET /events HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"CONNECT t:80 HTTP/1.1\r\nHost: t\r\n\r\n",
    b"POST /publish HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-ndjson\r\n"
    b'Content-Length: 30\r\n\r\n{"topic":"a","data":"x"}\n\n\n\n\n\n',
    b"POST /publish HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-ndjson\r\n"
    b'Transfer-Encoding: chunked\r\n\r\n18\r\n{"topic":"a","data":"x"}\r\n0\r\n\r\n',
    b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
    # A body over the limit (64 here), refused on its declared length.
    b"POST /publish?topic=a HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n" + b"x" * 100,
    # Heads over the limit (512 here): refused whole, and while still arriving.
    b"POST /publish?topic=a HTTP/1.1\r\nHost: t\r\nX-Pad: %s\r\nContent-Length: 1\r\n\r\nz"
    % (b"p" * 480),
    b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Pad: %s\r\n\r\n" % (b"p" * 600),
]


class SeeingExchange(Exchange):
    """An exchange that logs every head it looks at, to show none is seen twice."""

    __slots__ = ("log",)

    def __init__(self, log: list[Any]) -> None:
        super().__init__(
            max_header_size=512,
            max_body_size=64,
            streams_body=lambda request: request.header(b"content-type") == b"application/x-ndjson",
            max_streamed_size=128,
        )
        self.log = log

    def _on_head(self, head: h11.Request) -> None:
        self.log.append(("head", head.method, head.target))
        super()._on_head(head)


def answer(exchange: Exchange, log: list[Any], status: int, close: bool) -> bool:
    """Answer the request (or refusal) at hand; whether the connection stays open."""
    body = b"answer %d\n" % status
    data, ending = exchange.answer(
        status, [TEXT, (b"content-length", b"%d" % len(body))], body, close=close
    )
    log.append(("answer", data, ending))
    return bool(data) and ending is Ending.KEEP_ALIVE


def pump(exchange: Exchange, log: list[Any], streamed: list[bytes]) -> bool:
    """Read and answer every request there is; whether the connection stays open."""
    while True:
        try:
            request = exchange.next_request()
        except RequestError as exc:
            log.append(("refused", exc.status, exc.reason))
            return answer(exchange, log, exc.status, exc.close)
        if output := exchange.take_output():
            log.append(("output", output))
        if request is None:
            log.append(("wait", exchange.idle, exchange.between_requests))
            return True
        if request is CLIENT_CLOSED:
            log.append("closed")
            return False
        if isinstance(request, BodyStart):
            log.append(("body start", request.request.target))
            exchange.attach(streamed.append)
            continue
        assert isinstance(request, Request)
        log.append(("request", request.method, request.target, request.headers, request.body))
        if request.target.startswith(b"/events"):
            head, chunked = exchange.stream_head([TEXT])
            log.append(("stream", head, chunked, exchange.http_version))
            return False
        # Answers vary with the request: kept alive, closed, refused without a length.
        if b"close" in request.target:
            return answer(exchange, log, 200, True)
        if request.method == b"OPTIONS":
            data, ending = exchange.answer(204, [], b"", close=False)
            log.append(("answer", data, ending))
            if ending is not Ending.KEEP_ALIVE:
                return False
            continue
        status = 404 if request.body == b"bye" or request.method == b"CONNECT" else 200
        if not answer(exchange, log, status, False):
            return False


def run(pieces: list[bytes], eof: bool, timeout: bool, *, plain: bool) -> list[Any]:
    log: list[Any] = []
    streamed: list[bytes] = []
    saved = plainread.AVAILABLE
    plainread.AVAILABLE = plain
    try:
        exchange = SeeingExchange(log)
    finally:
        plainread.AVAILABLE = saved
    for piece in pieces:
        exchange.receive(piece)
        if not pump(exchange, log, streamed):
            return [*log, ("streamed", streamed)]
    if eof:
        exchange.receive(b"")
        pump(exchange, log, streamed)
    elif timeout and not exchange.idle:
        log.append(("pending", exchange.pending))
        answer(exchange, log, 408, True)  # what the request timeout answers
    return [*log, ("streamed", streamed)]


@pytest.mark.skipif(not plainread.AVAILABLE, reason="h11's parser is not where it was")
def test_reading_without_h11s_connection_changes_nothing() -> None:
    seeds = st.sampled_from([*SEEDS, *MORE_SEEDS])

    @settings(
        max_examples=600,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        data=mutated() | st.lists(seeds, min_size=1, max_size=4).map(b"".join),
        cuts=st.lists(st.integers(0, 400), max_size=6),
        eof=st.booleans(),
        timeout=st.booleans(),
    )
    def compare(data: bytes, cuts: list[int], eof: bool, timeout: bool) -> None:
        bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
        pieces = [data[a:b] for a, b in itertools.pairwise(bounds)]
        assert run(pieces, eof, timeout, plain=True) == run(pieces, eof, timeout, plain=False)

    compare()


@pytest.mark.skipif(not plainread.AVAILABLE, reason="h11's parser is not where it was")
def test_the_seeds_are_read_both_ways_alike_byte_by_byte() -> None:
    """Every seed, pipelined with the next, fed one byte at a time: the slowest client
    crosses every boundary between head, body and the next request."""
    corpus = [*SEEDS, *MORE_SEEDS]
    for first, second in itertools.pairwise([*corpus, corpus[0]]):
        data = first + second
        pieces = [data[i : i + 1] for i in range(len(data))]
        for eof, timeout in [(True, False), (False, True)]:
            plain = run(pieces, eof, timeout, plain=True)
            assert plain == run(pieces, eof, timeout, plain=False)
            assert any(entry[0] == "request" for entry in plain if isinstance(entry, tuple)) or any(
                entry[0] == "refused" for entry in plain if isinstance(entry, tuple)
            ), plain


def test_a_plain_publish_is_read_without_h11s_connection() -> None:
    """The point of it all: a publish kept alive never builds an ``h11.Connection``."""
    exchange = Exchange(max_header_size=8192, max_body_size=1024)
    request = b"POST /publish?topic=t HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
    for _ in range(3):
        exchange.receive(request)
        got = exchange.next_request()
        assert isinstance(got, Request) and got.body == b"hi"
        _data, ending = exchange.answer(
            200, [TEXT, (b"content-length", b"3")], b"ok\n", close=False
        )
        assert ending is Ending.KEEP_ALIVE
        assert exchange._h11 is None if plainread.AVAILABLE else exchange._h11 is not None
