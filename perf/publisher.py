"""HTTP publisher for perf runs: K keep-alive connections POSTing stamped events, or
(``--batch``) one connection streaming them as one newline-delimited JSON request.

Each connection has at most one request in flight (no pipelining), as a typical
application backend publishes. Events are due at ``--rate`` per second in all (0: as
fast as the connections are answered) for ``--duration`` seconds; each body is
``time.monotonic_ns()`` in 20 digits (at ``--rate``, when it was due), padded to ``--size`` bytes. Then one ``end``
event. Prints ``published N`` (events answered 2xx) and ``errors M``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


class Publisher(asyncio.Protocol):
    def __init__(self, idle: asyncio.Queue[Publisher], counts: dict[str, int]) -> None:
        self.idle = idle
        self.counts = counts
        self.transport: asyncio.Transport | None = None
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.idle.put_nowait(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        # Answers are small; one complete head plus its body ends in the body's length.
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                length = int(head[at + 15 :].split(b"\r\n", 1)[0])
            end = head_end + 4 + length
            if len(self.buffer) < end:
                return
            ok = self.buffer[9:10] == b"2"
            self.buffer = self.buffer[end:]
            self.counts["ok" if ok else "errors"] += 1
            self.idle.put_nowait(self)

    def connection_lost(self, exc: Exception | None) -> None:
        # A server that closes a publisher's connection mid-run (nginx after its
        # keepalive_requests) would leave the run waiting for ever: fail instead.
        if not self.counts.get("done"):
            print(f"publisher: the server closed a connection ({exc or 'EOF'})", file=sys.stderr)
            os._exit(1)

    def send(self, request: bytes) -> None:
        assert self.transport is not None
        self.transport.write(request)


def request(path: str, headers: list[str], body: bytes) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: bench", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def main(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    idle: asyncio.Queue[Publisher] = asyncio.Queue()
    counts = {"ok": 0, "errors": 0}
    connections = []
    for _ in range(args.connections):
        _transport, protocol = await loop.create_connection(
            lambda: Publisher(idle, counts), "127.0.0.1", args.port
        )
        connections.append(protocol)
    pad = b"x" * max(0, args.size - 20)
    interval = 1.0 / args.rate if args.rate else 0.0
    start = loop.time()
    start_ns = time.monotonic_ns()
    end = start + args.duration
    n = 0
    while True:
        now = loop.time()
        stamp = time.monotonic_ns()
        if args.rate:
            if n >= int(args.rate * args.duration):
                break
            # Stamped with when it was due: waiting for a free connection (the server
            # slow to answer) or for this loop counts against the latency.
            stamp = start_ns + round(n * interval * 1e9)
            delay = (stamp - time.monotonic_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
        elif now >= end:
            break
        publisher = await idle.get()
        body = b"%020d" % stamp + pad
        publisher.send(request(args.path, args.header, body))
        n += 1
    while idle.qsize() < len(connections):
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.5)
    elapsed = loop.time() - start
    answered = counts["ok"] + counts["errors"]
    published = counts["ok"]
    last = await idle.get()
    last.send(request(args.path, args.header, b"end"))
    while counts["ok"] + counts["errors"] == answered:
        await asyncio.sleep(0.01)
    print(f"published {published}", flush=True)
    print(f"errors {counts['errors']}", flush=True)
    print(f"elapsed {elapsed:.3f}", flush=True)
    counts["done"] = 1
    for publisher in connections:
        assert publisher.transport is not None
        publisher.transport.close()


async def batch_main(args: argparse.Namespace) -> None:
    """``--batch``: one connection, one chunked request of newline-delimited JSON
    events, written ``--lines`` at a time as fast as the server reads them (or as they
    fall due at ``--rate``, one write a ``--tick`` at most), for ``--duration`` seconds;
    then the ``end`` event, and the answer's lines counted."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
    head = [f"POST {args.path} HTTP/1.1", "Host: bench", "Transfer-Encoding: chunked"]
    head += ["Content-Type: application/x-ndjson", *args.header]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
    prefix = b'{"topic":"%s","data":"' % args.topic.encode()
    suffix = b"x" * max(0, args.size - 20) + b'"}\n'
    start = loop.time()
    start_ns = time.monotonic_ns()
    end = start + args.duration
    interval = 1.0 / args.rate if args.rate else 0.0
    sent = 0
    while True:
        now = loop.time()
        if now >= end:
            break
        count = args.lines
        if args.rate:
            due = int((now - start) / interval) + 1
            count = min(count, due - sent)
            if count <= 0:
                # Nothing due: sleep until the next line is, but at least --tick, so that
                # a fast rate goes a few lines a write, as a producer that batches would
                # write it, not one wake-up (and one read on the server) a line.
                await asyncio.sleep(max(start + (sent + 1) * interval - now, args.tick))
                continue
        # At --rate, stamped with when the first of these lines was due (as above).
        due = start_ns + round(sent * interval * 1e9) if args.rate else time.monotonic_ns()
        stamp = b"%020d" % due
        body = (prefix + stamp + suffix) * count
        writer.write(b"%x\r\n%s\r\n" % (len(body), body))
        sent += count
        await writer.drain()
    elapsed = loop.time() - start
    last = b'{"topic":"%s","event":"end","data":"end"}\n' % args.topic.encode()
    writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(last), last))
    await writer.drain()
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    answer = await reader.readexactly(length)
    lines = answer.splitlines()[:-1]  # the last answers the end event
    published = sum(1 for line in lines if line.startswith(b'{"id"'))
    writer.close()
    print(f"published {published}", flush=True)
    print(f"errors {len(lines) - published} ({status_line.split()[1].decode()})", flush=True)
    print(f"elapsed {elapsed:.3f}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/publish?topic=bench")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--batch", action="store_true", help="one chunked NDJSON request")
    parser.add_argument("--topic", default="bench", help="--batch: the events' topic")
    parser.add_argument("--lines", type=int, default=200, help="--batch: lines per write")
    parser.add_argument(
        "--tick", type=float, default=0.001, help="--batch: least seconds between writes"
    )
    args = parser.parse_args()
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(batch_main(args) if args.batch else main(args))
