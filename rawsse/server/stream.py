"""An event stream's session: the hand-over from the HTTP exchange, the token-expiry
notice, and the end.

The event-stream body deliberately takes a fast path around h11. Once h11 has written
the head (:meth:`rawsse.h1.exchange.Exchange.stream_head`) the exchange is dropped, and the
hub writes pre-encoded bytes (the same object to every subscriber: plain for HTTP/1.0's
close-delimited body, one chunk for HTTP/1.1's chunked body) straight to the transport.
Letting h11 frame each event would mean one ``Data`` event, one framing and one copy per
subscriber per event. What h11 would have guaranteed we keep ourselves: a chunk is never
empty (an empty chunk ends the body) and the stream ends with the terminating chunk. Do
not "fix" this by sending events through h11.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rawsse.backends.base import NOTHING, Replay
from rawsse.errors import BackendUnavailable
from rawsse.events import RESERVED_EVENT_PREFIX, encode_comment, encode_event, encode_retry
from rawsse.hub.subscriber import Subscriber, finish_with_retry
from rawsse.policy.limits import BACKEND_RETRY_WAIT, stream_retry_ms

if TYPE_CHECKING:
    import asyncio

    from rawsse.hub.hub import Hub
    from rawsse.policy.auth import Grants

__all__ = [
    "AUTH_EXPIRING_EVENT",
    "Expiry",
    "StreamSession",
    "StreamStart",
    "expiry_notice",
    "open_stream",
]

logger = logging.getLogger("rawsse.server")
access_logger = logging.getLogger("rawsse.access")


@dataclass(frozen=True, slots=True)
class StreamStart:
    """An admitted ``GET /events``: what the connection needs to start the stream."""

    topics: tuple[str, ...]
    grants: Grants | None
    last_event_id: str | None
    stream_key: str
    #: ``None``, or what to await before answering: the backend getting ready to
    #: deliver the topics (:meth:`rawsse.hub.hub.Hub.ready`).
    ready: Awaitable[None] | None = None
    #: Sent first (a comment): what the hub saw of the client, for ``rawsse probe``.
    greeting: bytes = b""


#: The event a stream carries ``token_expiry_notice`` seconds before its token expires.
AUTH_EXPIRING_EVENT = RESERVED_EVENT_PREFIX + "auth-expiring"

Spawn = Callable[[Coroutine[Any, Any, None]], object]


def open_stream(
    hub: Hub,
    transport: asyncio.Transport,
    start: StreamStart,
    *,
    head: bytes,
    chunked: bool,
    retry: int | None,
    now: float,
    spawn: Spawn,
) -> Subscriber:
    """Subscribe a stream and write its head, then (at once, or once a remote backend
    has answered) its ``retry:``, its lost notice and what it missed; live events wait
    behind that. When the backend must first get ready for the stream's topics
    (``start.ready``), nothing is written until it is."""
    subscriber = Subscriber(
        transport,
        start.topics,
        chunked=chunked,
        max_buffer=hub.max_buffer,
        started_at=now,
    )
    first = start.greeting + (b"" if retry is None else encode_retry(retry))
    if start.ready is None:
        _subscribe(hub, subscriber, start.last_event_id, head, first, spawn)
    else:
        subscriber.wait(head)
        spawn(_subscribe_when_ready(hub, subscriber, start, head, first, spawn))
    return subscriber


def _subscribe(
    hub: Hub,
    subscriber: Subscriber,
    last_event_id: str | None,
    head: bytes,
    first: bytes,
    spawn: Spawn,
) -> None:
    replay = hub.subscribe(subscriber, last_event_id)
    if isinstance(replay, Replay) and replay.records is NOTHING and replay.lost is None:
        subscriber.open(head, first)  # nothing to replay: live at once
        return
    subscriber.begin(head)  # in the same step: live events are held from here on
    if isinstance(replay, Replay):
        _replay(subscriber, first, replay)
    else:
        spawn(_replay_when_read(subscriber, first, replay))


async def _subscribe_when_ready(
    hub: Hub, subscriber: Subscriber, start: StreamStart, head: bytes, first: bytes, spawn: Spawn
) -> None:
    assert start.ready is not None
    try:
        await start.ready
    except BackendUnavailable as exc:
        if subscriber.waiting:
            logger.warning("stream for %s refused: %s", subscriber.peer, exc)
            hub.metrics.rejected["backend"] += 1
            subscriber.finish(_come_back_later(hub), "backend_unavailable")
        return
    if subscriber.waiting:  # not ended meanwhile
        _subscribe(hub, subscriber, start.last_event_id, head, first, spawn)


def _come_back_later(hub: Hub) -> bytes:
    """What a stream refused for want of the backend is sent: why, and when to retry
    (about a second: an outage may be short)."""
    retry_ms = stream_retry_ms(BACKEND_RETRY_WAIT, hub.config.limit_retry)
    return encode_comment("backend unavailable") + encode_retry(retry_ms)


def _replay(subscriber: Subscriber, first: bytes, replay: Replay) -> None:
    if replay.lost is not None:
        first += replay.lost
    subscriber.replay(first, replay.records)


async def _replay_when_read(
    subscriber: Subscriber, first: bytes, pending: Awaitable[Replay]
) -> None:
    try:
        replay = await pending
    except Exception:
        logger.exception("replay for %s failed; dropping the stream", subscriber.peer)
        subscriber.drop("error")
        return
    _replay(subscriber, first, replay)


def expiry_notice(expires_in: float) -> bytes:
    """The ``rawsse-auth-expiring`` event, ``expires_in`` seconds before expiry. It has
    no id, so that the client's ``Last-Event-ID`` stays where it is."""
    notice = {"reason": "token_expiring", "expires_in_ms": max(0, round(expires_in * 1000))}
    return encode_event(json.dumps(notice), event=AUTH_EXPIRING_EVENT)


