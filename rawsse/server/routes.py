"""What each path answers: one route table, one :class:`Reply` type, and one place
where a refused request becomes an answer (:func:`error_reply`).

A handler returns a :class:`Reply`, an awaitable of one (a publish to a backend that
must await), or, for ``GET /events``, a :class:`StreamStart` that the connection turns
into an event stream. Handlers raise :class:`~rawsse.errors.RequestError` (and its
kinds: ``AuthError``, :class:`~rawsse.policy.admission.Refused`) for every refusal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from rawsse.errors import RequestError
from rawsse.events import encode_comment, encode_retry
from rawsse.h1.parse import (
    SSE_HEADERS,
    Query,
    bearer_token,
    parse_publish,
    parse_target,
)
from rawsse.h1.replies import Reply, text
from rawsse.hub.metrics import process_gauges
from rawsse.policy.admission import Refused
from rawsse.policy.auth import AuthError, key_matches
from rawsse.policy.limits import retry_after_seconds
from rawsse.server.batch import NDJSON, BatchPublish
from rawsse.server.mercure import HUB_PATH, MercureRoutes
from rawsse.server.shared import Shared, publish_and_answer
from rawsse.server.stream import StreamStart
from rawsse.server.subscriptions import SUBSCRIPTIONS_PATH as SUBSCRIPTIONS
from rawsse.server.subscriptions_api import SubscriptionsApi
from rawsse.topics import parse_topics

if TYPE_CHECKING:
    from rawsse.h1.exchange import Request

__all__ = [
    "METRICS_ROUTES",
    "PUBLIC_ROUTES",
    "ROUTES",
    "Reply",
    "Router",
    "Shared",
    "error_reply",
    "path_label",
]

EVENT_STREAM = b"text/event-stream; charset=utf-8"
_METRICS_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
_HTML = b"text/html; charset=utf-8"

#: Methods each path answers; anything else on a known path is 405 with ``Allow``.
ROUTES: dict[str, tuple[bytes, ...]] = {
    "/events": (b"GET", b"HEAD"),
    "/publish": (b"POST",),
    "/healthz": (b"GET", b"HEAD"),
    "/readyz": (b"GET", b"HEAD"),
    "/metrics": (b"GET", b"HEAD"),
    "/": (b"GET", b"HEAD"),
}

#: Mercure mode's hub URL: subscribe and publish.
_HUB_METHODS = (b"GET", b"HEAD", b"POST")
#: Mercure's subscription API (with ``mercure_subscriptions``).
_API_METHODS = (b"GET", b"HEAD")


def _below(path: str, root: str) -> bool:
    return path == root or path.startswith(root + "/")


_HUB_PATH_BYTES = HUB_PATH.encode()

#: What a separate metrics listener (``metrics_port``) answers: scrapes and probes only.
METRICS_ROUTES = {path: ROUTES[path] for path in ("/metrics", "/healthz", "/readyz")}

#: The main listener's routes when metrics have a listener of their own.
PUBLIC_ROUTES = {path: methods for path, methods in ROUTES.items() if path != "/metrics"}


Outcome = Reply | Awaitable[Reply] | StreamStart


def error_reply(exc: RequestError, *, stream: bool = False) -> Reply:
    """The answer to a refused request: the one place an exception becomes a reply.

    A browser's ``EventSource`` gives up for good on any answer but 200, so a stream
    request over a limit gets a 200 event stream holding only a comment and a ``retry:``
    hint, and is closed: the browser reconnects after that delay. Other requests over a
    limit get 429 with ``Retry-After``; refused credentials get RFC 6750's challenge.
    """
    if isinstance(exc, Refused):
        if stream:
            body = encode_comment(exc.reason) + encode_retry(exc.retry_ms)
            return Reply(200, body, EVENT_STREAM, ((b"cache-control", b"no-cache"),), True)
        retry_after = str(retry_after_seconds(exc.wait or 1.0)).encode()
        return text(exc.status, exc.reason, (b"retry-after", retry_after), close=exc.close)
    if isinstance(exc, AuthError) and exc.status in (401, 403):
        return text(exc.status, exc.reason, (b"www-authenticate", exc.challenge), close=exc.close)
    return text(exc.status, exc.reason, close=exc.close)


def path_label(request: Request | None) -> str:
    """The request's path as a metrics label: a route, or ``other``."""
    if request is None:
        return "other"
    path = request.target.partition(b"?")[0].decode("latin-1")
    return path if path in ROUTES or path == HUB_PATH else "other"


