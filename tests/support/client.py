"""A raw HTTP client for tests: sends exactly the bytes a test gives and parses what
comes back with h11 in client mode, so malformed, pipelined and half-finished requests
can be tested over a real socket."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import h11
import httpx

from tests.conftest import scaled


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class RawConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._h11 = h11.Connection(h11.CLIENT)

    @classmethod
    async def open(
        cls, port: int, host: str = "127.0.0.1", *, source: str | None = None
    ) -> RawConnection:
        """Connect to ``host:port``, from the loopback address ``source`` if given."""
        local = (source, 0) if source is not None else None
        reader, writer = await asyncio.open_connection(host, port, local_addr=local)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self, *, head_only_for: bytes = b"GET", timeout: float = 5.0) -> Answer:
        """Read one complete response (the request it answers is assumed sent)."""
        conn = self._h11
        if conn.our_state is h11.IDLE:
            # Tell h11 what we sent so it can frame the response.
            conn.send(h11.Request(method=head_only_for, target="/", headers=[("host", "x")]))
            conn.send(h11.EndOfMessage())
        status, headers, body = 0, {}, bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await asyncio.wait_for(self.reader.read(65536), scaled(timeout))
                conn.receive_data(data)
                continue
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                headers = {k.decode(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                    conn.start_next_cycle()
                return Answer(status, headers, bytes(body))
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("closed before a complete response")

    async def read_until_closed(self, timeout: float = 5.0) -> bytes:
        """Every byte until the server closes (raw, unparsed)."""
        return await asyncio.wait_for(self.reader.read(-1), scaled(timeout))

    async def read_some(self, timeout: float = 5.0) -> bytes:
        return await asyncio.wait_for(self.reader.read(65536), scaled(timeout))

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


async def exchange(port: int, raw: bytes, *, method: bytes = b"GET") -> Answer:
    """Send ``raw`` on a new connection and read one response."""
    conn = await RawConnection.open(port)
    try:
        await conn.send(raw)
        return await conn.answer(head_only_for=method)
    finally:
        await conn.close()


def get(path: str, *extra: str, version: str = "1.1") -> bytes:
    lines = [f"GET {path} HTTP/{version}", "Host: test", *extra, "", ""]
    return "\r\n".join(lines).encode()


async def raw_stream(
    port: int, path: str, *headers: str, version: str = "1.1", source: str | None = None
) -> tuple[RawConnection, bytes]:
    """Open a stream with a raw GET; return the connection and all bytes read up to and
    including the end of the response head (possibly with the start of the body)."""
    conn = await RawConnection.open(port, source=source)
    await conn.send(get(path, *headers, version=version))
    head = b""
    while b"\r\n\r\n" not in head:
        head += await conn.read_some()
    return conn, head


async def metric_at(url: str, name: str) -> float:
    """One sample of ``/metrics`` at ``url`` (``name`` with its labels, as exposed)."""
    async with httpx.AsyncClient(timeout=scaled(5)) as client:
        text = (await client.get(f"{url}/metrics")).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in {url}/metrics")
