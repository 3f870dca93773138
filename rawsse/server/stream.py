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
from rawsse.hub.compressed import CompressedSink
from rawsse.hub.subscriber import Channel, Subscriber, finish_with_retry
from rawsse.policy.limits import BACKEND_RETRY_WAIT, stream_retry_ms

if TYPE_CHECKING:
    import asyncio

    from rawsse.hub.hub import Hub
    from rawsse.hub.views import View
    from rawsse.policy.auth import Grants
    from rawsse.server.subscriptions import Subscription

__all__ = [
    "AUTH_EXPIRING_EVENT",
    "Expiring",
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
    #: Mercure mode: the selectors read beyond ``topics`` and the read grants.
    view: View | None = None
    #: The path it was asked on, for metrics and logs.
    path: str = "/events"
    #: Response headers of its own (Mercure's ``Last-Event-ID``).
    headers: tuple[tuple[bytes, bytes], ...] = ()
    #: Mercure's active subscriptions the stream holds (with ``mercure_subscriptions``).
    subscriptions: tuple[Subscription, ...] = ()


#: The event a stream carries ``token_expiry_notice`` seconds before its token expires.
AUTH_EXPIRING_EVENT = RESERVED_EVENT_PREFIX + "auth-expiring"

Spawn = Callable[[Coroutine[Any, Any, None]], object]


def open_stream(
    hub: Hub,
    subscriber: Subscriber,
    start: StreamStart,
    *,
    head: bytes,
    retry: int | None,
    spawn: Spawn,
) -> None:
    """Subscribe a stream and write its head, then (at once, or once a remote backend
    has answered) its ``retry:``, its lost notice and what it missed; live events wait
    behind that. When the backend must first get ready for the stream's topics
    (``start.ready``), nothing is written until it is."""
    first = start.greeting + (b"" if retry is None else encode_retry(retry))
    if start.ready is None:
        _subscribe(hub, subscriber, start.last_event_id, head, first, spawn, start.view)
    else:
        subscriber.wait(head)
        spawn(_subscribe_when_ready(hub, subscriber, start, head, first, spawn))


def _subscribe(
    hub: Hub,
    subscriber: Subscriber,
    last_event_id: str | None,
    head: bytes,
    first: bytes,
    spawn: Spawn,
    view: View | None = None,
) -> None:
    replay = hub.subscribe(subscriber, last_event_id, view=view)
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
        _subscribe(hub, subscriber, start.last_event_id, head, first, spawn, start.view)


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

    NOTICE_DUE = "notice due"  #: the ``rawsse-auth-expiring`` notice is still to go out
    NOTICE_SENT = "notice sent"  #: it went out; at expiry the stream ends


class Expiring:
    """A stream's token expiry: when (the loop's time), and where it stands."""

    __slots__ = ("at", "state")

    def __init__(self, at: float) -> None:
        self.at = at
        self.state = Expiry.NOTICE_DUE


class StreamSession(Subscriber):
    """One event stream from its admission to its close: the subscriber the hub writes
    to, as the server sees it, with what else a stream is: the key it counts under in
    the stream caps, its token's expiry and notice, its shutdown and the accounting of
    its end. The connection holds one reference to it and calls it from its callbacks;
    it never reads the socket.

    It is the subscriber rather than holding one, so that a stream costs no object
    more than the hub's own (an idle stream's memory is a figure of merit: about 100
    bytes of 1.6 KiB).

    Args:
        hub: where the stream is subscribed.
        transport: the connection's.
        start: what admission decided (:class:`StreamStart`).
        head: the response head, written at once or once the backend is ready.
        chunked: whether the body is chunked (HTTP/1.1) or close-delimited.
        compressed: whether the body is gzip-compressed (the hub compresses each
            group's events once, :mod:`rawsse.hub.compressed`).
        retry: the ``retry:`` to send first, if any.
        now: the loop's time; ``wall_now``: Unix time, for the token's ``exp``.
        spawn: runs a coroutine as a task the server owns.
    """

    # One slot for the expiry, None for the common stream without one: a stream is then
    # one slot larger than a bare subscriber, and the connection one smaller than it was.
    __slots__ = ("key", "expiry")

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
        compressed: bool = False,
    ) -> None:
        channel: Channel = transport
        if compressed:
            # The compressor frames the body; the subscriber writes an unframed one.
            channel, chunked = CompressedSink(transport, chunked), False
        super().__init__(
            channel, start.topics, chunked=chunked, max_buffer=hub.max_buffer, started_at=now
        )
        self.key = start.stream_key
        #: Its token's expiry, or ``None`` when it does not expire.
        self.expiry: Expiring | None = None
        grants = start.grants
        if grants is not None and grants.expires_at is not None:
            self.expiry = Expiring(now + max(0.0, grants.expires_at - wall_now))
        open_stream(hub, self, start, head=head, retry=retry, spawn=spawn)

    def first_timer(self, now: float, notice_before: float) -> float | None:
        """Seconds until the token's notice is due (``notice_before`` its expiry), or
        ``None`` when the stream does not expire."""
        if self.expiry is None:
            return None
        return max(0.0, self.expiry.at - now - notice_before)

    def timer_fired(self, now: float) -> float | None:
        """The stream's timer fired: the notice goes out (then the seconds to expiry),
        or, at expiry, the stream ends (then ``None``)."""
        expiry = self.expiry
        if expiry is None:
            return None
        if expiry.state is Expiry.NOTICE_DUE:
            self.send_own(expiry_notice(expiry.at - now))
            expiry.state = Expiry.NOTICE_SENT
            if expiry.at > now:
                return expiry.at - now
        self.finish(b"", "auth_expired")
        return None

    def finish_for_shutdown(self, window_ms: int) -> None:
        """End the stream for shutdown, telling the client when to come back."""
        finish_with_retry(self, window_ms, "shutdown")

    def close(self, hub: Hub, *, timed_out: bool, who: str, now: float) -> None:
        """The connection is gone: leave ``hub``, and count and log why the stream
        ended (its key is released by the caller, which counted it)."""
        hub.unsubscribe(self)
        # Before anything awaited for it (the backend getting ready, a replay) comes
        # back: then it must find a stream that is over, not subscribe or write to a
        # dead socket.
        self.gone("dead_peer" if timed_out else "client_closed")
        reason = self.close_reason or "client_closed"
        hub.count_disconnect(reason)
        access_logger.info(
            "%s stream closed topics=%s reason=%s duration=%.1fs bytes=%d",
            who,
            ",".join(self.topics),
            reason,
            now - self.started_at,
            self.sent,
        )
