"""Compressed streams (``--compress``): each group's events deflated once per flush and
the same bytes written to every member, as uncompressed ones are.

A group's compressed members share one compressor, its :class:`Lane`, which keeps its
window from event to event (JSON events compress 5.5 times over with it, 2.4 times
each on its own) and sync-flushes at every write, so that each event leaves at
once, never held back to fill a buffer. A stream cannot start in the middle of that
shared stream, whose blocks refer back to events it never received. So a stream begins
as a *newcomer*, with a small compressor of its own (:class:`CompressedSink`), which
compresses its head-of-stream bytes (``retry:``, a lost notice, its replay) and the
group's events until the lane next *resets*: a full flush, after which the lane's blocks
refer to nothing before it. Then it joins the lane's members, and from there on it costs
nothing of its own. The lane resets only when a newcomer is ready to join, and at most
every ``RESET_EVERY`` seconds when members already read it: a stream joins within that
time, and a busy group loses its window a few times a second at most.

A member that must be sent bytes of its own (its token's expiry notice) leaves the lane
for a compressor of its own again, and joins at the next reset. Its stream's end (a
``retry:``) is a stored block, which refers to nothing, and the gzip trailer, whose
checksum is assembled from the pieces (:mod:`rawsse.deflate`).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from rawsse.deflate import (
    GZIP_HEADER,
    crc32_combine,
    crc32_tail,
    deflater,
    gzip_trailer,
    stored_final,
)
from rawsse.events import CHUNKED_END, chunk

if TYPE_CHECKING:
    import asyncio

__all__ = ["RESET_EVERY", "CompressedSink", "Lane"]

#: A group's shared compressor: level 6 with a 4 KiB window (zlib's memory level 5) is
#: 38 KiB a group, and gives 5.5 times fewer bytes on JSON events of 0.5-1 KB where
#: the full 32 KiB window (262 KiB) gives 6.05 (perf/README).
LANE_LEVEL, LANE_WINDOW_BITS, LANE_MEM_LEVEL = 6, 12, 5

#: A stream's own compressor, while it catches up with its group's: 1 KiB of window
#: (14 KiB), for a quarter of a second or as long as its replay.
OWN_LEVEL, OWN_WINDOW_BITS, OWN_MEM_LEVEL = 6, 10, 3

#: The least time between two resets of a lane that has members, in seconds.
RESET_EVERY = 0.25


class Stream(Protocol):
    """What a lane needs of a subscriber (:class:`~rawsse.hub.subscriber.Subscriber`):
    where it writes, and its ``send``, which keeps its drop rules."""

    transport: Any

    def send(self, payload: bytes) -> None: ...


S = TypeVar("S", bound=Stream)


def _own_deflater() -> Any:
    return deflater(OWN_LEVEL, OWN_WINDOW_BITS, OWN_MEM_LEVEL)


class CompressedSink:
    """What a compressed stream's subscriber writes to while it has a compressor of its
    own (a newcomer): it deflates what it is given and writes it, framed, to the
    transport. While its stream reads its group's lane it only keeps the accounts that
    the trailer needs, and the subscriber writes to the transport directly.

    Attributes:
        transport: the connection's.
        chunked: whether the body is chunked (HTTP/1.1), which this frames, not the
            subscriber (it sees an unframed stream).
        written: compressed bytes written through it, for the metrics.
    """

    __slots__ = ("transport", "chunked", "written", "_own", "_started", "_crc", "_size",
                 "_lane", "_lane_crc", "_lane_size")  # fmt: skip

    def __init__(self, transport: asyncio.Transport, chunked: bool) -> None:
        self.transport = transport
        self.chunked = chunked
        self.written = 0
        self._own: Any = _own_deflater()
        self._started = False  # the gzip header is written
        # The checksum and length of what the stream carried, but for its current
        # piece of the lane's stream (from the lane's checksum and length when it began).
        self._crc = 0
        self._size = 0
        self._lane: Lane[Any] | None = None
        self._lane_crc = 0
        self._lane_size = 0

    # -- what a subscriber's transport offers ------------------------------------------

    def write(self, data: bytes) -> None:
        """Deflate ``data`` with the stream's own compressor and write it at once."""
        if not data:
            return
        if self._own is None:
            raise RuntimeError("a stream reading its group's compressor has none of its own")
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        self._put(self._own.compress(data) + self._own.flush(zlib.Z_SYNC_FLUSH))

    def get_write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default)

    def abort(self) -> None:
        self._own = None
        self.transport.abort()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def close(self) -> None:
        self.transport.close()

    # -- the stream's framing -----------------------------------------------------------

    def write_head(self, head: bytes) -> None:
        """Write the response head, which is not compressed."""
        self.transport.write(head)

    def finish(self, trailer: bytes) -> None:
        """End the stream: ``trailer`` in a final block, the gzip trailer, and the
        terminating chunk when chunked."""
        if self._lane is not None:
            self._fold_lane()
        self._crc = zlib.crc32(trailer, self._crc)
        self._size += len(trailer)
        if self._own is not None:
            end = self._own.compress(trailer) + self._own.flush(zlib.Z_FINISH)
            self._own = None
        else:
            end = stored_final(trailer)
        self._put(end + gzip_trailer(self._crc, self._size), last=True)

    def _put(self, out: bytes, *, last: bool = False) -> None:
        if not self._started:
            self._started = True
            out = GZIP_HEADER + out
        self.written += len(out)
        if self.chunked:
            out = chunk(out) + CHUNKED_END if last else chunk(out)
        self.transport.write(out)

    # -- joining and leaving a lane -----------------------------------------------------

    def joined(self, lane: Lane[Any]) -> None:
        """The stream reads ``lane``'s compressor from now on (it just reset)."""
        if not self._started:
            self._put(b"")  # the header: the lane's blocks follow it
        self._own = None
        self._lane = lane
        self._lane_crc = lane.crc
        self._lane_size = lane.size

    def left(self) -> None:
        """The stream left its lane: a compressor of its own again."""
        self._fold_lane()
        self._own = _own_deflater()

    def _fold_lane(self) -> None:
        """Fold the piece of the lane's stream read since joining into the accounts."""
        lane = self._lane
        assert lane is not None
        length = lane.size - self._lane_size
        piece = crc32_tail(lane.crc, self._lane_crc, length)
        self._crc = crc32_combine(self._crc, piece, length)
        self._size += length
        self._lane = None

    @property
    def lane(self) -> Lane[Any] | None:
        """The lane whose compressor the stream reads, or ``None`` (it has its own)."""
        return self._lane


