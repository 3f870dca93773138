"""Test doubles and clients shared by the test layers: the one fake transport (protocol
tests without sockets) and real-socket clients that read little or nothing."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Collection
from typing import Any

from rawsse.backends.base import Record
from tests.support.client import get


class RecordingTransport(asyncio.Transport):
    """A transport that records writes; pause and buffer size are set by the test."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False
        self.eof_written = False
        self.buffered = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.limits = (high, low)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 5555) if name == "peername" else default

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def quiet_socket(port: int) -> socket.socket:
    """A connected socket with a small receive buffer, so that what the server sends
    and the test does not read backs up into the server quickly."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


async def never_reading_stream(port: int, path: str) -> socket.socket:
    """A client that sends its request and then never reads (tiny receive buffer)."""
    sock = await quiet_socket(port)
    await asyncio.get_running_loop().sock_sendall(sock, get(path))
    return sock


class NullHub:
    """A hub for a backend tested on its own: delivers nowhere, has no streams."""

    def dispatch(self, record: Record) -> None:
        pass

    def end_streams(self, topics: Collection[str] | None, reason: str) -> int:
        return 0

    def has_topic(self, topic: str) -> bool:
        return False
