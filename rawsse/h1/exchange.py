"""One connection's HTTP/1.1 request cycles, sans I/O: bytes in, requests out, answers
and the event-stream head out as bytes.

h11 owns the handshake: it parses every request, enforces HTTP/1.1's framing rules and
writes every response head, including that of an event stream, so that keep-alive,
pipelining, HEAD, ``Expect: 100-continue``, HTTP/1.0 and malformed input follow RFC 9112.

The common request and its answer skip h11's connection state machine, which costs
more than all the rest of a publish (see :mod:`rawsse.h1.plainread`): a plain request
(HTTP/1.1 kept alive, a ``Content-Length`` body or none, nothing to negotiate) is read
by h11's own request parser, and its answer (with a length) is written as the bytes
h11 would write (``Exchange._answer_directly``). Anything else, and any answer other
than that one, goes through an ``h11.Connection`` given the same bytes, so it behaves
exactly as h11 does.

On top of h11 the exchange refuses what h11 lets through but a server facing the
internet should not: unsupported versions, heads over the size limit (also when they
arrive in one read), both Content-Length and Transfer-Encoding, Transfer-Encoding in
HTTP/1.0 (:mod:`rawsse.h1.request`), bodies over the limit and chunks too small
(:mod:`rawsse.h1.body`). Errors from h11 are caught here and nowhere else; all come out
as :class:`~rawsse.errors.RequestError` with the status to answer and ``close`` set.

Nothing here imports asyncio or touches a socket: tests drive it with bytes alone.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from http import HTTPStatus
from typing import cast

import h11

from rawsse.h1 import plainread
from rawsse.h1.body import CHUNKS_BEFORE_AVERAGE, MIN_AVERAGE_CHUNK, Body
from rawsse.h1.plainread import NOT_PLAIN, PlainReader, Stage
from rawsse.h1.request import Request, check_head, fatal, request_of

__all__ = [
    "CHUNKS_BEFORE_AVERAGE",
    "CLIENT_CLOSED",
    "MIN_AVERAGE_CHUNK",
    "MORE_LATER",
    "BodyStart",
    "Ending",
    "Exchange",
    "Request",
    "Stage",
]


class BodyStart:
    """What :meth:`Exchange.next_request` returns for the head of a request whose body
    is handed over as it arrives (see ``streams_body``)."""

    __slots__ = ("request",)

    def __init__(self, request: Request) -> None:
        self.request = request


class _ClientClosed:
    """What :meth:`Exchange.next_request` returns once the client has closed."""

    __slots__ = ()


CLIENT_CLOSED = _ClientClosed()


class _MoreLater:
    """What :meth:`Exchange.next_request` returns when it has done its share of work
    for this loop iteration and more of the body is already buffered."""

    __slots__ = ()


MORE_LATER = _MoreLater()

#: Pieces of a body (h11 ``Data`` events: a chunk, or what one read brought) read in one
#: call of :meth:`Exchange.next_request`. Each costs h11 about 14 us whatever its size,
#: so a body of 2-byte chunks took seconds of one loop iteration (1 MiB: 6.6-9.5 s, and
#: every other client waited as long); 256 is about 3.5 ms, then the next connection's
#: turn. A body in ordinary chunks (kilobytes) never reaches it within one read.
BODY_PIECES_PER_TURN = 256

# Module names for the stages: the hot path compares with ``is`` against a global.
_HEAD = Stage.HEAD
_ANSWERING = Stage.ANSWERING


class Ending(enum.Enum):
    """What the connection does once an answer is written."""

    KEEP_ALIVE = "keep-alive"  #: ready for the next request
    CLOSE = "close"  #: close our side
    LINGER = "linger"  #: close our side but read (and discard) what the client still sends


class Exchange:
    """The h11 side of one connection, until it answers or becomes an event stream.

    Args:
        max_header_size: the largest request head (431 over it).
        max_body_size: the largest request body (413 over it, checked on the declared
            length before reading and while reading).
        streams_body: which requests have their body handed over as it arrives (batch
            publishes) rather than gathered.
        max_streamed_size: the largest such body.
    """

    __slots__ = ("_h11", "_reader", "_replayed", "_plain", "_head", "_request", "_keep_alive",
                 "_length", "_body", "_max_header", "_output", "_streams_body")  # fmt: skip

    def __init__(
        self,
        *,
        max_header_size: int,
        max_body_size: int,
        streams_body: Callable[[Request], bool] | None = None,
        max_streamed_size: int = 0,
    ) -> None:
        self._max_header = max_header_size
        # ``None`` while requests are read without h11's connection, by ``_reader``.
        self._h11: h11.Connection | None = None if plainread.AVAILABLE else self._new_h11()
        self._reader = PlainReader()
        # The h11 connection given the bytes of a head already seen (``_on_head``)
        # without it: it reads that head again, and it is not seen twice.
        self._replayed = False
        # The request read last is plain: see :func:`rawsse.h1.plainread.is_plain`.
        self._plain = False
        self._head: h11.Request | None = None
        # The request being read, made once from its head (its body set when complete).
        self._request: Request | None = None
        # Whether the request lets the connection stay open (HTTP/1.1, no "close").
        self._keep_alive = False
        self._length = 0  # the body's declared length
        self._body = Body(max_body_size, max_streamed_size)
        self._output = b""
        self._streams_body = streams_body

    def _new_h11(self) -> h11.Connection:
        return h11.Connection(h11.SERVER, max_incomplete_event_size=self._max_header)

    def receive(self, data: bytes) -> None:
        """Feed bytes from the client (``b""`` for end of input)."""
        if self._h11 is not None:
            self._h11.receive_data(data)
        else:
            self._reader.receive(data)

    @property
    def idle(self) -> bool:
        """Between requests, with nothing of the next one received yet."""
        conn = self._h11
        if conn is None:
            return self._reader.idle
        return conn.their_state is h11.IDLE and not conn.trailing_data[0]

    @property
    def between_requests(self) -> bool:
        """The next thing to parse is a new request (pipelined ones take turns here)."""
        if self._h11 is None:
            return self._reader.stage is _HEAD
        return self._h11.their_state is h11.IDLE

    @property
    def http_version(self) -> str:
        """The client's HTTP version, for logs."""
        if self._h11 is None:
            version = self._head.http_version if self._head is not None else None
        else:
            version = self._h11.their_http_version
        return version.decode() if version else "1.1"

    @property
    def pending(self) -> Request | None:
        """The request being received or answered (its head), if any: for the logs of
        an answer given before it was complete."""
        return self._request if self._head is not None else None

    def take_output(self) -> bytes:
        """Bytes to send that no answer carries (``100 Continue``)."""
        output, self._output = self._output, b""
        return output

    def pending_head(self) -> Request:
        """The head of the request being received (there must be one)."""
        request = self.pending
        assert request is not None
        return request

    def attach(self, sink: Callable[[bytes], None]) -> None:
        """Where the body of the request just announced by :class:`BodyStart` goes,
        piece by piece as it arrives."""
        self._body.sink = sink

    def next_request(self) -> Request | BodyStart | _ClientClosed | _MoreLater | None:
        """The next complete request, the head of one whose body is streamed
        (:class:`BodyStart`: :meth:`attach` its sink, then call again; the request
        comes once its body has all been handed over), :data:`CLIENT_CLOSED`,
        :data:`MORE_LATER` (call again in the next loop iteration: this one has read
        ``BODY_PIECES_PER_TURN`` pieces of a body), or ``None`` for more data.

        Raises:
            RequestError: a malformed or refused request; answer it and close.
        """
        if self._h11 is None:
            request = self._next_plain()
            if request is not NOT_PLAIN:
                return cast("Request | None", request)
        conn = self._h11
        assert conn is not None
        pieces = 0
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                # h11's reasons quote the offending bytes; the reason alone is enough.
                reason = str(exc).split(": bytearray(")[0]
                raise fatal(exc.error_status_hint, reason) from None
            if event is h11.NEED_DATA:
                return None
            if event is h11.PAUSED:
                if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                    conn.start_next_cycle()
                    continue
                return None
            if isinstance(event, h11.Request):
                if self._replayed:
                    self._replayed = False
                else:
                    self._on_head(event)
                if conn.they_are_waiting_for_100_continue:
                    output = conn.send(h11.InformationalResponse(status_code=100, headers=[]))
                    self._output += output or b""
                if self._body.sink is not None:
                    return BodyStart(self.pending_head())
            elif isinstance(event, h11.Data):
                self._body.piece(event.data)
                pieces += 1
                if pieces == BODY_PIECES_PER_TURN:
                    return MORE_LATER
            elif isinstance(event, h11.EndOfMessage):
                request = self._request  # kept until answered: a HEAD's answer has no body
                assert request is not None
                request.body = self._body.take()
                return request
            elif isinstance(event, h11.ConnectionClosed):
                return CLIENT_CLOSED

    def _next_plain(self) -> Request | object | None:
        """:meth:`next_request` without h11's connection, or ``NOT_PLAIN`` once the
        request is not plain (h11's connection has it then)."""
        reader = self._reader
        stage = reader.stage
        if stage is _ANSWERING:
            return None  # pipelined requests wait for the answer (h11: PAUSED)
        if reader.closed:
            return self._to_h11()  # h11 says how the input ended
        if stage is _HEAD:
            head = reader.head(self._max_header)
            if head is None:
                return None
            if head is NOT_PLAIN:
                return self._to_h11()  # h11 reads it again, and refuses it
            self._on_head(cast("h11.Request", head))
            if not self._plain:
                return self._to_h11()
        body = reader.body(self._length)
        if body is None:
            return None
        request = self._request
        assert request is not None
        request.body = body
        return request

    def _to_h11(self) -> object:
        """Hand what the client has sent to h11's connection from here on; the head
        of a request already seen is read again without being seen twice."""
        conn = self._h11 = self._new_h11()
        reader = self._reader
        self._replayed = reader.stage is not _HEAD
        raw = reader.take()
        if raw:
            conn.receive_data(raw)
        if reader.closed:
            conn.receive_data(b"")
        return NOT_PLAIN

    def _catch_up(self) -> h11.Connection:
        """h11's connection brought to where reading without it stood, for an answer
        only h11 writes."""
        stage = self._reader.stage
        self._to_h11()
        conn = self._h11
        assert conn is not None
        if stage is not _HEAD:
            event = conn.next_event()
            assert isinstance(event, h11.Request), event
            self._replayed = False
        if stage is _ANSWERING:
            while not isinstance(conn.next_event(), h11.EndOfMessage):
                pass  # the body, read already
        return conn

    def _on_head(self, head: h11.Request) -> None:
        self._head = head
        self._request = request = request_of(head)
        keep_alive, chunked, length, names = check_head(request, self._max_header)
        self._keep_alive = keep_alive
        streamed = self._streams_body is not None and self._streams_body(request)
        limit = self._body.start(chunked=chunked, streamed=streamed)
        self._length = length
        if length > limit:
            raise fatal(413, "payload too large")
        self._plain = keep_alive and not streamed and plainread.is_plain(head.method, names)

    def answer(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, *, close: bool
    ) -> tuple[bytes, Ending]:
        """A complete response as bytes, and what to do after writing it.

        ``headers`` is the whole list but ``Connection``; the body is left out for HEAD.
        The connection closes when asked, after a request h11 could not read, and when
        HTTP/1.x requires it; it lingers when the client may still be sending.
        """
        conn = self._h11
        if conn is None:
            if self._reader.stage is _ANSWERING and not close:
                _response_event, head_bytes = _response(status, headers)
                if head_bytes is not None:  # plain requests are neither HEAD nor 1.0
                    return self._answer_directly(head_bytes, body), Ending.KEEP_ALIVE
            conn = self._catch_up()
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return b"", Ending.CLOSE
        head = self._head
        close = close or conn.their_state is h11.ERROR
        if close:
            headers = [*headers, (b"connection", b"close")]
        response, head_bytes = _response(status, headers)
        if (
            not close
            and self._keep_alive
            and conn.their_state is h11.DONE
            and head_bytes is not None
            and head is not None
            and head.method != b"HEAD"
        ):
            return self._answer_directly(head_bytes, body), Ending.KEEP_ALIVE
        parts = [conn.send(response)]
        if body and (head is None or head.method != b"HEAD"):
            parts.append(conn.send(h11.Data(data=body)))
        parts.append(conn.send(_END))
        self._head = None
        self._body.drop()
        data = b"".join(p for p in parts if p)
        if close or _must_close(conn):
            still_sending = conn.their_state is not h11.DONE and conn.their_state is not h11.CLOSED
            return data, Ending.LINGER if still_sending else Ending.CLOSE
        if conn.their_state is h11.DONE:
            conn.start_next_cycle()
        return data, Ending.KEEP_ALIVE

    def _answer_directly(self, head: bytes, body: bytes) -> bytes:
        """The common answer (a complete HTTP/1.1 request kept alive, a body of known
        length) written without h11's send cycle, which costs more than all the rest
        of a publish: the bytes are exactly those h11 writes (its ``Response`` checked
        the head once, see ``_response``). What the client has sent beyond this
        request is read next, without h11's connection when it can be (else by a fresh
        one). h11 still parses every request."""
        conn = self._h11
        if conn is None:
            self._reader.answered(self._length)
        else:
            trailing, closed = conn.trailing_data
            if plainread.AVAILABLE:
                self._h11 = None
                self._reader = PlainReader(bytes(trailing), closed=closed)
            else:
                self._h11 = conn = self._new_h11()
                if trailing:
                    conn.receive_data(bytes(trailing))
                if closed:
                    conn.receive_data(b"")
        self._head = None
        self._body.drop()
        return head + body

    def stream_head(self, headers: list[tuple[bytes, bytes]]) -> tuple[bytes, bool]:
        """The head of a 200 event stream, and whether its body is chunked (HTTP/1.1)
        rather than close-delimited (HTTP/1.0, as nginx proxies by default).

        The exchange is over then: the body takes a fast path around h11 (see
        :mod:`rawsse.server.stream`).
        """
        if self._h11 is None and self._reader.stage is _ANSWERING:
            return _plain_stream_head(headers), True
        conn = self._h11 if self._h11 is not None else self._catch_up()
        chunked = conn.their_http_version != b"1.0"
        head = conn.send(h11.Response(status_code=200, headers=headers, reason=b"OK"))
        assert head is not None
        return head, chunked