class Lane(Generic[S]):
    """The compressed members of one group and the compressor they share.

    Attributes:
        crc: the CRC-32 of everything the shared compressor was given.
        size: its length.
    """

    __slots__ = ("crc", "size", "_deflater", "_reset_at", "_newcomers", "_plain", "_chunked")

    def __init__(self) -> None:
        self.crc = 0
        self.size = 0
        self._deflater: Any = deflater(LANE_LEVEL, LANE_WINDOW_BITS, LANE_MEM_LEVEL)
        self._reset_at = float("-inf")
        # Streams with a compressor of their own, and those reading the lane's,
        # close-delimited and chunked.
        self._newcomers: dict[S, CompressedSink] = {}
        self._plain: set[S] = set()
        self._chunked: set[S] = set()

    def __len__(self) -> int:
        return len(self._newcomers) + len(self._plain) + len(self._chunked)

    def members(self) -> Iterator[S]:
        """Every stream of the lane."""
        yield from self._newcomers
        yield from self._plain
        yield from self._chunked

    def add(self, subscriber: S, sink: CompressedSink) -> None:
        """A stream joins the group: it begins with its own compressor."""
        self._newcomers[subscriber] = sink

    def discard(self, subscriber: S) -> None:
        """A stream leaves the group."""
        self._newcomers.pop(subscriber, None)
        self._plain.discard(subscriber)
        self._chunked.discard(subscriber)

    def write(self, payload: bytes, now: float) -> int:
        """Write ``payload`` (the group's events of one flush, unframed) to every
        stream of the lane: deflated once for its members, by their own compressors
        for newcomers. Reset the compressor when a newcomer waits to join (and the last
        reset is ``RESET_EVERY`` old, if members read it), and let ready newcomers join.
        Return the bytes written."""
        sent = 0
        newcomers = self._newcomers
        for subscriber, sink in newcomers.items():
            before = sink.written
            subscriber.send(payload)
            sent += sink.written - before
        plain, chunked = self._plain, self._chunked
        members = bool(plain or chunked)
        reset = bool(newcomers) and (not members or now - self._reset_at >= RESET_EVERY)
        if members:
            packer = self._deflater
            out = packer.compress(payload) + packer.flush(
                zlib.Z_FULL_FLUSH if reset else zlib.Z_SYNC_FLUSH
            )
            self.crc = zlib.crc32(payload, self.crc)
            self.size += len(payload)
            if plain:
                for subscriber in plain:
                    subscriber.send(out)
                sent += len(out) * len(plain)
            if chunked:
                framed = chunk(out)
                for subscriber in chunked:
                    subscriber.send(framed)
                sent += len(out) * len(chunked)
        elif reset:
            self._deflater.flush(zlib.Z_FULL_FLUSH)  # nobody reads it: forget the window
        if reset:
            self._reset_at = now
            for subscriber, sink in list(newcomers.items()):
                # Live: not waiting for the backend, not replaying, not ended.
                if subscriber.transport is sink:
                    self._join(subscriber, sink)
        return sent

    def _join(self, subscriber: S, sink: CompressedSink) -> None:
        del self._newcomers[subscriber]
        sink.joined(self)
        (self._chunked if sink.chunked else self._plain).add(subscriber)
        subscriber.transport = sink.transport

    def leave(self, subscriber: S, sink: CompressedSink) -> None:
        """A member must be sent bytes of its own: it takes a compressor of its own
        until it joins again."""
        self._plain.discard(subscriber)
        self._chunked.discard(subscriber)
        sink.left()
        self._newcomers[subscriber] = sink
        if subscriber.transport is sink.transport:
            subscriber.transport = sink
