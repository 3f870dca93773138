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

import json
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rawsse.backends.base import NOTHING, Replay
from rawsse.errors import BackendUnavailable
from rawsse.events import RESERVED_EVENT_PREFIX, encode_comment, encode_event, encode_retry
from rawsse.hub.subscriber import Subscriber
from rawsse.policy.limits import BACKEND_RETRY_WAIT, stream_retry_ms

if TYPE_CHECKING:
    import asyncio

    from rawsse.hub.hub import Hub
    from rawsse.policy.auth import Grants

__all__ = [
    "AUTH_EXPIRING_EVENT",
    "StreamStart",
    "close_stream",
    "expiry_notice",
    "on_expiry",
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


def on_expiry(subscriber: Subscriber, expires_at: float, now: float) -> tuple[float, float | None]:
    """The stream's token-expiry timer fired. First (``expires_at`` positive) the
    notice goes out; then, at expiry, the stream ends.

    Returns:
        The new ``expires_at`` (negated once the notice went out), and the seconds to
        the next firing, or ``None`` once the stream has ended.
    """
    if expires_at > 0:
        subscriber.send_own(expiry_notice(expires_at - now))
        if expires_at > now:
            return -expires_at, expires_at - now
    subscriber.finish(b"", "auth_expired")
    return -abs(expires_at), None


def close_stream(hub: Hub, subscriber: Subscriber, timed_out: bool, who: str, now: float) -> None:
    """The stream's connection is gone: leave the hub, count and log why."""
    hub.unsubscribe(subscriber)
    # Before anything awaited for it (the backend getting ready, a replay) comes back:
    # then it must find a stream that is over, not subscribe or write to a dead socket.
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


def expiry_notice(expires_in: float) -> bytes:
    """The ``rawsse-auth-expiring`` event, ``expires_in`` seconds before expiry. It has
    no id, so that the client's ``Last-Event-ID`` stays where it is."""
    notice = {"reason": "token_expiring", "expires_in_ms": max(0, round(expires_in * 1000))}
    return encode_event(json.dumps(notice), event=AUTH_EXPIRING_EVENT)
