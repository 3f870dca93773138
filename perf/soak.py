"""A soak: ``python -m rawsse`` for minutes under subscribers that keep coming and going
(some reading slowly, some never), publishes at a steady rate over HTTP, one event per
request and in batches, across many topics. It passes when:

- after the warm-up, the server's RSS stays within ±5 % of its median;
- once every client has left, its open file descriptors are back to where they were
  before the first came;
- no client that stayed connected missed an event of its topics (each topic's events
  carry a sequence number, published in order);
- every stream that ended is counted under one reason (``rawsse_disconnects_total``),
  and every drop a client saw is among the server's drops;
- the population holds: after the warm-up, the server serves (median) at least
  ``--subscribers`` less the lagging share less 5 % (``rawsse_connected_clients``).

    python perf/soak.py                                  # 10 minutes, 5000 subscribers
    python perf/soak.py --duration 15 --warmup 6 --subscribers 150 --lifetime 1 4 \
        --lagging-lifetime 6 10 --history-ttl 2 --slow-timeout 2 \
        --firehose-size 20000 --lagging 10 \
        --max-buffer 65536   # what CI runs: a laggard's buffer, a small share of RSS

The server runs on CPU 0; the clients and publishers (this process) on CPU 1. History
lives ``--history-ttl`` seconds, so that it reaches its steady size within the warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pinned, raise_file_limit, rss_bytes
from harness import free_port, save

KEY = "soak"
#: Topics published one event per request (two connections, each its own topics, so
#: each topic's events are published in order), and topics published in batches.
SINGLE, BATCHED = 50, 50
#: The topic slow and stalled readers also read: larger events, so that they fall behind.
FIREHOSE = "firehose"
SOURCES = 20  # loopback addresses the clients come from


class Tally:
    """What the clients saw."""

    def __init__(self) -> None:
        self.connected = 0
        self.left = 0  # closed by the client after its lifetime
        self.dropped = 0  # closed by the server
        self.dropped_normal = 0  # of those, clients that read everything
        self.gaps = 0  # events missed by clients that were not dropped
        self.events = 0
        self.failed = 0  # connections refused or answered with something but 200


def parse_events(buffer: bytearray, last: dict[str, int], tally: Tally) -> int:
    """Take the complete events out of ``buffer``; count gaps per topic; return how
    many gaps were found."""
    gaps = 0
    while True:
        end = buffer.find(b"\n\n")
        if end < 0:
            return gaps
        block = bytes(buffer[:end])
        del buffer[: end + 2]
        for line in block.split(b"\n"):
            if line.startswith(b"data: "):
                topic, seq = line[6:].split(b" ", 2)[:2]
                name, number = topic.decode(), int(seq)
                previous = last.get(name)
                if previous is not None and number != previous + 1:
                    gaps += 1
                last[name] = number
                tally.events += 1


async def subscriber(
    args: argparse.Namespace, kind: str, index: int, tally: Tally, stop: asyncio.Event
) -> None:
    """One client: connect, read as its kind does until its lifetime ends, until it
    sees it was dropped, or until the soak stops; then check and leave.

    Slow and stalled clients have a lifetime too (``--lagging-lifetime``), long enough
    for the server to drop them: that comes once the kernel's buffers for the stream
    are full, about 4 MiB on loopback, some 6 s of the firehose. A client that does
    not read cannot see the drop, whose end of stream waits behind the data it has
    not read; it reads what is pending when it leaves. Without a lifetime, each
    dropped laggard would keep its place in the population until the soak ends, and
    the server's streams would dwindle (from 150 to about 90 in CI's 15 s) while the
    clients' count stayed at 150."""
    rng = random.Random(index)
    topics = [f"s{rng.randrange(SINGLE)}", f"b{rng.randrange(BATCHED)}"]
    if kind != "normal":
        topics.append(FIREHOSE)
    query = "&".join(f"topic={t}" for t in topics)
    source = f"127.0.0.{2 + index % SOURCES}"
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", args.port, local_addr=(source, 0)
        )
    except OSError:
        tally.failed += 1
        return
    # HTTP/1.0: the body is the stream itself, unframed.
    writer.write(f"GET /events?{query} HTTP/1.0\r\nHost: soak\r\n\r\n".encode())
    buffer = bytearray()
    last: dict[str, int] = {}
    gaps = 0
    loop = asyncio.get_running_loop()
    lifetime = rng.uniform(*(args.lifetime if kind == "normal" else args.lagging_lifetime))
    if index < args.subscribers:
        # The first clients all join at once. Each stays for what is left of a lifetime
        # already under way, as in a population long running: their departures, and
        # the laggards' drops, are spread from the start instead of coming in a wave.
        lifetime *= rng.random()
    deadline = loop.time() + lifetime
    dropped = False
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        if not head.startswith(b"HTTP/1.1 200"):
            tally.failed += 1
            return
        tally.connected += 1
        while not stop.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            if kind == "stalled":
                # Never reads; whether it was dropped shows when it finally does.
                stopped = asyncio.ensure_future(stop.wait())
                await asyncio.wait([stopped], timeout=remaining)
                stopped.cancel()
                break
            data = await read(reader, min(remaining, 1.0), 4096 if kind == "slow" else 65536)
            if data is None:
                continue
            if not data:
                dropped = True
                break
            buffer += data
            gaps += parse_events(buffer, last, tally)
            if kind == "slow":
                await asyncio.sleep(0.5)  # reads 4 KiB every half second
        if not dropped and kind != "normal":
            dropped = await ended_by_server(reader)
    except (ConnectionError, asyncio.IncompleteReadError):
        dropped = True
    finally:
        writer.close()
    if dropped:
        tally.dropped += 1
        tally.dropped_normal += kind == "normal"
    else:
        tally.left += 1
        tally.gaps += gaps


