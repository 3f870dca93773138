"""Reading a gzip-compressed event stream over a raw socket, as it comes: the chunked
framing undone piece by piece, the gzip stream inflated as it arrives (so an event
held back in a compressor's buffer is never seen), the text parsed by the tests' own
SSE parser. At the end, whether the gzip stream ended with a trailer whose checksum
and length are right (zlib checks both)."""

from __future__ import annotations

import zlib

from tests.support.client import RawConnection, raw_stream
from tests.support.sse_parser import ParsedEvent, StreamParser


class GzipStream:
    """One compressed stream: its head's headers, and the events inflated so far."""

    def __init__(self, conn: RawConnection, head: bytes) -> None:
        self.conn = conn
        raw_head, _, rest = head.partition(b"\r\n\r\n")
        lines = raw_head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:])
        }
        self.chunked = self.headers.get("transfer-encoding") == "chunked"
        self.inflater = zlib.decompressobj(31)
        self.parser = StreamParser()
        self.text = ""
        self.ended = False  # the terminating chunk came (or the connection closed)
        self.compressed_bytes = 0
        self._pending = b""
        self._feed(rest)

    @classmethod
    async def open(cls, port: int, path: str, *headers: str, version: str = "1.1") -> GzipStream:
        conn, head = await raw_stream(
            port, path, "Accept-Encoding: gzip", *headers, version=version
        )
        stream = cls(conn, head)
        assert stream.status == 200, head
        assert stream.headers.get("content-encoding") == "gzip", head
        return stream

    @property
    def events(self) -> list[ParsedEvent]:
        return self.parser.events

    @property
    def complete(self) -> bool:
        """Whether the gzip stream ended with a good trailer (its checksum and length
        checked by zlib)."""
        return self.inflater.eof

    def _feed(self, data: bytes) -> None:
        if not self.chunked:
            self._inflate(data)
            return
        self._pending += data
        while True:
            size_line, sep, rest = self._pending.partition(b"\r\n")
            if not sep:
                return
            size = int(size_line, 16)
            if size == 0:
                self.ended = True
                self._pending = b""
                return
            if len(rest) < size + 2:
                return
            assert rest[size : size + 2] == b"\r\n"
            self._inflate(rest[:size])
            self._pending = rest[size + 2 :]

    def _inflate(self, data: bytes) -> None:
        self.compressed_bytes += len(data)
        text = self.inflater.decompress(data).decode()
        assert not self.inflater.unused_data, "bytes after the gzip trailer"
        self.text += text
        self.parser.feed(text)

    async def read_some(self, timeout: float = 5.0) -> None:
        data = await self.conn.read_some(timeout)
        if not data:
            self.ended = True
        self._feed(data)

    async def wait_events(self, count: int, timeout: float = 5.0) -> list[ParsedEvent]:
        """Read until ``count`` events have been inflated."""
        while len(self.events) < count:
            assert not self.ended, f"the stream ended after {len(self.events)} events"
            await self.read_some(timeout)
        return self.events[:count]

    async def wait_text(self, piece: str, timeout: float = 5.0) -> None:
        """Read until ``piece`` is in the inflated text."""
        while piece not in self.text:
            assert not self.ended, f"the stream ended without {piece!r}: {self.text!r}"
            await self.read_some(timeout)

    async def read_to_end(self, timeout: float = 5.0) -> None:
        """Read until the body ends (the terminating chunk, or the close)."""
        while not self.ended:
            await self.read_some(timeout)

    async def close(self) -> None:
        await self.conn.close()
