"""The ``asyncio.Protocol`` of one client connection: callbacks, state and timers.

What it delegates: the HTTP exchange (h11, sans I/O) to :mod:`rawsse.h1.exchange`; what
each path answers to :mod:`rawsse.server.routes`; limits and credentials to
:mod:`rawsse.policy.admission`; the event stream, once the exchange hands over, to its
:class:`~rawsse.server.stream.StreamSession` (the hub's subscriber as the server sees it).

A connection is in exactly one :class:`ConnState` (its ``state``, read by anyone);
``set_state`` is the only place it changes. A refused request is turned into an answer,
and counted, in one place (:meth:`RequestCycle._handle`, with
:func:`rawsse.server.routes.error_reply`); any other exception in a callback is logged
with its traceback and aborts only this connection.
"""

from __future__ import annotations

import asyncio
import enum
import errno
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol, cast

from rawsse.errors import RequestError
from rawsse.h1.exchange import CLIENT_CLOSED, MORE_LATER, BodyStart, Ending, Exchange, Request
from rawsse.h1.parse import (
    GZIP_HEADERS,
    SSE_HEADERS,
    VARY_ENCODING,
    accepts_gzip,
    redact_target,
)
from rawsse.h1.replies import Reply, text
from rawsse.policy.admission import Admission, Refused
from rawsse.policy.cors import CorsPolicy
from rawsse.server.deadline import DeadlineProtocol
from rawsse.server.routes import ROUTES, Router, error_reply, path_label
from rawsse.server.stream import StreamSession, StreamStart
from rawsse.server.subscriptions import SubscriptionRegistry
from rawsse.server.tcp import INHERITS_SOCKET_OPTIONS, tune_socket

if TYPE_CHECKING:
    from rawsse.config import Config
    from rawsse.hub.hub import Hub
    from rawsse.server.batch import BatchPublish

__all__ = ["ConnState", "HttpConnection", "ServerState"]

logger = logging.getLogger("rawsse.server")
access_logger = logging.getLogger("rawsse.access")

#: Seconds a connection closed in the middle of a request goes on reading (and
#: discarding) what the client still sends, so that its answer is not lost to a reset.
LINGER_TIMEOUT = 2.0

#: Requests of one connection answered in one loop iteration; pipelined ones past this
#: wait for the next iteration, in turn with every other connection, so that a client
#: with thousands of requests in one read cannot hold the loop. Measured with
#: ``perf/attacks.py pipeline``: /healthz from elsewhere answered in 26 ms (p50, stdlib
#: loop) under 30 such clients at 1, in 114 ms at 4. Browsers do not pipeline, and a
#: publisher in a hurry sends one request after another on one connection.
PIPELINE_BATCH = 1

#: Why a connection's requests are held (bits of ``RequestCycle._hold``): its client
#: does not read its answers (``pause_writing``), it has had its turn
#: (``PIPELINE_BATCH``), or its answer is being awaited (a remote backend).
_WRITE_PAUSED = 1
_BACKLOG = 2
_AWAITING = 4


class ConnState(enum.Enum):
    """Where a connection is in its life."""

    IDLE = "idle"  #: waiting for a request (new, or kept alive after a response)
    REQUEST = "request"  #: a request's head or body is arriving, or being answered
    STREAMING = "streaming"  #: an event stream; h11 has been let go
    CLOSING = "closing"  #: we asked the transport to close or aborted it
    CLOSED = "closed"  #: connection_lost was called


