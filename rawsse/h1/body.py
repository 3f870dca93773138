"""A request body as it arrives, sans I/O: gathered in one buffer, or handed piece by
piece to a sink (a batch publish reads its lines as they come), within its limit, and
refused when it comes in chunks too small to be worth their cost.
"""

from __future__ import annotations

from collections.abc import Callable

from rawsse.h1.request import fatal

__all__ = ["CHUNKS_BEFORE_AVERAGE", "MIN_AVERAGE_CHUNK", "STREAMED", "Body"]

#: A chunked body may not average fewer bytes a chunk than this once it has had
#: ``CHUNKS_BEFORE_AVERAGE`` chunks (400): 16-byte chunks cost h11 as much per byte as
#: the smallest pipelined requests do, and an NDJSON line, the smallest useful chunk,
#: is longer (``{"topic":"a","data":"b"}`` is 24 bytes).
MIN_AVERAGE_CHUNK = 16
CHUNKS_BEFORE_AVERAGE = 1024


def STREAMED(data: bytes) -> None:
    """The sink of a streamed body before :meth:`Exchange.attach` gives it one."""
    raise AssertionError("a streamed body arrived before its sink was attached")


class Body:
    """The body of the request being read on one connection.

    Args:
        max_size: the largest gathered body (413 over it).
        max_streamed_size: the largest streamed body (413 over it).
    """

    __slots__ = ("sink", "_gathered", "_size", "_pieces", "_chunked", "_limit",
                 "_max_size", "_max_streamed")  # fmt: skip

    def __init__(self, max_size: int, max_streamed_size: int) -> None:
        #: Where the body goes as it arrives, once given a place (``Exchange.attach``);
        #: :func:`STREAMED` until then; ``None``: gathered.
        self.sink: Callable[[bytes], None] | None = None
        self._gathered: bytearray | None = None  # one buffer, not an object per piece
        self._size = 0
        self._pieces = 0  # h11 ``Data`` events: see ``MIN_AVERAGE_CHUNK``
        self._chunked = False
        self._limit = max_size
        self._max_size = max_size
        self._max_streamed = max_streamed_size

    def start(self, *, chunked: bool, streamed: bool) -> int:
        """A new request's body; its limit."""
        self._gathered = None
        self._size = self._pieces = 0
        self._chunked = chunked
        self.sink = STREAMED if streamed else None
        self._limit = self._max_streamed if streamed else self._max_size
        return self._limit

    def piece(self, data: bytes) -> None:
        """One piece of the body (a chunk, or what one read brought).

        Raises:
            RequestError: over the limit (413), or chunks too small on average (400).
        """
        self._size = size = self._size + len(data)
        self._pieces = pieces = self._pieces + 1
        if self._chunked and pieces > CHUNKS_BEFORE_AVERAGE and size < pieces * MIN_AVERAGE_CHUNK:
            raise fatal(400, f"chunks under {MIN_AVERAGE_CHUNK} bytes on average")
        if size > self._limit:
            raise fatal(413, "payload too large")
        sink = self.sink
        if sink is not None:
            assert sink is not STREAMED, "attach() first"
            sink(data)
        elif self._gathered is None:
            self._gathered = bytearray(data)
        else:
            self._gathered += data

    def take(self) -> bytes:
        """The gathered body (empty once streamed); the next request starts afresh."""
        gathered, self._gathered = self._gathered, None
        self.sink = None
        return bytes(gathered) if gathered else b""

    def drop(self) -> None:
        """Let go of what was gathered (the request is answered)."""
        self._gathered = None
