"""A subscriber: one open event stream, without a queue and without a task.

The transport's write buffer is the only queue. ``pause_writing()`` (buffer over the
high-water mark) starts the clock; a subscriber that then holds more than ``max_buffer``
unsent bytes, or stays paused longer than ``slow_timeout``, is aborted at once, which
frees its buffer. A slow client therefore never delays the publisher or anyone else.

A reconnecting client's replay can be far larger than ``max_buffer`` (64 topics of 1000
events of 1 KB is 64 MB), so it is not written at once: pages of it are written as the
client drains them, and live events published meanwhile wait behind it, counted against
the same ``max_buffer`` (see :class:`_Replaying`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from rawsse.events import CHUNKED_END, chunk, encode_retry
from rawsse.hub.compressed import CompressedSink

if TYPE_CHECKING:
    from rawsse.backends.base import Record

__all__ = ["REPLAY_PAGE", "Sink", "Subscriber", "finish_with_retry"]

logger = logging.getLogger("rawsse.subscriber")


class Sink(Protocol):
    """What a subscriber writes to: its transport, or a stand-in for it."""

    def write(self, data: bytes) -> None: ...

    def get_write_buffer_size(self) -> int: ...


class Channel(Sink, Protocol):
    """A stream's own connection: its transport, or the compressor in front of it
    (:class:`~rawsse.hub.compressed.CompressedSink`)."""

    def get_extra_info(self, name: str, default: Any = None) -> Any: ...

    def abort(self) -> None: ...

    def is_closing(self) -> bool: ...

    def close(self) -> None: ...


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


class _Unanswered:
    """Stands in for the transport of a stream whose answer waits for the backend (a
    topic new to this process): nothing is written, not even the head, until the
    backend is ready; a stream ended meanwhile gets its head with its ending."""

    __slots__ = ("head",)

    def __init__(self, head: bytes) -> None:
        self.head = head

    def write(self, data: bytes) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


#: Replayed events are written in pages of about this many bytes, each page as the client
#: drains the previous ones: what a replay holds unsent is then at most the high-water
#: mark plus one page (or one event, if larger), however long the history.
REPLAY_PAGE = 64 * 1024

#: Replay pages written to one subscriber in one loop iteration. The kernel takes
#: megabytes from a socket before its transport pauses, so without a bound a handful of
#: long replays would hold the loop for hundreds of milliseconds (``perf/attacks.py
#: replay``); one page, then the next subscriber's turn.
REPLAY_PAGES_PER_TURN = 1


class _Replaying:
    """Stands in for a subscriber's transport while its replay is being written.

    The hub goes on writing live events to the subscriber as usual; they are held here
    (shared bytes, already framed) and written once the replay is done, so the client
    sees them after what it missed, without a duplicate or a hole. What is held counts
    as unsent in ``get_write_buffer_size``, so the subscriber's drop rules (``max_buffer``
    while paused, ``slow_timeout``) hold during a replay as they do after it.
    """

    __slots__ = ("real", "records", "held", "held_size")

    def __init__(self, real: Channel) -> None:
        self.real = real
        #: What to replay; ``None`` until the backend has answered.
        self.records: Iterator[Record] | None = None
        self.held: list[bytes] = []
        self.held_size = 0

    def write(self, data: bytes) -> None:
        self.held.append(data)
        self.held_size += len(data)

    def get_write_buffer_size(self) -> int:
        return self.real.get_write_buffer_size() + self.held_size

    def next_page(self) -> bytes | None:
        """The next page of replayed events, or ``None`` when all are written."""
        frames: list[bytes] = []
        size = 0
        assert self.records is not None
        for record in self.records:
            frames.append(record.frame)
            size += len(record.frame)
            if size >= REPLAY_PAGE:
                break
        if not frames:
            return None
        return frames[0] if len(frames) == 1 else b"".join(frames)


class Subscriber:
    """The stream state of one connection, held by the hub while it is subscribed.

    It knows its transport and its limits, not the hub: the hub keeps the set of paused
    subscribers (:meth:`Hub.pause`, :meth:`Hub.resume`) and its groups.

    Attributes:
        topics: the topics it reads.
        chunked: whether its body uses HTTP/1.1 chunked framing (else close-delimited).
        group: the hub's handle for the group it is in (opaque here), or ``None``.
        paused_since: loop time when writing was paused, ``None`` while the client keeps up.
        close_reason: why the stream ended, once it has (a ``DISCONNECT_REASONS`` value).
        started_at: loop time the stream started.
        sent: bytes of events, replay and heartbeats handed to the transport.
    """

    __slots__ = (
        "transport",
        "max_buffer",
        "group",
        "topics",
        "chunked",
        "paused_since",
        "close_reason",
        "started_at",
        "sent",
        "_real_transport",
    )

    def __init__(
        self,
        transport: Channel,
        topics: tuple[str, ...],
        *,
        chunked: bool,
        max_buffer: int,
        started_at: float = 0.0,
    ) -> None:
        self.transport: Sink = transport
        self._real_transport: Channel = transport
        self.max_buffer = max_buffer
        self.group: object | None = None
        self.topics = topics
        self.chunked = chunked
        self.paused_since: float | None = None
        self.close_reason: str | None = None
        self.started_at = started_at
        self.sent = 0

    @property
    def peer(self) -> str:
        """The client's ``address:port``, for logs: asked of the transport when needed
        rather than kept (a string per stream)."""
        peer = self._real_transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            return f"{peer[0]}:{peer[1]}"
        return str(peer or "")

    def send(self, payload: bytes) -> None:
        """Write ``payload`` (already framed for this subscriber); never blocks.

        Only while paused does it look at the buffer size, and drops the subscriber
        when it is over ``max_buffer``.
        """
        self.transport.write(payload)
        self.sent += len(payload)
        if (
            self.paused_since is not None
            and self.transport.get_write_buffer_size() > self.max_buffer
        ):
            self.drop("slow_buffer")

    def send_own(self, payload: bytes) -> None:
        """Send bytes meant for this subscriber alone (a notice), framed here (a
        compressed stream reading its group's compressor takes one of its own)."""
        sink = self._real_transport
        if isinstance(sink, CompressedSink) and sink.lane is not None:
            sink.lane.leave(self, sink)
        self.send(chunk(payload) if self.chunked else payload)

    @property
    def compressed(self) -> CompressedSink | None:
        """The compressor in front of the transport of a compressed stream, else
        ``None``."""
        sink = self._real_transport
        return sink if isinstance(sink, CompressedSink) else None

    def _write_head(self, head: bytes, rest: bytes = b"") -> None:
        """Write the response head (never compressed), then ``rest`` of the body."""
        sink = self._real_transport
        if isinstance(sink, CompressedSink):
            sink.write_head(head)
            sink.write(rest)
        else:
            sink.write(head + rest)

    def wait(self, head: bytes) -> None:
        """Hold the response ``head`` back until :meth:`open` or :meth:`begin` (the
        backend is getting ready to deliver this stream's topics)."""
        self.transport = _Unanswered(head)

    @property
    def waiting(self) -> bool:
        """Whether the head is held back (:meth:`wait`) and the stream has not ended."""
        return self.transport.__class__ is _Unanswered

    def open(self, head: bytes, first: bytes) -> None:
        """Begin a stream with nothing to replay: write the response head and ``first``
        (a ``retry:``, unframed, or nothing); the subscriber is live at once."""
        if first and self.chunked:
            first = chunk(first)
        self.transport = self._real_transport
        self._write_head(head, first)

    def begin(self, head: bytes) -> None:
        """Write the response head, and hold live events from now on until
        :meth:`replay` has written what the client missed.

        Call it in the same step as the hub's ``subscribe``, so that no live event can
        come before the replay, however long the replay takes to read.
        """
        self._write_head(head)
        self.transport = _Replaying(self._real_transport)

    def replay(self, first: bytes, records: Iterator[Record]) -> None:
        """Write ``first`` (``retry:``, lost notice: unframed), then ``records`` as the
        client drains them, then the live events held meanwhile. Ignored once the
        stream has ended."""
        replaying = self.transport
        if not isinstance(replaying, _Replaying):
            return
        if first:
            self._real_transport.write(chunk(first) if self.chunked else first)
        replaying.records = records
        self._write_replay()

    def _write_replay(self) -> None:
        """Write replay pages until the transport pauses or the replay is done; then
        the live events held meanwhile, and the subscriber is live."""
        replaying = self.transport
        if not isinstance(replaying, _Replaying) or replaying.records is None:
            return
        real = self._real_transport
        for _ in range(REPLAY_PAGES_PER_TURN):
            if self.paused_since is not None:
                return  # resume() writes the next pages
            page = replaying.next_page()
            if page is None:
                break
            real.write(chunk(page) if self.chunked else page)
            self.sent += len(page)
        else:
            # This subscriber has had its turn; the others (and the loop) have theirs.
            asyncio.get_running_loop().call_soon(self._write_replay)
            return
        self.transport = real
        if replaying.held:
            real.write(b"".join(replaying.held))
            if self.paused_since is not None and real.get_write_buffer_size() > self.max_buffer:
                self.drop("slow_buffer")

    def pause(self, now: float) -> None:
        """The transport's buffer passed the high-water mark (see :meth:`Hub.pause`)."""
        self.paused_since = now

    def resume(self) -> None:
        """The transport's buffer drained below the low-water mark; a replay goes on
        (see :meth:`Hub.resume`)."""
        self.paused_since = None
        if self.transport.__class__ is _Replaying:
            self._write_replay()

    def end(self, reason: str) -> None:
        """Record why the stream ended, unless a reason is already recorded."""
        if self.close_reason is None:
            self.close_reason = reason

    def gone(self, reason: str) -> None:
        """The connection is closed: record why, and write nothing more to it.

        A stream can end while its answer waits for the backend or while its replay is
        being read; what was to follow (subscribing, replay pages, held events) sees
        the stand-in for a dropped transport and does nothing.
        """
        self.end(reason)
        self.paused_since = None
        self.transport = _DROPPED

    def drop(self, reason: str) -> None:
        """Abort the connection at once, freeing its buffer, and record why."""
        if self.close_reason is None:
            logger.info("dropping subscriber %s: %s", self.peer, reason)
        self.end(reason)
        self.paused_since = None
        self.transport = _DROPPED
        self._real_transport.abort()

    def finish(self, trailer: bytes, reason: str) -> None:
        """End the stream cleanly: write ``trailer`` (e.g. a ``retry:`` hint), the
        terminating chunk when chunked, and close once the buffer has drained."""
        self.end(reason)
        unanswered = self.transport
        head = unanswered.head if isinstance(unanswered, _Unanswered) else b""
        transport = self._real_transport
        self.transport = _DROPPED
        if isinstance(transport, CompressedSink):
            if not transport.is_closing():
                if head:
                    transport.write_head(head)
                transport.finish(trailer)
                transport.close()
            return
        if not transport.is_closing():
            if self.chunked:
                trailer = (chunk(trailer) if trailer else b"") + CHUNKED_END
            if head or trailer:
                transport.write(head + trailer)
            transport.close()


def finish_with_retry(subscriber: Subscriber, window_ms: int, reason: str) -> None:
    """End the stream (for shutdown, or a hole a backend cannot fill): tell the client
    when to come back (a random delay within ``window_ms``, so clients do not all
    return at once) and close."""
    hint = encode_retry(random.randint(0, window_ms)) if window_ms else b""
    subscriber.finish(hint, reason)