class Expiry(enum.Enum):
    """Where a stream stands with its token's expiry."""

    NONE = "none"  #: no expiry: no token, or one without ``exp``
    NOTICE_DUE = "notice due"  #: the ``rawsse-auth-expiring`` notice is still to go out
    NOTICE_SENT = "notice sent"  #: it went out; at expiry the stream ends


class StreamSession:
    """One event stream from its admission to its close: its subscriber, the key it
    counts under in the stream caps, its token's expiry and notice, and the accounting
    of its end. The connection holds one reference to it and calls it from its
    callbacks; the session never reads the socket.

    Args:
        hub: where the stream is subscribed.
        transport: the connection's.
        start: what admission decided (:class:`StreamStart`).
        head: the response head, written at once or once the backend is ready.
        chunked: whether the body is chunked (HTTP/1.1) or close-delimited.
        retry: the ``retry:`` to send first, if any.
        now: the loop's time; ``wall_now``: Unix time, for the token's ``exp``.
        spawn: runs a coroutine as a task the server owns.
    """

    __slots__ = ("subscriber", "key", "expiry", "_hub", "_expires_at")

    def __init__(
        self,
        hub: Hub,
        transport: asyncio.Transport,
        start: StreamStart,
        *,
        head: bytes,
        chunked: bool,
        retry: int | None,
        now: float,
        wall_now: float,
        spawn: Spawn,
    ) -> None:
        self._hub = hub
        self.key = start.stream_key
        self.subscriber = open_stream(
            hub, transport, start, head=head, chunked=chunked, retry=retry, now=now, spawn=spawn
        )
        self.expiry = Expiry.NONE
        self._expires_at = 0.0  # the loop's time the token expires (with an expiry)
        grants = start.grants
        if grants is not None and grants.expires_at is not None:
            self.expiry = Expiry.NOTICE_DUE
            self._expires_at = now + max(0.0, grants.expires_at - wall_now)

    def first_timer(self, now: float, notice_before: float) -> float | None:
        """Seconds until the token's notice is due (``notice_before`` its expiry), or
        ``None`` when the stream does not expire."""
        if self.expiry is Expiry.NONE:
            return None
        return max(0.0, self._expires_at - now - notice_before)

    def timer_fired(self, now: float) -> float | None:
        """The stream's timer fired: the notice goes out (then the seconds to expiry),
        or, at expiry, the stream ends (then ``None``)."""
        if self.expiry is Expiry.NOTICE_DUE:
            self.subscriber.send_own(expiry_notice(self._expires_at - now))
            self.expiry = Expiry.NOTICE_SENT
            if self._expires_at > now:
                return self._expires_at - now
        if self.expiry is Expiry.NONE:
            return None
        self.subscriber.finish(b"", "auth_expired")
        return None

    def finish(self, window_ms: int) -> None:
        """End the stream for shutdown, telling the client when to come back."""
        finish_with_retry(self.subscriber, window_ms, "shutdown")

    def close(self, *, timed_out: bool, who: str, now: float) -> None:
        """The connection is gone: leave the hub, and count and log why the stream
        ended (its key is released by the caller, which counted it)."""
        hub, subscriber = self._hub, self.subscriber
        hub.unsubscribe(subscriber)
        # Before anything awaited for it (the backend getting ready, a replay) comes
        # back: then it must find a stream that is over, not subscribe or write to a
        # dead socket.
        subscriber.gone("dead_peer" if timed_out else "client_closed")
        reason = subscriber.close_reason or "client_closed"
        hub.count_disconnect(reason)
        access_logger.info(
            "%s stream closed topics=%s reason=%s duration=%.1fs bytes=%d",
            who,
            ",".join(subscriber.topics),
            reason,
            now - subscriber.started_at,
            subscriber.sent,
        )
