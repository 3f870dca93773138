"""The load generator: N raw SSE clients on one uvloop (or asyncio) loop.

Each connection reads its stream with bytes operations only: it finds each ``data: ``
field, reads the 20-digit ``time.monotonic_ns()`` stamp the publisher put there and
records the latency on arrival (same clock, same machine). Source addresses are spread
over 127.0.0.2-127.0.0.51 so ephemeral ports do not run out. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import raise_file_limit

MARK = b"data: "
STAMP = 20


class Client(asyncio.Protocol):
    __slots__ = ("latencies", "received", "tail", "done", "ended", "connected")

    def __init__(
        self, latencies: list[int], ended: list[int], connected: asyncio.Future[None]
    ) -> None:
        self.latencies = latencies
        self.ended = ended
        self.tail = b""
        self.done = False
        self.connected = connected

    def data_received(self, data: bytes) -> None:
        buf = self.tail + data if self.tail else data
        if not self.connected.done() and b"\r\n\r\n" in buf:
            self.connected.set_result(None)
        now = time.monotonic_ns()
        start = 0
        append = self.latencies.append
        while True:
            at = buf.find(MARK, start)
            if at < 0:
                self.tail = buf[-(len(MARK) - 1) :]
                return
            stamp = buf[at + 6 : at + 6 + STAMP]
            if stamp.startswith(b"end"):
                if not self.done:
                    self.done = True
                    self.ended.append(1)
                start = at + 9
                continue
            if len(stamp) < STAMP:
                self.tail = buf[at:]
                return
            append(now - int(stamp))
            start = at + 6 + STAMP


async def run(args: argparse.Namespace) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    latencies: list[int] = []
    ended: list[int] = []
    request = b"GET /events?topic=bench HTTP/1.1\r\nHost: bench\r\n\r\n"
    transports = []
    waits = []
    for i in range(args.clients):
        connected: asyncio.Future[None] = loop.create_future()
        transport, _ = await loop.create_connection(
            lambda c=connected: Client(latencies, ended, c),
            "127.0.0.1",
            args.port,
            local_addr=(f"127.0.0.{2 + i % 50}", 0),
        )
        transport.write(request)
        transports.append(transport)
        waits.append(connected)
    await asyncio.wait_for(asyncio.gather(*waits), 60)
    print("connected", file=sys.stderr, flush=True)
    usage_start = resource.getrusage(resource.RUSAGE_SELF)
    wall_start = time.monotonic()
    deadline = wall_start + args.timeout
    while len(ended) < args.clients and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    wall = time.monotonic() - wall_start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage.ru_utime - usage_start.ru_utime) + (usage.ru_stime - usage_start.ru_stime)
    for transport in transports:
        transport.close()
    return {
        "received": len(latencies),
        "ended": len(ended),
        "latencies_ns": latencies,
        "cpu_s": cpu,
        "wall_s": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    raise_file_limit()
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    result = loop.run_until_complete(run(args))
    Path(args.out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
