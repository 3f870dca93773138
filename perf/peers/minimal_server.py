"""The floor: the least a Python SSE server on uvloop can do, for comparison.

``--mode one-write``: each event is written to every client at once (one ``write`` per
event per client). ``--mode batched``: events are collected and written once per client
per loop iteration. No routing, no topics, no limits, no HTTP parser beyond finding the
end of the request head. Same producer and protocol as ``perf/rawsse_server.py``.

Without ``--rate`` it is fed over HTTP instead, as rawsse is by ``publisher.py``: a
connection whose request is a ``POST`` publishes, each body one event (``end`` the last),
answered ``200`` with no body. That is the floor for publishing over HTTP: the least a
request costs a Python server on uvloop (finding the head's end and ``Content-Length``).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time

HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"connection: keep-alive\r\n\r\n"
)


#: The answer to a publish.
PUBLISHED = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"


class Fanout:
    """The clients, and how an event reaches them (``--mode``)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.clients: set[asyncio.Transport] = set()
        self.pending: list[bytes] = []

    def flush(self) -> None:
        payload = b"".join(self.pending)
        self.pending.clear()
        for transport in self.clients:
            transport.write(payload)

    def send(self, frame: bytes) -> None:
        if self.mode == "one-write":
            for transport in self.clients:
                transport.write(frame)
        else:
            if not self.pending:
                asyncio.get_running_loop().call_soon(self.flush)
            self.pending.append(frame)


class Client(asyncio.Protocol):
    def __init__(self, fanout: Fanout) -> None:
        self.fanout = fanout
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.publishing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.head is None:
            return
        self.head += data
        if self.publishing or self.head.startswith(b"POST"):
            self.publishing = True
            self._publish()
        elif b"\r\n\r\n" in self.head:
            self.head = None  # type: ignore[assignment]
            assert self.transport is not None
            self.transport.write(HEAD)
            self.fanout.clients.add(self.transport)

    def _publish(self) -> None:
        """Each complete request in ``head``: its body is an event."""
        assert self.transport is not None
        while (end := self.head.find(b"\r\n\r\n")) >= 0:
            at = self.head.lower().find(b"content-length:", 0, end)
            length = int(self.head[at + 15 : self.head.find(b"\r\n", at)]) if at >= 0 else 0
            if len(self.head) < end + 4 + length:
                return
            body = self.head[end + 4 : end + 4 + length]
            self.head = self.head[end + 4 + length :]
            self.fanout.send(
                b"event: end\ndata: end\n\n" if body == b"end" else b"data: %s\n\n" % body
            )
            self.transport.write(PUBLISHED)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fanout.clients.discard(self.transport)  # type: ignore[arg-type]


async def main(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    fanout = Fanout(args.mode)
    clients = fanout.clients
    server = await loop.create_server(lambda: Client(fanout), "127.0.0.1", 0, backlog=4096)
    print(f"ready {server.sockets[0].getsockname()[1]}", flush=True)
    if not args.rate:
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        return
    while len(clients) < args.clients:
        await asyncio.sleep(0.05)
    print("producing", flush=True)
    send = fanout.send
    pad = b"x" * max(0, args.size - 20)
    interval = 1.0 / args.rate
    count = int(args.rate * args.duration)
    start = time.monotonic_ns()
    for n in range(count):
        due = start + round(n * interval * 1e9)  # the stamp: when it was due (rawsse_server.py)
        delay = (due - time.monotonic_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        send(b"data: %020d%s\n\n" % (due, pad))
    await asyncio.sleep(0.5)
    send(b"event: end\ndata: end\n\n")
    await asyncio.sleep(1.0)
    print(f"published {count}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("one-write", "batched"), required=True)
    parser.add_argument("--clients", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--duration", type=float, default=0)
    args = parser.parse_args()
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    import uvloop

    uvloop.run(main(args))