class ServerState:
    """What every connection of one server shares: configuration, hub, admission,
    CORS, the registry of open connections and tasks, and whether it is draining."""

    def __init__(self, config: Config, hub: Hub, demo_page: bytes | None) -> None:
        self.config = config
        self.hub = hub
        self.demo_page = demo_page
        self.admission = Admission(config)
        self.cors = CorsPolicy(config.cors_origins)
        self.subscriptions: SubscriptionRegistry | None = None
        if config.mercure and config.mercure_subscriptions:
            self.subscriptions = SubscriptionRegistry(hub, self.spawn, hub.backend.roster)
        #: Every route; a listener may serve a subset through a router of its own.
        self.router = Router(self, ROUTES)
        self.connections: set[HttpConnection] = set()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.draining = False
        self.on_idle: Callable[[], None] | None = None

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` as a task the server cancels and awaits on shutdown; a failure
        is logged with its traceback."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("task %s failed", task.get_name(), exc_info=task.exception())

    def forget(self, connection: HttpConnection) -> None:
        """Unregister a closed connection; tell the server when the last one is gone."""
        self.connections.discard(connection)
        if not self.connections and self.on_idle is not None:
            self.on_idle()


class HttpConnection(DeadlineProtocol):
    """One client connection: request cycles, then possibly an event stream."""

    __slots__ = (
        "_server",
        "_router",
        "transport",
        "cycle",
        "state",
        "peer_ip",
        "trusted_peer",
        "_connection_key",
        "_ignored",
        "client",
        "stream",
        "_peer_port",
    )

    def __init__(self, server: ServerState, router: Router | None = None) -> None:
        super().__init__()
        self._server = server
        # One router per listener, shared by its connections.
        self._router = server.router if router is None else router
        self.transport: asyncio.Transport | None = None
        # Its ordinary requests, until it becomes a stream (or closes).
        self.cycle: RequestCycle | None = None
        self.state = ConnState.IDLE
        self.peer_ip = ""
        self.trusted_peer = False
        self._connection_key: str | None = None  # counted in the per-address sockets
        self._ignored = 0  # bytes a streaming client sent after its request
        # The peer's port (or, for a socket that is not TCP, its whole address):
        # ``peer`` is made from it when a log line needs it, not kept.
        self._peer_port: int | str = ""
        #: The client's address: the peer's, or the one a trusted proxy reported.
        self.client = ""
        #: Its event stream, once it is one: everything the stream is, in one place.
        self.stream: StreamSession | None = None

    @property
    def peer(self) -> str:
        """The peer's ``address:port``, for logs."""
        if isinstance(self._peer_port, int):
            return f"{self.peer_ip}:{self._peer_port}"
        return self._peer_port

    def set_state(self, state: ConnState, idle_timeout: float | None = None) -> None:
        self.state = state
        config = self._server.config
        if state is ConnState.IDLE:
            self._set_deadline(config.keepalive_timeout if idle_timeout is None else idle_timeout)
        elif state is ConnState.REQUEST:
            self._set_deadline(config.request_timeout)
        else:
            self._clear_deadline()
            if state is ConnState.CLOSING:
                # close() waits for the write buffer to drain, which a client that
                # never reads never lets happen: past slow_timeout it is aborted, so a
                # closed connection cannot hold its buffer and its slot for ever.
                self._set_deadline(config.slow_timeout)

    # -- asyncio callbacks ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport but implement it.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        server = self._server
        config = server.config
        self.peer_ip, self._peer_port = _peer_of(transport)
        self.client = self.peer_ip
        admitted = server.admission.connection(self.peer_ip, self._loop.time())
        if admitted is None:
            # One address holding this many sockets is not a browser: close at once,
            # before the connection costs a request timeout.
            server.hub.metrics.rejected["limit"] += 1
            self.set_state(ConnState.CLOSING)
            transport.abort()
            return
        self.trusted_peer, self._connection_key, throttled_for = admitted
        if not INHERITS_SOCKET_OPTIONS:
            # Elsewhere than Linux, each accepted socket is tuned (the listener is too).
            sock = transport.get_extra_info("socket")
            if sock is not None:
                tune_socket(sock, config.dead_peer_timeout)
        transport.set_write_buffer_limits(
            high=config.write_high_water, low=config.write_high_water // 4
        )
        exchange = Exchange(
            max_header_size=config.max_header_size,
            max_body_size=config.max_event_size,
            streams_body=self._router.streams_body,
            max_streamed_size=config.max_batch_size,
        )
        self.cycle = RequestCycle(self, server, self._router, self._loop, exchange, throttled_for)
        server.connections.add(self)
        # A new connection gets the request timeout, not the keep-alive one: a client
        # that connects and says nothing is a slowloris until proven otherwise.
        self.set_state(ConnState.IDLE, config.request_timeout)

    def data_received(self, data: bytes) -> None:
        if self.state is not ConnState.IDLE and self.state is not ConnState.REQUEST:
            # A stream's client has nothing more to say; what it sends is discarded
            # unread rather than buffered, and one that keeps talking is cut off.
            self._ignored += len(data)
            if self._ignored > self._server.config.max_header_size and self.stream:
                self.stream.drop("limit")
            return
        self._receive(data)

    def eof_received(self) -> bool | None:
        if self.state is ConnState.REQUEST:
            self._receive(b"")
        return None  # close our side too

    def _receive(self, data: bytes) -> None:
        try:
            if self.state is ConnState.IDLE:
                self.set_state(ConnState.REQUEST)
            elif self.cycle is not None and self.cycle.batch is not None:
                # A batch's body may stream for as long as it keeps coming: the request
                # timeout is the longest silence within it.
                self._set_deadline(self._server.config.request_timeout)
            assert self.cycle is not None
            self.cycle.exchange.receive(data)
            self.cycle.process()
        except Exception:
            self.crash()

    def connection_lost(self, exc: Exception | None) -> None:
        self.set_state(ConnState.CLOSED)
        server = self._server
        cycle, self.cycle = self.cycle, None
        if cycle is not None and cycle.batch is not None and cycle.batch.awaiting:
            # Publishes of a batch cut short that a remote backend has yet to answer:
            # they were sent, so they are seen through (and counted), not abandoned.
            server.spawn(cycle.batch.settle())
        if self._connection_key is not None:
            server.admission.release_connection(self._connection_key)
            self._connection_key = None
        stream, self.stream = self.stream, None
        if stream is not None:
            if server.subscriptions is not None:
                server.subscriptions.end(stream)
            server.admission.release_stream(stream.key)
            timed_out = isinstance(exc, OSError) and exc.errno == errno.ETIMEDOUT
            stream.close(server.hub, timed_out=timed_out, who=self.who(), now=self._loop.time())
        server.forget(self)

    def pause_writing(self) -> None:
        if self.stream is not None:
            self._server.hub.pause(self.stream, self._loop.time())
        else:
            # An ordinary client not reading its answers: stop reading and answering
            # its requests until it has drained them.
            if self.cycle is not None:
                self.cycle.hold(_WRITE_PAUSED)

    def resume_writing(self) -> None:
        if self.stream is not None:
            self._server.hub.resume(self.stream)
        elif self.cycle is not None:
            self.cycle.release(_WRITE_PAUSED)

    # -- event streams --------------------------------------------------------------------

    def start_stream(self, exchange: Exchange, request: Request, start: StreamStart) -> None:
        server = self._server
        transport = self.transport
        assert transport is not None
        headers = SSE_HEADERS
        compressed = False
        if server.config.compress:
            compressed = accepts_gzip(request.header(b"accept-encoding"))
            headers = [*headers, *(GZIP_HEADERS if compressed else VARY_ENCODING)]
        if start.headers:
            headers = [*headers, *start.headers]
        if server.cors.enabled:
            headers = headers + server.cors.headers(request.header(b"origin"))
        head, chunked = exchange.stream_head(headers)
        version = exchange.http_version
        self.cycle = None  # h11's part is over: the body takes the fast path
        self.set_state(ConnState.STREAMING)
        server.hub.metrics.count_request(start.path, 200)
        access_logger.info(
            '%s "GET %s HTTP/%s" 200 stream', self.who(), redact_target(request.target), version
        )
        now = self._loop.time()
        self.stream = stream = StreamSession(
            server.hub,
            transport,
            start,
            head=head,
            chunked=chunked,
            retry=server.config.retry,
            now=now,
            wall_now=time.time(),
            spawn=server.spawn,
            compressed=compressed,
        )
        if start.subscriptions and server.subscriptions is not None:
            server.subscriptions.begin(stream, start.subscriptions)
        # Time the stream's end to its token's expiry, with a notice ahead of it.
        first = stream.first_timer(now, server.config.token_expiry_notice)
        if first is not None:
            self._set_deadline(first)

    def _on_stream_timer(self) -> None:
        """The notice that the token is about to expire, then, at expiry, the end."""
        if self.stream is None:
            return
        wait = self.stream.timer_fired(self._loop.time())
        if wait is None:
            self.set_state(ConnState.CLOSING)
        else:
            self._set_deadline(wait)

    def finish_stream(self, window_ms: int) -> None:
        """End the stream for shutdown, telling the client when to come back."""
        if self.stream is not None:
            self.stream.finish_for_shutdown(window_ms)
            self.set_state(ConnState.CLOSING)

    # -- closing --------------------------------------------------------------------------

    def who(self) -> str:
        """The client for log lines: its address, and the proxy's when there is one."""
        if self.trusted_peer and self.client != self.peer_ip:
            return f"{self.client} via {self.peer}"
        return self.peer

    def write(self, data: bytes) -> None:
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self, *, linger: bool = False) -> None:
        """Close the connection. With ``linger`` (the client may still be sending, as
        when a body is refused midway) only our side is shut and what arrives is read
        and discarded until the client closes or ``LINGER_TIMEOUT`` passes: closing with
        unread data would make the kernel send a reset that can destroy the answer
        before the client reads it."""
        if self.state is ConnState.CLOSING or self.state is ConnState.CLOSED:
            return
        self.set_state(ConnState.CLOSING)
        transport = self.transport
        if transport is None:
            return
        if linger and transport.can_write_eof():
            try:
                transport.write_eof()
            except OSError:  # the peer is already gone
                transport.abort()
                return
            self._set_deadline(LINGER_TIMEOUT)
        else:
            transport.close()

    def close_idle(self) -> None:
        """Close the connection if it is between requests (used when draining)."""
        if self.state is ConnState.IDLE:
            self.close()

    def abort(self, reason: str = "shutdown") -> None:
        """Drop the connection at once, whatever it is doing."""
        if self.stream is not None:
            self.stream.end(reason)
        if self.state is not ConnState.CLOSED:
            self.set_state(ConnState.CLOSING)
            if self.transport is not None:
                self.transport.abort()

    def crash(self) -> None:
        logger.exception("unexpected error on connection %s; aborting it", self.peer)
        self.abort("error")

    # -- timers ---------------------------------------------------------------------------

    def _deadline_passed(self) -> None:
        if self.state is ConnState.REQUEST and self.cycle is not None:
            self.cycle.time_out()
        elif self.state is ConnState.STREAMING:
            self._on_stream_timer()
        elif self.state is ConnState.CLOSING:
            if self.transport is not None:
                self.transport.abort()  # lingered long enough
        else:
            self.close()


class CycleHost(Protocol):
    """What a :class:`RequestCycle` may ask of its connection, and nothing more: the
    members of :class:`HttpConnection` it uses, named here so that the two stay apart."""

    transport: asyncio.Transport | None
    cycle: RequestCycle | None
    state: ConnState
    peer_ip: str
    trusted_peer: bool
    client: str

    def set_state(self, state: ConnState, idle_timeout: float | None = None) -> None: ...

    def write(self, data: bytes) -> None: ...

    def close(self, *, linger: bool = False) -> None: ...

    def who(self) -> str: ...

    def start_stream(self, exchange: Exchange, request: Request, start: StreamStart) -> None: ...

    def crash(self) -> None: ...


class RequestCycle:
    """The ordinary requests of one connection, until it becomes a stream or closes:
    reading them from the exchange in turn, holding them while the client does not
    read or an answer is awaited, routing and answering them.

    It lives only as long as the connection answers requests, so a stream's connection
    carries none of it. It reaches its connection only through :class:`CycleHost`.
    """

    __slots__ = ("_conn", "_server", "_router", "_loop", "exchange", "_hold",
                 "_throttled_for", "batch")  # fmt: skip

    def __init__(
        self,
        conn: CycleHost,
        server: ServerState,
        router: Router,
        loop: asyncio.AbstractEventLoop,
        exchange: Exchange,
        throttled_for: float | None,
    ) -> None:
        self._conn = conn
        self._server = server
        self._router = router
        self._loop = loop
        self.exchange = exchange
        # Why requests are not being read or answered (bits above); 0: they are.
        self._hold = 0
        # Over the connection rate: its first request is refused, told to wait this.
        self._throttled_for = throttled_for
        #: The batch publish whose body is arriving, if any.
        self.batch: BatchPublish | None = None

    def hold(self, reason: int) -> None:
        """Stop reading and answering requests, for ``reason``."""
        transport = self._conn.transport
        if not self._hold and transport is not None and not transport.is_closing():
            transport.pause_reading()
        self._hold |= reason

    def release(self, reason: int) -> None:
        """``reason`` is over; once no reason is left, go on where it stopped."""
        if not self._hold & reason:
            return
        self._hold &= ~reason
        conn = self._conn
        if self._hold or conn.cycle is not self:
            return
        transport = conn.transport
        if transport is not None and not transport.is_closing():
            transport.resume_reading()
        if conn.state is ConnState.REQUEST:
            # Pipelined requests that arrived earlier wait in h11's buffer, and no new
            # data may come to wake them: answer them now.
            try:
                self.process()
            except Exception:
                conn.crash()

    def _work_backlog(self) -> None:
        """The next turn of a connection that had more pipelined requests than
        ``PIPELINE_BATCH``."""
        self.release(_BACKLOG)

    def process(self) -> None:
        """Answer every complete request in the buffer (pipelined ones too), as long
        as the client reads what it is sent.

        Once the transport pauses writing, no further request is answered until the
        client has drained its answers (``resume_writing`` picks up where this left
        off): pipelined requests would otherwise pile up answers in memory however
        little the client reads, and keep the loop busy producing them. So what an
        ordinary connection holds unsent stays near the high-water mark plus one answer.

        And after ``PIPELINE_BATCH`` requests, or ``BODY_PIECES_PER_TURN`` pieces of a
        body, the rest wait for the next loop iteration (reading paused meanwhile), so
        that a connection packed with requests or chunks takes its turn with every
        other one instead of holding the loop until it is done.
        """
        conn, exchange = self._conn, self.exchange
        started = 0
        while conn.cycle is self and conn.state is ConnState.REQUEST and not self._hold:
            if exchange.between_requests:
                if started == PIPELINE_BATCH:
                    self.hold(_BACKLOG)
                    self._loop.call_soon(self._work_backlog)
                    return
                started += 1
            try:
                request = exchange.next_request()
            except RequestError as exc:
                if self.batch is not None:
                    batch, self.batch = self.batch, None
                    self._answer(batch.refuse(exc), exchange.pending)
                else:
                    self.reply(error_reply(exc), exchange.pending)
                return
            conn.write(exchange.take_output())
            if request is None:
                if exchange.idle:
                    conn.set_state(ConnState.IDLE)
                elif self.batch is not None:
                    self._work_batch(self.batch)
                return
            if request is CLIENT_CLOSED:
                conn.close()
                return
            if request is MORE_LATER:
                # A body of many pieces: the rest of it is read in the next iteration,
                # after every other connection's turn (reading paused meanwhile).
                self.hold(_BACKLOG)
                self._loop.call_soon(self._work_backlog)
                return
            if isinstance(request, BodyStart):
                self._open_batch(request.request)
                continue
            if self.batch is not None:
                batch, self.batch = self.batch, None
                self._answer(batch.finish(), cast(Request, request))
                continue
            self._handle(cast(Request, request))

    def time_out(self) -> None:
        """The request did not arrive within the request timeout (a batch: it went
        silent that long): 408, with a batch's answers so far."""
        pending = self.exchange.pending
        if self.batch is not None:
            batch, self.batch = self.batch, None
            self._answer(batch.refuse(RequestError("request timeout", 408, close=True)), pending)
        else:
            self.reply(text(408, "request timeout", close=True), pending)

    def _open_batch(self, request: Request) -> None:
        """Admit a batch publish by its head, and have its body fed to it."""
        try:
            self.batch = self._router.open_batch(request, self._loop.time)
        except RequestError as exc:
            self.reply(error_reply(exc), request)
            return
        self.exchange.attach(self.batch.feed)

    def _work_batch(self, batch: BatchPublish) -> None:
        """Publish a step of what the batch has read; with more left, or with too
        many publishes awaiting a remote backend, read no more until the next loop
        iteration, or until they are answered."""
        more = batch.work()
        if batch.failed is not None:  # too many lines refused: so is the batch
            self.batch = None
            self._answer(batch.refuse(batch.failed), self.exchange.pending)
            return
        if batch.must_settle:
            self.hold(_AWAITING)
            self._server.spawn(self._settle(batch))
        if more:
            self.hold(_BACKLOG)
            self._loop.call_soon(self._work_backlog)

    async def _settle(self, batch: BatchPublish) -> None:
        """Wait for a batch's publishes a remote backend has not answered, then read on."""
        await batch.settle()
        self.release(_AWAITING)

    def _answer(self, outcome: Reply | Awaitable[Reply], request: Request | None) -> None:
        if isinstance(outcome, Reply):
            self.reply(outcome, request)
        else:
            self.hold(_AWAITING)
            self._server.spawn(self._reply_when_ready(outcome, request))

    def _handle(self, request: Request) -> None:
        """Route a complete request and answer it, now, later, or with a stream."""
        conn = self._conn
        server, router = self._server, self._router
        if conn.trusted_peer:
            conn.client = server.admission.client(conn.peer_ip, True, request)
        try:
            if self._throttled_for is not None:
                wait, self._throttled_for = self._throttled_for, None
                if not server.admission.is_publisher(request):
                    raise server.admission.throttled(wait, conn.peer_ip, self._loop.time())
            outcome = router.route(
                request, client=conn.client, trusted=conn.trusted_peer, now=self._loop.time()
            )
        except RequestError as exc:
            # Where a refusal becomes an answer, it is counted: a stream request's for
            # whatever reason, any request's over a limit.
            stream = router.is_stream(request)
            if stream or isinstance(exc, Refused):
                server.hub.metrics.rejected[exc.label or "bad_request"] += 1
            self.reply(error_reply(exc, stream=stream), request)
            return
        if isinstance(outcome, StreamStart):
            conn.start_stream(self.exchange, request, outcome)
        else:
            self._answer(outcome, request)

    async def _reply_when_ready(self, pending: Awaitable[Reply], request: Request | None) -> None:
        """The answer of a handler that had to await (a remote backend)."""
        try:
            reply = await pending
        except RequestError as exc:
            reply = error_reply(exc)
        except Exception:
            logger.exception(
                "error answering %s", redact_target(request.target) if request else "-"
            )
            reply = text(500, "internal error", close=True)
        if self._conn.cycle is self and self._conn.state is ConnState.REQUEST:
            self.reply(reply, request)
            self.release(_AWAITING)

    def reply(self, reply: Reply, request: Request | None) -> None:
        """Send a complete answer; close, or get ready for the next request."""
        conn = self._conn
        server = self._server
        if request is None or not server.cors.enabled:
            headers = reply.head()
        else:
            headers = reply.head(server.cors.headers(request.header(b"origin")))
        close = reply.close or server.draining
        data, ending = self.exchange.answer(reply.status, headers, reply.body, close=close)
        if not data:
            conn.close()
            return
        conn.write(data)
        server.hub.metrics.count_request(path_label(request), reply.status)
        if access_logger.isEnabledFor(logging.INFO):  # its arguments cost, even unlogged
            # The same shape as a stream's line: "METHOD target HTTP/version" status.
            access_logger.info(
                '%s "%s %s HTTP/%s" %d',
                conn.who(),
                request.method.decode("latin-1") if request is not None else "-",
                redact_target(request.target) if request is not None else "-",
                request.http_version.decode("latin-1") if request is not None else "-",
                reply.status,
            )
        if ending is Ending.KEEP_ALIVE:
            conn.set_state(ConnState.IDLE if self.exchange.idle else ConnState.REQUEST)
        else:
            conn.close(linger=ending is Ending.LINGER)


def _peer_of(transport: asyncio.Transport) -> tuple[str, int | str]:
    """The peer's address and port (for a socket that is not TCP: no address, and
    what the transport calls it). The address is interned: every connection from one
    address shares one string, as all do behind a proxy."""
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple):
        return sys.intern(str(peer[0])), int(peer[1])
    return "", str(peer or "")