async def read(reader: asyncio.StreamReader, timeout: float, size: int) -> bytes | None:
    """Up to ``size`` bytes; ``None`` when nothing came within ``timeout``."""
    try:
        return await asyncio.wait_for(reader.read(size), timeout)
    except asyncio.TimeoutError:
        return None


async def ended_by_server(reader: asyncio.StreamReader) -> bool:
    """Whether the server ended this stream: read at full speed what is pending. A
    stream the server dropped ends behind what the kernels still hold for it (a few
    MiB at most); one still open keeps coming, or falls silent once publishing stops."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 3.0
    while (remaining := deadline - loop.time()) > 0:
        data = await read(reader, min(remaining, 1.0), 1 << 20)
        if data is None:
            return False
        if not data:
            return True
    return False


async def population(args: argparse.Namespace, tally: Tally, stop: asyncio.Event) -> None:
    """Keep ``--subscribers`` clients connected, ``--lagging`` % of them slow (two
    thirds) or stalled (a third), the rest reading everything; each replaced as it
    ends."""
    stalled = args.lagging // 3
    kinds = ["stalled"] * stalled + ["slow"] * (args.lagging - stalled)
    kinds += ["normal"] * (100 - args.lagging)
    running: set[asyncio.Task[None]] = set()
    index = 0
    while not stop.is_set():
        while len(running) < args.subscribers and not stop.is_set():
            kind = kinds[index % len(kinds)]
            task = asyncio.ensure_future(subscriber(args, kind, index, tally, stop))
            running.add(task)
            task.add_done_callback(running.discard)
            index += 1
            if index % 100 == 0:
                await asyncio.sleep(0.01)  # connect in waves, not all in one iteration
        await asyncio.sleep(0.1)
    await asyncio.gather(*running)


async def post(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    path: str,
    body: bytes,
    content_type: str,
) -> int:
    """One keep-alive request; its status."""
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: soak\r\nAuthorization: Bearer {KEY}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    await reader.readexactly(length)
    return int(head.split()[1])


async def publishers(args: argparse.Namespace, stop: asyncio.Event, counts: dict[str, int]) -> None:
    """``--rate`` events/s in all: half one per request on two connections (each its own
    topics), half in a batch every 100 ms with the firehose's larger events."""
    seq: dict[str, int] = {}

    def line(topic: str, size: int) -> str:
        seq[topic] = seq.get(topic, 0) + 1
        return f"{topic} {seq[topic]} " + "x" * size

    async def single(part: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
        topics = [f"s{i}" for i in range(part, SINGLE, 2)]
        interval = 4 / args.rate  # a quarter of the rate on each of two connections
        while not stop.is_set():
            topic = random.choice(topics)
            status = await post(
                reader, writer, f"/publish?topic={topic}", line(topic, 80).encode(), "text/plain"
            )
            counts["single" if status == 200 else "refused"] += 1
            await asyncio.sleep(interval)
        writer.close()

    async def batches() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
        while not stop.is_set():
            lines = [
                {"topic": t, "data": line(t, 80)}
                for t in (f"b{random.randrange(BATCHED)}" for _ in range(args.rate // 20))
            ]
            lines += [
                {"topic": FIREHOSE, "data": line(FIREHOSE, args.firehose_size)} for _ in range(4)
            ]
            body = b"".join(json.dumps(x).encode() + b"\n" for x in lines)
            status = await post(reader, writer, "/publish", body, "application/x-ndjson")
            counts["batched" if status == 200 else "refused"] += len(lines)
            await asyncio.sleep(0.1)
        writer.close()

    await asyncio.gather(single(0), single(1), batches())


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def scrape(port: int) -> str:
    """The server's /metrics."""
    import urllib.request

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {KEY}"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        body: bytes = answer.read()
    return body.decode()


def disconnects(metrics: str) -> dict[str, float]:
    """``rawsse_disconnects_total`` by reason."""
    reasons = {}
    for line in metrics.splitlines():
        if line.startswith("rawsse_disconnects_total{"):
            label, value = line.split("} ")
            reasons[label.split('"')[1]] = float(value)
    return reasons


def streams(metrics: str) -> int:
    """``rawsse_connected_clients``: the streams the server holds."""
    for line in metrics.splitlines():
        if line.startswith("rawsse_connected_clients "):
            return int(line.split()[1])
    raise ValueError("no rawsse_connected_clients in /metrics")


async def soak(args: argparse.Namespace, server: subprocess.Popen[str]) -> dict[str, object]:
    tally, counts = Tally(), {"single": 0, "batched": 0, "refused": 0}
    stop = asyncio.Event()
    fds_before = open_fds(server.pid)
    started = time.monotonic()
    work = [
        asyncio.ensure_future(population(args, tally, stop)),
        asyncio.ensure_future(publishers(args, stop, counts)),
    ]
    samples: list[tuple[float, int]] = []
    held: list[tuple[float, int]] = []  # the server's streams, when RSS was sampled
    while time.monotonic() - started < args.duration:
        await asyncio.sleep(args.sample)
        at = time.monotonic() - started
        samples.append((at, rss_bytes(server.pid)))
        held.append((at, streams(await asyncio.to_thread(scrape, args.port))))
        print(
            f"{at:6.0f} s  RSS {samples[-1][1] / 2**20:6.1f} MiB  {held[-1][1]} streams held, "
            f"{tally.connected - tally.left - tally.dropped} clients connected, "
            f"{tally.left} left, {tally.dropped} dropped, "
            f"{counts['single'] + counts['batched']} published",
            flush=True,
        )
    stop.set()
    await asyncio.gather(*work)
    # Every client has left: the server's descriptors come back to where they were.
    fds_after = open_fds(server.pid)
    deadline = time.monotonic() + 15
    while fds_after != fds_before and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        fds_after = open_fds(server.pid)
    reasons = disconnects(scrape(args.port))
    steady = [rss for at, rss in samples if at >= args.warmup]
    median = statistics.median(steady)
    spread = max(abs(rss - median) / median for rss in steady)
    streams_median = statistics.median(count for at, count in held if at >= args.warmup)
    server_drops = sum(v for k, v in reasons.items() if k not in ("client_closed", "shutdown"))
    checks = {
        "rss_within_5_percent": spread <= 0.05,
        # The population holds: the server serves the clients that are connected. Only
        # laggards can be gone unseen (dropped, not yet aware); 5 % more for clients
        # between leaving and being replaced.
        "population_held": streams_median >= (95 - args.lagging) / 100 * args.subscribers,
        "fds_back_to_baseline": fds_after == fds_before,
        "no_event_lost_by_a_client_that_stayed": tally.gaps == 0,
        # Every stream that ended is counted under one reason; and every drop a client
        # saw is among the server's drops (a client cannot see them all: the kernel
        # ending an unacknowledging connection, dead_peer, sends it nothing).
        "every_stream_counted_under_a_reason": sum(reasons.values()) == tally.connected,
        "every_drop_counted_under_a_reason": server_drops >= tally.dropped,
        "no_reading_client_dropped": tally.dropped_normal == 0,
        "no_publish_refused": counts["refused"] == 0,
    }
    return {
        "duration_s": args.duration,
        "subscribers": args.subscribers,
        "rate": args.rate,
        "rss_median_mib": median / 2**20,
        "rss_spread": spread,
        "rss_samples_mib": [round(rss / 2**20, 2) for _at, rss in samples],
        "streams_held": [count for _at, count in held],
        "streams_held_median": streams_median,
        "fds_before": fds_before,
        "fds_after": fds_after,
        "clients_connected": tally.connected,
        "clients_left": tally.left,
        "clients_dropped": tally.dropped,
        "client_connect_failures": tally.failed,
        "events_received": tally.events,
        "gaps": tally.gaps,
        "published": counts,
        "disconnects": reasons,
        "checks": checks,
        "passed": all(checks.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600)
    parser.add_argument("--warmup", type=float, default=60)
    parser.add_argument("--subscribers", type=int, default=5000)
    parser.add_argument("--rate", type=int, default=200, help="events/s published in all")
    parser.add_argument(
        "--lifetime",
        type=float,
        nargs=2,
        default=[10.0, 120.0],
        help="seconds a reading client stays, drawn between these",
    )
    parser.add_argument(
        "--lagging", type=int, default=3, help="%% of clients slow or never reading"
    )
    parser.add_argument(
        "--lagging-lifetime",
        type=float,
        nargs=2,
        default=[15.0, 30.0],
        help="seconds a slow or stalled client stays, drawn between these",
    )
    parser.add_argument("--history-ttl", type=float, default=30)
    parser.add_argument("--slow-timeout", type=float, default=10)
    parser.add_argument(
        "--max-buffer", type=int, default=262144, help="the server's --max-buffer, bytes"
    )
    parser.add_argument(
        "--firehose-size", type=int, default=16000, help="bytes of each firehose event (40/s)"
    )
    parser.add_argument("--sample", type=float, default=5, help="seconds between RSS samples")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    raise_file_limit()
    args.port = free_port()
    command = [
        sys.executable,
        "-m",
        "rawsse",
        "--port",
        str(args.port),
        "--publish-key",
        KEY,
        "--metrics-key",
        KEY,
        "--no-demo",
        "--log-level",
        "warning",
        "--history-ttl",
        str(args.history_ttl),
        "--publish-rate",
        "0",
        "--conn-rate",
        "0",
        "--max-connections-per-address",
        "0",
        "--max-streams-per-address",
        "0",
        "--max-streams",
        "0",
        "--max-buffer",
        str(args.max_buffer),
        "--write-high-water",
        "32768",
        "--slow-timeout",
        str(args.slow_timeout),
    ]
    server = subprocess.Popen(pinned(command, 0), stdout=subprocess.DEVNULL, text=True)
    try:
        wait_listening(args.port, server)
        if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {1})
        try:
            import uvloop

            result = uvloop.run(soak(args, server))
        except ImportError:
            result = asyncio.run(soak(args, server))
    finally:
        server.terminate()
        server.wait(30)
    for name, ok in result["checks"].items():  # type: ignore[attr-defined]
        print(f"{'pass' if ok else 'FAIL'}: {name.replace('_', ' ')}")
    print(f"written to {save(result, 'soak', args.json)}")
    sys.exit(0 if result["passed"] else 1)


def wait_listening(port: int, server: subprocess.Popen[str]) -> None:
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit("the server exited at start")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("the server did not listen within 30 s")


if __name__ == "__main__":
    main()