class Router:
    """The routes of one listener, answered from the server's shared state."""

    def __init__(self, server: Shared, routes: dict[str, tuple[bytes, ...]]) -> None:
        self._server = server
        self._mercure: MercureRoutes | None = None
        self._subscriptions: SubscriptionsApi | None = None
        if server.config.mercure and "/events" in routes:
            routes = {**routes, HUB_PATH: _HUB_METHODS}
            self._mercure = MercureRoutes(server)
            if server.subscriptions is not None:
                self._subscriptions = self._mercure.subscriptions_api(server.subscriptions)
        self._routes = routes
        self._handlers: dict[str, Callable[[Request, Query, float], Reply | Awaitable[Reply]]] = {
            "/publish": self._publish,
            "/healthz": self._healthz,
            "/readyz": self._readyz,
            "/metrics": self._metrics,
            "/": self._demo,
        }

    def is_stream(self, request: Request) -> bool:
        """Whether ``request`` asks for an event stream (so a refusal must be one)."""
        if request.method not in (b"GET", b"HEAD"):
            return False
        path = request.target.partition(b"?")[0]
        if path == b"/events":
            return "/events" in self._routes
        return path == _HUB_PATH_BYTES and self._mercure is not None

    def route(self, request: Request, *, client: str, trusted: bool, now: float) -> Outcome:
        """Answer ``request`` (or admit its stream).

        Raises:
            RequestError: every refusal; answer it with :func:`error_reply`.
        """
        path, query = parse_target(request.target)
        allowed = self._routes.get(path)
        if allowed is None and self._subscriptions is not None and _below(path, SUBSCRIPTIONS):
            if request.method == b"OPTIONS":
                return self._options(request, _API_METHODS)
            if request.method not in _API_METHODS:
                return text(405, "method not allowed", (b"allow", b", ".join(_API_METHODS)))
            return self._subscriptions.answer(request, query)
        if allowed is None or (path == "/" and self._server.demo_page is None):
            raise RequestError("not found", 404)
        if request.method == b"OPTIONS":
            return self._options(request, allowed)
        if request.method not in allowed:
            return text(405, "method not allowed", (b"allow", b", ".join(allowed)))
        if path == "/events":
            return self._events(request, query, client=client, trusted=trusted, now=now)
        if path == HUB_PATH and self._mercure is not None:
            if request.method == b"POST":
                return self._mercure.publish(request, query, now)
            return self._mercure.subscribe(request, query, client=client, trusted=trusted, now=now)
        return self._handlers[path](request, query, now)

    def _healthz(self, request: Request, query: Query, now: float) -> Reply:
        return text(503, "draining") if self._server.draining else text(200, "ok")

    def _readyz(self, request: Request, query: Query, now: float) -> Reply:
        # Ready means: worth sending new subscribers to. Not while draining, nor while
        # the backend cannot deliver.
        if self._server.draining:
            return text(503, "draining")
        if not self._server.hub.backend.healthy:
            return text(503, "backend unavailable")
        return text(200, "ready")

    def _metrics(self, request: Request, query: Query, now: float) -> Reply:
        server = self._server
        key = server.config.metrics_key
        if key is not None and not key_matches(bearer_token(request.headers), key):
            return text(401, "missing or wrong metrics key", (b"www-authenticate", b"Bearer"))
        hub = server.hub
        gauges = process_gauges(draining=server.draining)  # the server's, not the hub's
        return Reply(200, hub.metrics.exposition(hub.gauges(), gauges), _METRICS_TYPE)

    def _demo(self, request: Request, query: Query, now: float) -> Reply:
        assert self._server.demo_page is not None
        return Reply(200, self._server.demo_page, _HTML)

    def _options(self, request: Request, allowed: tuple[bytes, ...]) -> Reply:
        """A CORS preflight (204 for an allowed origin, 403 otherwise), or a plain
        ``OPTIONS`` (204 with ``Allow``)."""
        if request.header(b"access-control-request-method") is None:
            return Reply(204, headers=((b"allow", b", ".join((*allowed, b"OPTIONS"))),))
        origin = request.header(b"origin")
        cors = self._server.cors
        if not cors.allows(origin):
            raise RequestError("origin not allowed", 403)
        return Reply(204, headers=tuple(cors.preflight(origin, allowed)))

    def _publish(self, request: Request, query: Query, now: float) -> Reply | Awaitable[Reply]:
        server = self._server
        config = server.config
        if server.draining:
            raise RequestError("shutting down", 503)
        grants = server.admission.publish(request, now)
        publish = parse_publish(
            request.header(b"content-type"), request.body, query, max_topics=config.max_topics
        )
        grants.check_publish(publish.topics)
        return publish_and_answer(
            server,
            publish.topics,
            publish.data,
            _published,
            event=publish.event,
            id=publish.id,
            retry=publish.retry,
        )

    def streams_body(self, request: Request) -> bool:
        """Whether ``request`` (its head) is a batch publish, whose body is published as
        it arrives instead of being read whole first."""
        return (
            request.method == b"POST"
            and request.target.partition(b"?")[0] == b"/publish"
            and "/publish" in self._routes
            and _mime(request.header(b"content-type")) == NDJSON
        )

    def open_batch(self, request: Request, clock: Callable[[], float]) -> BatchPublish:
        """Admit a batch publish (its head): what its lines are fed to.

        ``clock`` is the loop's time, for the publish rate each line spends.

        Raises:
            RequestError: the refusals of a publish that do not depend on its events.
        """
        server = self._server
        if server.draining:
            raise RequestError("shutting down", 503)
        _path, query = parse_target(request.target)
        if "topic" in query:
            raise RequestError("a batch takes its topics from its lines, not the query")
        grants = server.admission.publisher(request)
        return BatchPublish(server.hub, server.admission, grants, clock, lambda: server.draining)

    def _events(
        self, request: Request, query: Query, *, client: str, trusted: bool, now: float
    ) -> Reply | StreamStart:
        server = self._server
        topics = parse_topics(query.get("topic", []), server.config.max_topics)
        if server.draining:
            raise RequestError("shutting down", 503, close=True, label="draining")
        if not server.hub.backend.healthy:
            raise server.admission.backend_unavailable()
        if request.method == b"HEAD":
            server.admission.stream_grants(request, query, topics)
            return Reply(200, content_type=None, headers=tuple(SSE_HEADERS))
        grants, key = server.admission.stream(
            request,
            query,
            topics,
            client=client,
            trusted=trusted,
            now=now,
            open_streams=server.hub.subscriber_count,
        )
        raw_id = request.header(b"last-event-id")
        if raw_id is not None:
            last_event_id: str | None = raw_id.decode("utf-8", "replace")
        else:
            values = query.get("lastEventID")
            last_event_id = values[0] if values else None
        ready = server.hub.ready(topics, last_event_id)
        greeting = b""
        if query.get("probe") == ["1"]:
            greeting = probe_greeting(request, client=client, trusted=trusted)
        return StreamStart(topics, grants, last_event_id, key, ready, greeting)


def _mime(content_type: bytes | None) -> bytes:
    return (content_type or b"").split(b";")[0].strip().lower()


def probe_greeting(request: Request, *, client: str, trusted: bool) -> bytes:
    """The comment a ``?probe=1`` stream starts with: the client's address as the hub
    sees it, whether a forwarded-address header came, and whether it was believed (the
    connection came from a trusted proxy). Only the client's own address is told."""
    forwarded = any(name in (b"x-forwarded-for", b"x-real-ip") for name, _ in request.headers)
    return encode_comment(
        f"rawsse-probe client={client} forwarded={'yes' if forwarded else 'no'} "
        f"trusted={'yes' if trusted else 'no'}"
    )


def _published(event_id: str) -> Reply:
    return Reply(200, (event_id + "\n").encode("utf-8"))
