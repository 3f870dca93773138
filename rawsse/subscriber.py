"""A subscriber: one open event stream, without a queue and without a task.

The transport's write buffer is the only queue. ``pause_writing()`` (buffer over the
high-water mark) starts the clock; a subscriber that then holds more than ``max_buffer``
unsent bytes, or stays paused longer than ``slow_timeout``, is aborted at once, which
frees its buffer. A slow client therefore never delays the publisher or anyone else.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from rawsse.events import CHUNKED_END, chunk

if TYPE_CHECKING:
    from rawsse.hub import Group, Hub

__all__ = ["Subscriber"]

logger = logging.getLogger("rawsse.subscriber")


class _Dropped:
    """Stands in for the transport of a dropped subscriber until ``connection_lost``
    removes it from its group: a flush in between writes into nothing, at no cost to
    the fan-out loop (which then needs no "is it closed?" test per subscriber)."""

    __slots__ = ()

    def write(self, data: bytes) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


_DROPPED: Any = _Dropped()


class Subscriber:
    """The stream state of one connection, owned by the hub while it is subscribed.

    Attributes:
        topics: the topics it reads.
        chunked: whether its body uses HTTP/1.1 chunked framing (else close-delimited).
        paused_since: loop time when writing was paused, ``None`` while the client keeps up.
        close_reason: why the stream ended, once it has (a ``DISCONNECT_REASONS`` value).
        started_at: loop time the stream started.
        sent: bytes of events and heartbeats handed to the transport.
    """

    __slots__ = (
        "transport",
        "hub",
        "group",
        "topics",
        "chunked",
        "peer",
        "paused_since",
        "close_reason",
        "started_at",
        "sent",
        "_real_transport",
    )

    def __init__(
        self,
        transport: asyncio.Transport,
        hub: Hub,
        topics: tuple[str, ...],
        *,
        chunked: bool,
        peer: str = "",
        started_at: float = 0.0,
    ) -> None:
        self.transport: asyncio.Transport = transport
        self._real_transport = transport
        self.hub = hub
        self.group: Group | None = None
        self.topics = topics
        self.chunked = chunked
        self.peer = peer
        self.paused_since: float | None = None
        self.close_reason: str | None = None
        self.started_at = started_at
        self.sent = 0

    def send(self, payload: bytes) -> None:
        """Write ``payload`` (already framed for this subscriber); never blocks.

        Only while paused does it look at the buffer size, and drops the subscriber
        when it is over ``max_buffer``.
        """
        self.transport.write(payload)
        self.sent += len(payload)
        if (
            self.paused_since is not None
            and self.transport.get_write_buffer_size() > self.hub.max_buffer
        ):
            self.drop("slow_buffer")

    def pause(self, now: float) -> None:
        """The transport's buffer passed the high-water mark."""
        self.paused_since = now
        self.hub.paused.add(self)

    def resume(self) -> None:
        """The transport's buffer drained below the low-water mark."""
        self.paused_since = None
        self.hub.paused.discard(self)

    def drop(self, reason: str) -> None:
        """Abort the connection at once, freeing its buffer, and record why."""
        if self.close_reason is None:
            self.close_reason = reason
            logger.info("dropping subscriber %s: %s", self.peer, reason)
        self.paused_since = None
        self.hub.paused.discard(self)
        self.transport = _DROPPED
        self._real_transport.abort()

    def finish(self, trailer: bytes, reason: str) -> None:
        """End the stream cleanly: write ``trailer`` (e.g. a ``retry:`` hint), the
        terminating chunk when chunked, and close once the buffer has drained."""
        if self.close_reason is None:
            self.close_reason = reason
        transport = self._real_transport
        self.transport = _DROPPED
        if not transport.is_closing():
            if self.chunked:
                trailer = (chunk(trailer) if trailer else b"") + CHUNKED_END
            if trailer:
                transport.write(trailer)
            transport.close()
