"""The HTTP/1.1 connection: an ``asyncio.Protocol`` driving h11 until a stream starts.

h11 owns the handshake: it parses every request, enforces HTTP/1.1's framing rules and
writes every response head, including that of an event stream, so that keep-alive,
pipelining, HEAD, ``Expect: 100-continue``, HTTP/1.0 and malformed input follow RFC 9112.

The event-stream body deliberately takes a fast path around h11. Once the head is sent
the h11 connection is dropped, and the hub writes pre-encoded bytes (the same object to
every subscriber: plain for HTTP/1.0's close-delimited body, one chunk for HTTP/1.1's
chunked body) straight to the transport. Letting h11 frame each event would mean one
``Data`` event, one framing and one copy per subscriber per event. What h11 would have
guaranteed we keep ourselves: a chunk is never empty (an empty chunk ends the body) and
the stream ends with the terminating chunk. Do not "fix" this by sending events through
h11.

A connection is in exactly one :class:`ConnState`; ``_set_state`` is the only place it
changes. Errors from h11 are caught in one place, ``_process``; any other exception in a
callback is logged with its traceback and aborts only this connection.
"""

from __future__ import annotations

import asyncio
import enum
import errno
import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, cast

import h11

from rawsse.auth import AuthError, Authorizer, Grants, key_matches
from rawsse.cors import CorsPolicy
from rawsse.errors import InvalidEvent, RequestError
from rawsse.events import (
    RESERVED_EVENT_PREFIX,
    chunk,
    encode_comment,
    encode_event,
    encode_retry,
)
from rawsse.http import (
    SSE_HEADERS,
    bearer_token,
    cookie_value,
    header_value,
    parse_publish,
    parse_target,
    parse_topics,
    redact_target,
)
from rawsse.limits import Limits, client_key, retry_after_seconds, stream_retry_ms
from rawsse.proxy import ProxyResolver
from rawsse.subscriber import Subscriber
from rawsse.tcp import tune_socket

if TYPE_CHECKING:
    from rawsse.config import Config
    from rawsse.hub import Hub

__all__ = ["ConnState", "HttpConnection", "ServerState"]

logger = logging.getLogger("rawsse.server")
access_logger = logging.getLogger("rawsse.access")

_TEXT = b"text/plain; charset=utf-8"
_EVENT_STREAM = b"text/event-stream; charset=utf-8"

#: The cookie an ``EventSource`` (which cannot set headers) carries its token in.
AUTH_COOKIE = b"rawsse_authorization"

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

#: Why a connection's requests are held (bits of ``HttpConnection._hold``): its client
#: does not read its answers (``pause_writing``), or it has had its turn (``PIPELINE_BATCH``).
_WRITE_PAUSED = 1
_BACKLOG = 2

#: The event a stream carries ``token_expiry_notice`` seconds before its token expires.
AUTH_EXPIRING_EVENT = RESERVED_EVENT_PREFIX + "auth-expiring"

#: Methods each path answers; anything else on a known path is 405 with ``Allow``.
ROUTES: dict[str, tuple[bytes, ...]] = {
    "/events": (b"GET", b"HEAD"),
    "/publish": (b"POST",),
    "/healthz": (b"GET", b"HEAD"),
    "/readyz": (b"GET", b"HEAD"),
    "/metrics": (b"GET", b"HEAD"),
    "/": (b"GET", b"HEAD"),
}

#: What a separate metrics listener (``metrics_port``) answers: scrapes and probes only.
METRICS_ROUTES = {path: ROUTES[path] for path in ("/metrics", "/healthz", "/readyz")}

#: The main listener's routes when metrics have a listener of their own.
PUBLIC_ROUTES = {path: methods for path, methods in ROUTES.items() if path != "/metrics"}


class ConnState(enum.Enum):
    """Where a connection is in its life."""

    IDLE = "idle"  #: waiting for a request (new, or kept alive after a response)
    REQUEST = "request"  #: a request's head or body is arriving
    STREAMING = "streaming"  #: an event stream; h11 has been let go
    CLOSING = "closing"  #: we asked the transport to close or aborted it
    CLOSED = "closed"  #: connection_lost was called