_END = h11.EndOfMessage()


#: Response heads already checked by h11, by status and headers: the answers a server
#: gives are few (the same publish answer but for its length, the same probes), and
#: h11 validates every header of a new ``Response`` with regular expressions. Its
#: events are immutable, so one can be sent on any connection.
_RESPONSES: dict[
    tuple[int, tuple[tuple[bytes, bytes], ...]], tuple[h11.Response, bytes | None]
] = {}
_RESPONSES_KEPT = 512


def _response(status: int, headers: list[tuple[bytes, bytes]]) -> tuple[h11.Response, bytes | None]:
    """The ``Response`` for ``status`` and ``headers``, and, when it has a length (so
    h11 adds no framing of its own), its head as the bytes h11 writes."""
    key = (status, tuple(headers))
    cached = _RESPONSES.get(key)
    if cached is None:
        response = h11.Response(status_code=status, headers=headers, reason=_reason(status))
        head = None
        if status >= 200 and any(name == b"content-length" for name, _ in headers):
            head = b"HTTP/1.1 %d %s\r\n%s\r\n" % (
                status,
                response.reason,
                b"".join(b"%s: %s\r\n" % item for item in response.headers.raw_items()),
            )
        if len(_RESPONSES) >= _RESPONSES_KEPT:
            _RESPONSES.clear()  # varied answers (origins, waits): start again
        cached = _RESPONSES[key] = (response, head)
    return cached


#: The heads of event streams answering plain requests, by headers: as with
#: ``_RESPONSES``, a subscriber connecting spares h11 reading its request again.
_STREAM_HEADS: dict[tuple[tuple[bytes, bytes], ...], bytes] = {}


def _plain_stream_head(headers: list[tuple[bytes, bytes]]) -> bytes:
    """The head h11 writes for a 200 event stream with ``headers`` answering a plain
    request (HTTP/1.1, kept alive, not ``HEAD``): chunked, and the same whatever else
    the request said, so it is asked of h11 once per set of headers."""
    key = tuple(headers)
    head = _STREAM_HEADS.get(key)
    if head is None:
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        while not isinstance(conn.next_event(), h11.EndOfMessage):
            pass
        head = conn.send(h11.Response(status_code=200, headers=headers, reason=b"OK"))
        if len(_STREAM_HEADS) >= _RESPONSES_KEPT:
            _STREAM_HEADS.clear()  # varied heads (origins): start again
        _STREAM_HEADS[key] = head
    return head


def _must_close(conn: h11.Connection) -> bool:
    # A function of its own: after send(), mypy still believes the state it narrowed.
    return conn.our_state is h11.MUST_CLOSE


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""
