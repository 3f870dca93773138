"""Fuzzing the connection handler: random and mutated requests, cut at random points,
fed to ``HttpConnection`` over a recording transport. Whatever arrives, the handler must
answer with valid HTTP responses (read back by h11 in client mode) or close, and never
raise: an exception in a callback would be logged by ``_crash``, which fails the test.

Bounded: a fixed number of examples per run, no deadline per example.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

import h11
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rawsse.config import Config
from rawsse.h1.exchange import Exchange
from rawsse.hub.hub import Hub
from rawsse.policy.auth import mint_token
from rawsse.server.connection import HttpConnection, ServerState
from tests.conftest import TEST_KEY
from tests.support.fakes import RecordingTransport

SECRET = "a-test-secret-that-is-long-enough-for-hs256"
TOKEN = mint_token(SECRET, publish=["*"], subscribe=["a", "b/*"], ttl=None)

SEEDS = [
    b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /events?topic=a&topic=b/1 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n\r\n"
    % TOKEN.encode(),
    b"GET /events?topic=a HTTP/1.0\r\nCookie: rawsse_authorization=%s\r\n\r\n" % TOKEN.encode(),
    b"GET /events?topic=a HTTP/1.1\r\nHost: t\r\nLast-Event-ID: 00000000-1\r\n\r\n",
    b"HEAD /events?topic=a HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n\r\n"
    % TOKEN.encode(),
    b"POST /publish HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
    b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 14\r\n\r\n"
    b"topic=a&data=x" % TEST_KEY.encode(),
    b"POST /publish?topic=a&event=e&id=i1 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" % TEST_KEY.encode(),
    b"POST /publish HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\nContent-Type: "
    b'application/json\r\nContent-Length: 27\r\n\r\n{"topic": "a", "data": "j"}' % TOKEN.encode(),
    b"OPTIONS /events HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example\r\n"
    b"Access-Control-Request-Method: GET\r\n\r\n",
    b"POST /publish HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n",
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed (or several, pipelined) with random edits, or plain random bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))
    data = bytearray(b"".join(draw(st.lists(st.sampled_from(SEEDS), min_size=1, max_size=3))))
    for _ in range(draw(st.integers(0, 6))):
        action = draw(st.sampled_from(["flip", "insert", "delete", "dup", "cut"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if action == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif action == "insert":
            piece = draw(
                st.sampled_from([b"\r\n", b"\n", b"\0", b":", b" ", b"%", b"\xff", b"0\r\n", b","])
                | st.binary(max_size=8)
            )
            data[at:at] = piece
        elif action == "delete":
            del data[at : at + draw(st.integers(1, 10))]
        elif action == "dup":
            end = min(len(data), at + draw(st.integers(1, 40)))
            data[at:at] = data[at:end]
        elif action == "cut":
            del data[at:]
    return bytes(data)


class RecordingExchange(Exchange):
    """Records the method of every request head h11 parsed, so the answers can be framed."""

    __slots__ = ("methods",)

    def __init__(self, methods: list[bytes], config: Config) -> None:
        super().__init__(
            max_header_size=config.max_header_size, max_body_size=config.max_event_size
        )
        self.methods = methods

    def _on_head(self, head: h11.Request) -> None:
        self.methods.append(head.method)
        super()._on_head(head)


class RecordingConnection(HttpConnection):
    """A connection whose exchange records the requests it parsed."""

    __slots__ = ("methods",)

    def __init__(self, server: ServerState) -> None:
        super().__init__(server)
        self.methods: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self.cycle is not None:
            self.cycle.exchange = RecordingExchange(self.methods, self._server.config)


def check_answers(output: bytes, methods: list[bytes]) -> None:
    """Every byte written is part of a valid HTTP/1.1 response to a request made."""
    if not output:
        return  # nothing answered (yet): allowed, the request may be incomplete
    client = h11.Connection(h11.CLIENT)
    client.receive_data(output)
    for method in methods:
        if client.our_state is not h11.IDLE:
            return  # the previous response never ended (a stream): all read
        client.send(h11.Request(method=method, target="/", headers=[("host", "t")]))
        client.send(h11.EndOfMessage())
        while True:
            event = client.next_event()  # raises RemoteProtocolError on invalid output
            if event is h11.NEED_DATA:
                return
            if isinstance(event, h11.Response):
                assert 100 <= event.status_code < 600
            if isinstance(event, h11.EndOfMessage):
                if client.their_state is h11.DONE and client.our_state is h11.DONE:
                    client.start_next_cycle()
                break
            if isinstance(event, h11.ConnectionClosed) or client.their_state is h11.MUST_CLOSE:
                break
    if not methods and output:
        # Nothing was parsed as a request: the only allowed answer is an error response.
        assert output.startswith(b"HTTP/1.1 4") or output.startswith(b"HTTP/1.1 5"), output


class Crashes(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_the_connection_handler_survives_anything() -> None:
    loop = asyncio.new_event_loop()
    config = Config(
        publish_key=TEST_KEY,
        jwt_secret=SECRET,
        subscribe_auth=True,
        cors_origins=("https://app.example",),
        max_event_size=4096,
        max_header_size=2048,
    )
    state: dict[str, Any] = {}
    crashes = Crashes()
    logging.getLogger("rawsse").addHandler(crashes)

    async def feed(pieces: list[bytes], eof: bool) -> None:
        server = state.setdefault("server", ServerState(config, Hub(config), None))
        connection = RecordingConnection(server)
        transport = RecordingTransport()
        connection.connection_made(transport)
        for piece in pieces:
            connection.data_received(piece)
        if eof:
            connection.eof_received()
        await asyncio.sleep(0)  # let a publish's flush run
        connection.connection_lost(None)
        check_answers(b"".join(transport.writes), connection.methods)
        assert server.hub.subscriber_count == 0 and not server.connections

    @settings(
        max_examples=400,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        derandomize=False,
    )
    @given(data=mutated(), cuts=st.lists(st.integers(0, 400), max_size=5), eof=st.booleans())
    def fuzz(data: bytes, cuts: list[int], eof: bool) -> None:
        bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
        pieces = [data[a:b] for a, b in itertools.pairwise(bounds)]
        crashes.records.clear()
        loop.run_until_complete(feed(pieces, eof))
        assert not crashes.records, logging.Formatter().format(crashes.records[0])

    try:
        fuzz()
    finally:
        logging.getLogger("rawsse").removeHandler(crashes)
        loop.close()