class ServerState:
    """What every connection of one server shares: configuration, hub, credentials,
    limits, the registry of open connections and whether the server is draining."""

    def __init__(self, config: Config, hub: Hub, demo_page: bytes | None) -> None:
        self.config = config
        self.hub = hub
        self.demo_page = demo_page
        self.auth = Authorizer(config)
        self.limits = Limits(config)
        self.proxies = ProxyResolver(config.trusted_proxies)
        self.cors = CorsPolicy(config.cors_origins)
        self.connections: set[HttpConnection] = set()
        self.draining = False
        self.on_idle: Callable[[], None] | None = None

    def metrics_count(self, endpoint: str, status: int) -> None:
        """Count one answered request."""
        self.hub.metrics.count_request(endpoint, status)

    def forget(self, connection: HttpConnection) -> None:
        """Unregister a closed connection; tell the server when the last one is gone."""
        self.connections.discard(connection)
        if not self.connections and self.on_idle is not None:
            self.on_idle()


class HttpConnection(asyncio.Protocol):
    """One client connection: h11 request cycles, then possibly an event stream."""

    __slots__ = (
        "_server",
        "_loop",
        "_transport",
        "_h11",
        "_state",
        "_request",
        "_body",
        "_body_size",
        "_deadline",
        "_timer",
        "_timer_at",
        "_hold",
        "_routes",
        "_peer_ip",
        "_trusted_peer",
        "_connection_key",
        "_stream_key",
        "_throttled_for",
        "_expires_at",
        "_expiry_noticed",
        "_ignored",
        "peer",
        "client",
        "subscriber",
    )

    def __init__(self, server: ServerState, routes: dict[str, tuple[bytes, ...]] = ROUTES) -> None:
        self._server = server
        self._routes = routes
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._h11: h11.Connection | None = None
        self._state = ConnState.IDLE
        self._request: h11.Request | None = None
        # Chunks of the request body; None until one arrives, so that a stream's
        # connection (which has no body) holds no list.
        self._body: list[bytes] | None = None
        self._body_size = 0
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        # Why requests are not being read or answered (_WRITE_PAUSED, _BACKLOG); 0: they are.
        self._hold = 0
        self._peer_ip = ""
        self._trusted_peer = False
        self._connection_key: str | None = None  # counted in limits.connections
        self._stream_key: str | None = None  # counted in limits.streams
        self._throttled_for: float | None = None  # over the connection rate: wait this
        self._expires_at: float | None = None  # loop time the stream's token expires
        self._expiry_noticed = False
        self._ignored = 0  # bytes a streaming client sent after its request
        self.peer = ""
        #: The client's address: the peer's, or the one a trusted proxy reported.
        self.client = ""
        self.subscriber: Subscriber | None = None

    @property
    def state(self) -> ConnState:
        """The connection's current state."""
        return self._state

    def _set_state(self, state: ConnState, idle_timeout: float | None = None) -> None:
        self._state = state
        if state is ConnState.IDLE:
            config = self._server.config
            self._set_deadline(config.keepalive_timeout if idle_timeout is None else idle_timeout)
        elif state is ConnState.REQUEST:
            self._set_deadline(self._server.config.request_timeout)
        else:
            self._deadline = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if state is ConnState.CLOSING:
                # close() waits for the write buffer to drain, which a client that
                # never reads never lets happen: past slow_timeout it is aborted, so a
                # closed connection cannot hold its buffer and its slot for ever.
                self._set_deadline(self._server.config.slow_timeout)

    # -- asyncio callbacks ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport but implement it.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        server = self._server
        config = server.config
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self._peer_ip = str(peer[0])
            self.peer = f"{peer[0]}:{peer[1]}"
        else:
            self.peer = str(peer or "")
        self.client = self._peer_ip
        self._trusted_peer = server.proxies.is_trusted(self._peer_ip)
        if self._peer_ip and not self._trusted_peer:
            key = client_key(self._peer_ip)
            if not server.limits.connections.acquire(key):
                # One address holding this many sockets is not a browser: close at once,
                # before the connection costs a request timeout.
                server.hub.metrics.rejected["limit"] += 1
                self._set_state(ConnState.CLOSING)
                transport.abort()
                return
            self._connection_key = key
            wait = server.limits.connection_rate.take(key, self._loop.time())
            if wait:
                self._throttled_for = wait  # its first request is turned away politely
        sock = transport.get_extra_info("socket")
        if sock is not None:
            tune_socket(sock, config.dead_peer_timeout)
        transport.set_write_buffer_limits(
            high=config.write_high_water, low=config.write_high_water // 4
        )
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=config.max_header_size)
        self._server.connections.add(self)
        # A new connection gets the request timeout, not the keep-alive one: a client
        # that connects and says nothing is a slowloris until proven otherwise.
        self._set_state(ConnState.IDLE, config.request_timeout)

    def data_received(self, data: bytes) -> None:
        if self._state is not ConnState.IDLE and self._state is not ConnState.REQUEST:
            # A stream's client has nothing more to say; what it sends is discarded
            # unread rather than buffered, and one that keeps talking is cut off.
            self._ignored += len(data)
            if self._ignored > self._server.config.max_header_size and self.subscriber:
                self.subscriber.drop("limit")
            return
        try:
            if self._state is ConnState.IDLE:
                self._set_state(ConnState.REQUEST)
            assert self._h11 is not None
            self._h11.receive_data(data)
            self._process()
        except Exception:
            self._crash()

    def eof_received(self) -> bool | None:
        if self._h11 is not None and self._state is ConnState.REQUEST:
            try:
                self._h11.receive_data(b"")
                self._process()
            except Exception:
                self._crash()
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._set_state(ConnState.CLOSED)
        self._h11 = None
        server = self._server
        if self._connection_key is not None:
            server.limits.connections.release(self._connection_key)
            self._connection_key = None
        if self._stream_key is not None:
            server.limits.streams.release(self._stream_key)
            self._stream_key = None
        subscriber = self.subscriber
        if subscriber is not None:
            self.subscriber = None
            hub = server.hub
            hub.unsubscribe(subscriber)
            reason = subscriber.close_reason
            if reason is None:
                timed_out = isinstance(exc, OSError) and exc.errno == errno.ETIMEDOUT
                reason = "dead_peer" if timed_out else "client_closed"
            hub.count_disconnect(reason)
            access_logger.info(
                "%s stream closed topics=%s reason=%s duration=%.1fs bytes=%d",
                self._who(),
                ",".join(subscriber.topics),
                reason,
                self._loop.time() - subscriber.started_at,
                subscriber.sent,
            )
        server.forget(self)

    def pause_writing(self) -> None:
        if self.subscriber is not None:
            self.subscriber.pause(self._loop.time())
        else:
            # An ordinary client not reading its answers: stop reading and answering
            # its requests until it has drained them.
            self._hold_requests(_WRITE_PAUSED)

    def resume_writing(self) -> None:
        if self.subscriber is not None:
            self.subscriber.resume()
        else:
            self._release_requests(_WRITE_PAUSED)

    # -- request cycle ------------------------------------------------------------------

    def _hold_requests(self, reason: int) -> None:
        if not self._hold and self._transport is not None and not self._transport.is_closing():
            self._transport.pause_reading()
        self._hold |= reason

    def _release_requests(self, reason: int) -> None:
        if not self._hold & reason:
            return
        self._hold &= ~reason
        if self._hold or self._state is ConnState.CLOSING or self._state is ConnState.CLOSED:
            return
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()
        if self._state is ConnState.REQUEST:
            # Pipelined requests that arrived earlier wait in h11's buffer, and no new
            # data may come to wake them: answer them now.
            try:
                self._process()
            except Exception:
                self._crash()

    def _work_backlog(self) -> None:
        """The next turn of a connection that had more pipelined requests than
        ``PIPELINE_BATCH``."""
        self._release_requests(_BACKLOG)

    def _process(self) -> None:
        """Handle every complete h11 event in the buffer (pipelined requests too), as
        long as the client reads what it is sent.

        Once the transport pauses writing, no further request is answered until the
        client has drained its answers (``resume_writing`` picks up where this left
        off): pipelined requests would otherwise pile up answers in memory however
        little the client reads, and keep the loop busy producing them. So what an
        ordinary connection holds unsent stays near the high-water mark plus one answer.

        And after ``PIPELINE_BATCH`` requests the rest wait for the next loop iteration
        (reading paused meanwhile), so that a connection packed with requests takes its
        turn with every other one instead of holding the loop until it is done.
        """
        started = 0
        while self._h11 is not None and self._state is ConnState.REQUEST and not self._hold:
            conn = self._h11
            if conn.their_state is h11.IDLE:
                if started == PIPELINE_BATCH:
                    self._hold_requests(_BACKLOG)
                    self._loop.call_soon(self._work_backlog)
                    return
                started += 1
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                # h11's reasons quote the offending bytes; the reason alone is enough.
                self._answer_error(exc.error_status_hint, str(exc).split(": bytearray(")[0])
                return
            if event is h11.NEED_DATA:
                if conn.their_state is h11.IDLE and not conn.trailing_data[0]:
                    self._set_state(ConnState.IDLE)
                return
            if event is h11.PAUSED:
                if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                    conn.start_next_cycle()
                    self._set_deadline(self._server.config.request_timeout)
                    continue
                return
            if isinstance(event, h11.Request):
                self._on_request(event)
            elif isinstance(event, h11.Data):
                self._on_body(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._on_end_of_message()
            elif isinstance(event, h11.ConnectionClosed):
                self._close()

    def _on_request(self, request: h11.Request) -> None:
        self._request = request
        self._body = None
        self._body_size = 0
        if request.http_version not in (b"1.0", b"1.1"):
            self._answer(505, b"only HTTP/1.0 and HTTP/1.1 are supported\n", close=True)
            return
        # h11 bounds only a head that is still incomplete; one that arrived whole in a
        # single read is measured here, so the limit holds however the bytes arrive.
        head_size = len(request.target) + sum(len(k) + len(v) + 4 for k, v in request.headers)
        if head_size > self._server.config.max_header_size:
            self._answer(431, b"request header fields too large\n", close=True)
            return
        if not _single_framing(request.headers):
            # Both Content-Length and Transfer-Encoding: the shape of request smuggling.
            # Refused, and the connection closed (RFC 9112 6.1).
            self._answer(400, b"both Content-Length and Transfer-Encoding\n", close=True)
            return
        if request.http_version == b"1.0" and header_value(request.headers, b"transfer-encoding"):
            # HTTP/1.0 has no chunked framing: RFC 9112 6.1 calls this faulty framing.
            self._answer(400, b"Transfer-Encoding in an HTTP/1.0 request\n", close=True)
            return
        if self._trusted_peer:
            self.client = self._server.proxies.client(self._peer_ip, request.headers)
        path, query = parse_target_or_none(request.target)
        is_stream = (
            path == "/events"
            and request.method in (b"GET", b"HEAD")
            and query is not None
            and path in self._routes
        )
        if self._throttled_for is not None:
            wait, self._throttled_for = self._throttled_for, None
            self._refuse("too many new connections", wait, stream=is_stream)
            return
        if is_stream:
            assert query is not None
            self._on_events(request, query)
            return
        length = header_value(request.headers, b"content-length")
        if (
            length is not None
            and length.isdigit()
            and int(length) > self._server.config.max_event_size
        ):
            self._answer(413, b"payload too large\n", close=True)
            return
        assert self._h11 is not None
        if self._h11.they_are_waiting_for_100_continue:
            self._write(self._h11.send(h11.InformationalResponse(status_code=100, headers=[])))

    def _on_body(self, data: bytes) -> None:
        self._body_size += len(data)
        if self._body_size > self._server.config.max_event_size:
            self._answer(413, b"payload too large\n", close=True)
            return
        if self._body is None:
            self._body = [data]
        else:
            self._body.append(data)

    def _on_end_of_message(self) -> None:
        request = self._request
        if request is None:
            return
        try:
            body_bytes = b"".join(self._body) if self._body else b""
            status, body, content_type, headers = self._route(request, body_bytes)
        except RequestError as exc:
            status, body, content_type, headers = (
                exc.status,
                (exc.reason + "\n").encode(),
                _TEXT,
                _challenge(exc),
            )
        self._body = None
        self._answer(status, body, content_type=content_type, headers=headers)

    def _route(
        self, request: h11.Request, body: bytes
    ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        path, query = parse_target(request.target)
        allowed = self._routes.get(path)
        if allowed is None or (path == "/" and self._server.demo_page is None):
            raise RequestError("not found", 404)
        if request.method == b"OPTIONS":
            return self._options(request, allowed)
        if request.method not in allowed:
            return 405, b"method not allowed\n", _TEXT, [(b"allow", b", ".join(allowed))]
        server = self._server
        if path == "/publish":
            return self._publish(request, body, query)
        if path == "/healthz":
            if server.draining:
                return 503, b"draining\n", _TEXT, []
            return 200, b"ok\n", _TEXT, []
        if path == "/readyz":
            # Ready means: worth sending new subscribers to. Not while draining, nor
            # while the backend cannot deliver.
            if server.draining:
                return 503, b"draining\n", _TEXT, []
            if not server.hub.backend.healthy:
                return 503, b"backend unavailable\n", _TEXT, []
            return 200, b"ready\n", _TEXT, []
        if path == "/metrics":
            key = server.config.metrics_key
            if key is not None and not _key_matches(request, key):
                return (
                    401,
                    b"missing or wrong metrics key\n",
                    _TEXT,
                    [(b"www-authenticate", b"Bearer")],
                )
            exposition = server.hub.exposition(draining=server.draining)
            return 200, exposition, b"text/plain; version=0.0.4; charset=utf-8", []
        assert server.demo_page is not None
        return 200, server.demo_page, b"text/html; charset=utf-8", []

    def _options(
        self, request: h11.Request, allowed: tuple[bytes, ...]
    ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        """A CORS preflight (204 for an allowed origin, 403 otherwise), or a plain
        ``OPTIONS`` (204 with ``Allow``)."""
        methods = (*allowed, b"OPTIONS")
        if header_value(request.headers, b"access-control-request-method") is None:
            return 204, b"", _TEXT, [(b"allow", b", ".join(methods))]
        origin = header_value(request.headers, b"origin")
        cors = self._server.cors
        if not cors.allows(origin):
            raise RequestError("origin not allowed", 403)
        return 204, b"", _TEXT, cors.preflight(origin, allowed)

    def _publish(
        self, request: h11.Request, body: bytes, query: dict[str, list[str]]
    ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        server = self._server
        config = server.config
        if server.draining:
            raise RequestError("shutting down", 503)
        grants = server.auth.publisher(bearer_token(request.headers))
        wait = server.limits.publish_rate.take(grants.subject, self._loop.time())
        if wait:
            return _too_many("too many publishes", wait)
        publish = parse_publish(
            header_value(request.headers, b"content-type"),
            body,
            query,
            max_event_size=config.max_event_size,
            max_topics=config.max_topics,
        )
        grants.check_publish(publish.topics)
        try:
            event_id = self._server.hub.publish(
                publish.topics,
                publish.data,
                event=publish.event,
                id=publish.id,
                retry=publish.retry,
            )
        except InvalidEvent as exc:
            raise RequestError(str(exc)) from None
        return 200, (event_id + "\n").encode("utf-8"), _TEXT, []

    # -- event streams --------------------------------------------------------------------

    def _on_events(self, request: h11.Request, query: dict[str, list[str]]) -> None:
        server = self._server
        config = server.config
        try:
            topics = parse_topics(query.get("topic", []), config.max_topics)
        except RequestError as exc:
            server.hub.metrics.rejected["bad_request"] += 1
            self._answer(exc.status, (exc.reason + "\n").encode())
            return
        if server.draining:
            server.hub.metrics.rejected["draining"] += 1
            self._answer(503, b"shutting down\n", close=True)
            return
        try:
            grants = server.auth.subscriber(self._subscriber_token(request, query), topics)
        except AuthError as exc:
            server.hub.metrics.rejected["auth"] += 1
            self._answer_auth_error(exc)
            return
        if request.method == b"HEAD":
            self._answer(200, b"", content_type=None, headers=SSE_HEADERS)
            return
        key = client_key(self.client)
        if self._trusted_peer:
            # Behind a proxy the client's own connections are not seen: each stream
            # request stands for one.
            wait = server.limits.connection_rate.take(key, self._loop.time())
            if wait:
                self._refuse("too many new connections", wait, stream=True)
                return
        if not server.limits.open_stream(key, server.hub.subscriber_count):
            self._refuse("too many streams", None, stream=True)
            return
        self._stream_key = key
        raw_id = header_value(request.headers, b"last-event-id")
        last_event_id = (
            raw_id.decode("utf-8", "replace")
            if raw_id is not None
            else _first(query.get("lastEventID"))
        )
        conn = self._h11
        transport = self._transport
        assert conn is not None and transport is not None
        # h11 chooses the framing: chunked for HTTP/1.1, close-delimited for HTTP/1.0.
        chunked = conn.their_http_version != b"1.0"
        headers = SSE_HEADERS
        if server.cors.enabled:
            headers = SSE_HEADERS + server.cors.headers(header_value(request.headers, b"origin"))
        head = conn.send(h11.Response(status_code=200, headers=headers, reason=b"OK"))
        assert head is not None
        subscriber = Subscriber(
            transport,
            server.hub,
            topics,
            chunked=chunked,
            peer=self.peer,
            started_at=self._loop.time(),
        )
        self.subscriber = subscriber
        self._h11 = None  # h11's part is over: the body takes the fast path
        self._request = None
        self._set_state(ConnState.STREAMING)
        server.metrics_count("/events", 200)
        replay = server.hub.subscribe(subscriber, last_event_id)
        first = b"" if config.retry is None else encode_retry(config.retry)
        if replay.lost is not None:
            first += replay.lost
        if first and chunked:
            first = chunk(first)
        access_logger.info(
            '%s "GET %s HTTP/%s" 200 stream',
            self._who(),
            redact_target(request.target),
            conn.their_http_version.decode() if conn.their_http_version else "1.1",
        )
        subscriber.start(head + first, replay.records)
        if grants is not None and grants.expires_at is not None:
            self._arm_expiry(grants)

    def _subscriber_token(self, request: h11.Request, query: dict[str, list[str]]) -> str | None:
        """A subscriber's token: the ``Authorization`` header, else the cookie, else
        (only with ``allow_query_token``) the ``authorization`` query parameter."""
        token = bearer_token(request.headers) or cookie_value(request.headers, AUTH_COOKIE)
        if token is None and self._server.config.allow_query_token:
            token = _first(query.get("authorization"))
            if token is not None and token.lower().startswith("bearer "):
                token = token[7:].strip()
        return token or None

    def _arm_expiry(self, grants: Grants) -> None:
        """Time the stream's end to its token's expiry, with a notice ahead of it."""
        assert grants.expires_at is not None
        remaining = max(0.0, grants.expires_at - time.time())
        self._expires_at = self._loop.time() + remaining
        notice = self._server.config.token_expiry_notice
        self._set_deadline(max(0.0, remaining - notice))

    def _on_stream_timer(self) -> None:
        """The notice that the token is about to expire, then, at expiry, the end."""
        subscriber = self.subscriber
        expires_at = self._expires_at
        if subscriber is None or expires_at is None:
            return
        now = self._loop.time()
        if not self._expiry_noticed:
            self._expiry_noticed = True
            notice = json.dumps(
                {
                    "reason": "token_expiring",
                    "expires_in_ms": max(0, round((expires_at - now) * 1000)),
                }
            )
            payload = encode_event(notice, event=AUTH_EXPIRING_EVENT)
            subscriber.send(chunk(payload) if subscriber.chunked else payload)
            if expires_at > now:
                self._set_deadline(expires_at - now)
                return
        subscriber.finish(b"", "auth_expired")
        self._set_state(ConnState.CLOSING)

    def finish_stream(self, window_ms: int) -> None:
        """End the stream for shutdown: tell the client when to come back (a random
        delay within ``window_ms``, so clients do not all return at once) and close."""
        subscriber = self.subscriber
        if subscriber is None:
            return
        hint = encode_retry(random.randint(0, window_ms)) if window_ms else b""
        subscriber.finish(hint, "shutdown")
        self._set_state(ConnState.CLOSING)

    # -- refusing -----------------------------------------------------------------------------

    def _refuse(self, reason: str, wait: float | None, *, stream: bool) -> None:
        """Turn away a request over a limit so that its client comes back later.

        A browser's ``EventSource`` gives up for good on any answer but 200, so a stream
        request gets a 200 event stream holding only a comment and a ``retry:`` hint,
        and is closed: the browser reconnects after that delay. Anything else gets 429
        with ``Retry-After``.
        """
        metrics = self._server.hub.metrics
        metrics.rejected["limit"] += 1
        if not stream:
            status, body, _type, headers = _too_many(reason, wait or 1.0)
            self._answer(status, body, headers=headers, close=True)
            return
        retry = stream_retry_ms(wait, self._server.limits.limit_retry)
        body = encode_comment(reason) + encode_retry(retry)
        self._answer(
            200,
            body,
            content_type=_EVENT_STREAM,
            headers=[(b"cache-control", b"no-cache")],
            close=True,
        )

    def _answer_auth_error(self, exc: AuthError) -> None:
        self._answer(exc.status, (exc.reason + "\n").encode(), headers=_challenge(exc))

    # -- answering --------------------------------------------------------------------------

    def _answer(
        self,
        status: int,
        body: bytes,
        *,
        content_type: bytes | None = _TEXT,
        headers: Sequence[tuple[bytes, bytes]] = (),
        close: bool = False,
    ) -> None:
        """Send a complete response; close or get ready for the next request."""
        conn = self._h11
        request = self._request
        if conn is None or conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            self._close()
            return
        all_headers = list(headers)
        if self._server.cors.enabled and request is not None:
            all_headers += self._server.cors.headers(header_value(request.headers, b"origin"))
        if content_type is not None and status != 204:
            # content_type=None is the head of a HEAD /events: framing left to h11.
            # A 204 carries neither (RFC 9110 8.6: no Content-Length on a 204).
            all_headers.append((b"content-type", content_type))
            all_headers.append((b"content-length", str(len(body)).encode()))
        close = close or self._server.draining or conn.their_state is h11.ERROR
        if close:
            all_headers.append((b"connection", b"close"))
        parts = [
            conn.send(h11.Response(status_code=status, headers=all_headers, reason=_reason(status)))
        ]
        if body and (request is None or request.method != b"HEAD"):
            parts.append(conn.send(h11.Data(data=body)))
        parts.append(conn.send(h11.EndOfMessage()))
        self._write(b"".join(p for p in parts if p))
        path = _path_of(request)
        self._server.metrics_count(path, status)
        access_logger.info(
            '%s "%s %s" %d',
            self._who(),
            request.method.decode("latin-1") if request is not None else "-",
            redact_target(request.target) if request is not None else "-",
            status,
        )
        self._request = None
        if close or _must_close(conn):
            self._close(linger=_still_sending(conn))
        elif conn.their_state is h11.DONE:
            conn.start_next_cycle()
            self._set_state(ConnState.REQUEST if conn.trailing_data[0] else ConnState.IDLE)

    def _who(self) -> str:
        """The client for log lines: its address, and the proxy's when there is one."""
        if self._trusted_peer and self.client != self._peer_ip:
            return f"{self.client} via {self.peer}"
        return self.peer

    def _answer_error(self, status: int, reason: str) -> None:
        status = status if 400 <= status < 600 else 400
        self._answer(status, (reason + "\n").encode("utf-8", "replace"), close=True)

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _close(self, *, linger: bool = False) -> None:
        """Close the connection. With ``linger`` (the client may still be sending, as
        when a body is refused midway) only our side is shut and what arrives is read
        and discarded until the client closes or ``LINGER_TIMEOUT`` passes: closing with
        unread data would make the kernel send a reset that can destroy the answer
        before the client reads it."""
        if self._state is ConnState.CLOSING or self._state is ConnState.CLOSED:
            return
        self._set_state(ConnState.CLOSING)
        transport = self._transport
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
        if self._state is ConnState.IDLE:
            self._close()

    def abort(self) -> None:
        """Drop the connection at once, whatever it is doing."""
        if self.subscriber is not None and self.subscriber.close_reason is None:
            self.subscriber.close_reason = "shutdown"
        if self._state is not ConnState.CLOSED:
            self._set_state(ConnState.CLOSING)
            if self._transport is not None:
                self._transport.abort()

    def _crash(self) -> None:
        logger.exception("unexpected error on connection %s; aborting it", self.peer)
        if self.subscriber is not None and self.subscriber.close_reason is None:
            self.subscriber.close_reason = "error"
        self.abort()

    # -- timers ---------------------------------------------------------------------------

    def _set_deadline(self, seconds: float) -> None:
        # One timer per connection, moved only when the deadline comes earlier; when it
        # fires early it re-arms itself for the current deadline (no cancel per request).
        deadline = self._loop.time() + seconds
        self._deadline = deadline
        if self._timer is None or deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None:
            return
        if self._loop.time() < deadline:
            self._timer_at = deadline
            self._timer = self._loop.call_at(deadline, self._on_timer)
            return
        if self._state is ConnState.REQUEST:
            self._answer(408, b"request timeout\n", close=True)
        elif self._state is ConnState.STREAMING:
            self._on_stream_timer()
        elif self._state is ConnState.CLOSING:
            if self._transport is not None:
                self._transport.abort()  # lingered long enough
        else:
            self._close()


def parse_target_or_none(target: bytes) -> tuple[str | None, dict[str, list[str]] | None]:
    """``parse_target`` that reports failure as ``None`` (the error is raised again,
    with its status, when the request is routed)."""
    try:
        return parse_target(target)
    except RequestError:
        return None, None


def _key_matches(request: h11.Request, key: str) -> bool:
    """Whether the request's bearer token is ``key``, compared in constant time."""
    return key_matches(bearer_token(request.headers), key)


def _single_framing(headers: Sequence[tuple[bytes, bytes]]) -> bool:
    """Not both Content-Length and Transfer-Encoding. (h11 already refuses differing
    Content-Lengths and merges identical ones, and refuses a repeated or unknown
    Transfer-Encoding with 501.)"""
    names = {name for name, _value in headers}
    return not (b"content-length" in names and b"transfer-encoding" in names)


def _challenge(exc: RequestError) -> list[tuple[bytes, bytes]]:
    """``WWW-Authenticate`` for a refused credential, as RFC 6750 asks."""
    if isinstance(exc, AuthError) and exc.status in (401, 403):
        return [(b"www-authenticate", exc.challenge)]
    return []


def _too_many(reason: str, wait: float) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
    """429 with ``Retry-After``."""
    retry_after = str(retry_after_seconds(wait)).encode()
    return 429, (reason + "\n").encode(), _TEXT, [(b"retry-after", retry_after)]


def _still_sending(conn: h11.Connection) -> bool:
    """Whether the client may still be sending the request we answered."""
    return conn.their_state is not h11.DONE and conn.their_state is not h11.CLOSED


def _must_close(conn: h11.Connection) -> bool:
    # A function of its own: after send(), mypy still believes the state it narrowed.
    return conn.our_state is h11.MUST_CLOSE


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


def _first(values: list[str] | None) -> str | None:
    return values[0] if values else None


def _path_of(request: h11.Request | None) -> str:
    if request is None:
        return "other"
    path = request.target.partition(b"?")[0].decode("latin-1")
    return path if path in ROUTES else "other"
