"""A real ``redis-server`` (Debian's package) for tests: on a free loopback port, in a
temporary directory, stopped and started again on the same port when a test needs an
outage."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import free_port, require_program, scaled


class RedisServer:
    """One redis-server process at a time, on one port, with one data directory.

    Args:
        directory: where its append-only file (if any) lives.
        appendonly: whether it persists every write (``appendfsync always``), so that a
            restart keeps the history; without it a restart loses everything.
    """

    def __init__(self, directory: Path, *, appendonly: bool = True) -> None:
        self.program = require_program("redis-server")
        self.directory = directory
        self.appendonly = appendonly
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [
            self.program,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always",
            "--daemonize", "no",
            "--protected-mode", "no",
            "--loglevel", "warning",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.directory
        )
        self._wait_answering()

    def _wait_answering(self) -> None:
        deadline = time.monotonic() + scaled(10)
        while True:
            assert self.process is not None and self.process.poll() is None, "redis exited"
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock,
            ):
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return
            if time.monotonic() > deadline:
                raise AssertionError("redis-server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        """SIGTERM: redis writes its append-only file and exits; wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=scaled(10))
        self.process = None

    def command(self, *args: str) -> bytes:
        """Run one command with redis-cli's help-free cousin: a raw RESP request."""
        request = b"*%d\r\n" % len(args) + b"".join(
            b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args
        )
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(request)
            return sock.recv(65536)


@contextlib.contextmanager
def redis_server(directory: Path, *, appendonly: bool = True) -> Iterator[RedisServer]:
    server = RedisServer(directory, appendonly=appendonly)
    server.start()
    try:
        yield server
    finally:
        server.stop()
