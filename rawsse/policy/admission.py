"""Who gets in: the decisions on a new connection, a stream and a publish, from the
configured limits and credentials.

Each decision is one call that either lets the request through (returning what the
caller must remember to release) or raises: :class:`Refused` over a limit, ``AuthError``
without the right credentials. The HTTP layer turns those into answers at its one
exception boundary (:func:`rawsse.server.routes.error_reply`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rawsse.errors import RequestError
from rawsse.h1.parse import Query, bearer_token, cookie_value
from rawsse.policy.auth import Authorizer, Grants
from rawsse.policy.limits import BACKEND_RETRY_WAIT, Limits, client_key, stream_retry_ms
from rawsse.policy.mercure_auth import MercureAuth
from rawsse.policy.proxy import ProxyResolver

if TYPE_CHECKING:
    from rawsse.config import Config
    from rawsse.h1.exchange import Request

__all__ = ["AUTH_COOKIE", "Admission", "Refused"]

logger = logging.getLogger("rawsse.limits")

#: An address being turned away is logged at most once per this many seconds.
SHED_LOG_INTERVAL = 60

#: Addresses remembered for that; past it, those logged longer ago are forgotten.
SHED_LOG_KEYS = 10_000

#: The cookie an ``EventSource`` (which cannot set headers) carries its token in.
AUTH_COOKIE = b"rawsse_authorization"


class Refused(RequestError):
    """Over a limit: the client should come back later.

    Attributes:
        wait: seconds until the limit allows it again, when a rate limit says so.
        retry_ms: the ``retry:`` hint for a refused event stream.
        label: the ``rawsse_rejected_total`` reason it counts under.
    """

    def __init__(
        self,
        reason: str,
        wait: float | None,
        retry_ms: int,
        *,
        close: bool,
        status: int = 429,
        label: str = "limit",
    ) -> None:
        super().__init__(reason, status, close=close, label=label)
        self.wait = wait
        self.retry_ms = retry_ms
        self.label: str = label


class Admission:
    """The server's limits, proxies and credentials, applied to one request at a time."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.auth = Authorizer(config)
        #: Mercure mode's credentials (``None`` when it is off).
        self.mercure = MercureAuth(config) if config.mercure else None
        self.limits = Limits(config)
        self.proxies = ProxyResolver(config.trusted_proxies)
        self._shed_logged: dict[str, float] = {}

    def _refused(self, reason: str, wait: float | None, *, close: bool = True) -> Refused:
        return Refused(reason, wait, stream_retry_ms(wait, self.limits.limit_retry), close=close)

    def _shed(self, key: str, why: str, now: float) -> None:
        """Log that ``key`` is being turned away, and why: once per address per
        ``SHED_LOG_INTERVAL``, not once per request (a flood must not flood the log)."""
        logged = self._shed_logged
        last = logged.get(key)
        if last is not None and now - last < SHED_LOG_INTERVAL:
            return
        if len(logged) >= SHED_LOG_KEYS:
            for old in [k for k, at in logged.items() if now - at >= SHED_LOG_INTERVAL]:
                del logged[old]
        logged[key] = now
        logger.warning(
            "turning away %s: %s; not logged again for this address for %ds (if every "
            "client shows one address, rawsse is behind a proxy it does not trust: "
            "--trusted-proxy)",
            key,
            why,
            SHED_LOG_INTERVAL,
        )

    # -- connections --------------------------------------------------------------------

    def connection(self, peer_ip: str, now: float) -> tuple[bool, str | None, float | None] | None:
        """Admit a new connection from ``peer_ip``.

        Returns:
            ``None`` to close it at once (its address holds too many sockets), else
            whether the peer is a trusted proxy, the key its socket is counted under
            (release it with :meth:`release_connection`), and, over the connection
            rate, how long it should wait (its first request is then refused).
        """
        trusted = self.proxies.is_trusted(peer_ip)
        if not peer_ip or trusted:
            return trusted, None, None
        key = client_key(peer_ip)
        if not self.limits.connections.acquire(key):
            self._shed(key, "too many open connections (--max-connections-per-address)", now)
            return None
        wait = self.limits.connection_rate.take(key, now)
        return False, key, wait or None

    def release_connection(self, key: str) -> None:
        self.limits.connections.release(key)

    def backend_unavailable(self, reason: str = "backend unavailable") -> Refused:
        """The refusal of a request the backend cannot serve now (503; a stream gets
        its ``retry:`` hint)."""
        wait = BACKEND_RETRY_WAIT
        return Refused(
            reason,
            wait,
            stream_retry_ms(wait, self.limits.limit_retry),
            close=False,
            status=503,
            label="backend",
        )

    def is_publisher(self, request: Request) -> bool:
        """Whether ``request`` is a publish with a valid credential: it is governed by
        that credential's publish rate, not by its address's connection rate (a
        publisher that opens a connection per publish is not an anonymous flood)."""
        if request.method != b"POST" or request.target.partition(b"?")[0] != b"/publish":
            return False
        try:
            self.auth.publisher(bearer_token(request.headers))
        except RequestError:
            return False
        return True

    def throttled(self, wait: float, peer_ip: str, now: float) -> Refused:
        """The refusal of a connection's first request, over the connection rate."""
        self._shed(client_key(peer_ip), "too many new connections (--conn-rate)", now)
        return self._refused("too many new connections", wait)

    def client(self, peer_ip: str, trusted: bool, request: Request) -> str:
        """The client's address: the peer's, or what a trusted proxy reports."""
        return self.proxies.forwarded_client(peer_ip, request.headers) if trusted else peer_ip

    # -- streams ------------------------------------------------------------------------

    def stream(
        self,
        request: Request,
        query: Query,
        topics: Sequence[str],
        *,
        client: str,
        trusted: bool,
        now: float,
        open_streams: int,
    ) -> tuple[Grants | None, str]:
        """Admit an event stream on ``topics``.

        Returns:
            Its grants (``None`` without subscribe authorization) and the key its stream
            is counted under (release it with :meth:`release_stream`).

        Raises:
            AuthError: no valid token, or one that does not cover a topic.
            Refused: over the connection rate (behind a proxy) or a stream cap.
        """
        grants = self.auth.subscriber(self._subscriber_token(request, query), topics)
        return grants, self.stream_slot(
            client=client, trusted=trusted, now=now, open_streams=open_streams
        )

    def stream_slot(self, *, client: str, trusted: bool, now: float, open_streams: int) -> str:
        """Count a new stream from ``client`` against the stream caps (and, behind a
        proxy, the connection rate); the key to release it with
        (:meth:`release_stream`).

        Raises:
            Refused: over the connection rate (behind a proxy) or a stream cap.
        """
        key = client_key(client)
        if trusted:
            # Behind a proxy the client's own connections are not seen: each stream
            # request stands for one.
            wait = self.limits.connection_rate.take(key, now)
            if wait:
                self._shed(key, "too many new streams (--conn-rate)", now)
                raise self._refused("too many new connections", wait)
        if not self.limits.open_stream(key, open_streams):
            self._shed(key, "too many streams (--max-streams-per-address, --max-streams)", now)
            raise self._refused("too many streams", None)
        return key

    def stream_grants(self, request: Request, query: Query, topics: Sequence[str]) -> None:
        """Check a stream's credentials only (for ``HEAD``, which opens no stream)."""
        self.auth.subscriber(self._subscriber_token(request, query), topics)

    def release_stream(self, key: str) -> None:
        self.limits.streams.release(key)

    def _subscriber_token(self, request: Request, query: Query) -> str | None:
        """A subscriber's token: the ``Authorization`` header, else the cookie, else
        (only with ``allow_query_token``) the ``authorization`` query parameter."""
        headers = request.headers
        token = bearer_token(headers) or cookie_value(headers, AUTH_COOKIE)
        if token is None and self.config.allow_query_token:
            values = query.get("authorization")
            token = values[0] if values else None
            if token is not None and token.lower().startswith("bearer "):
                token = token[7:].strip()
        return token or None

    # -- publishing ---------------------------------------------------------------------

    def publish(self, request: Request, now: float) -> Grants:
        """Admit a publish: the publisher's grants (topics are checked once the body is
        read, by :meth:`Grants.check_publish`).

        Raises:
            RequestError: 403 when publishing over HTTP is off.
            AuthError: no or a wrong credential.
            Refused: over the credential's publish rate (429; the connection stays).
        """
        grants = self.publisher(request)
        self.take_publish(grants, now)
        return grants

    def publisher(self, request: Request) -> Grants:
        """The grants of a publish's credential, without spending a publish (a batch
        spends one per line, :meth:`take_publish`).

        Raises:
            RequestError: 403 when publishing over HTTP is off.
            AuthError: no or a wrong credential.
        """
        return self.auth.publisher(bearer_token(request.headers))

    def take_publish(self, grants: Grants, now: float) -> None:
        """Spend one of the credential's publishes.

        Raises:
            Refused: over its publish rate (429; the connection stays).
        """
        wait = self.limits.publish_rate.take(grants.subject, now)
        if wait:
            raise self._refused("too many publishes", wait, close=False)
