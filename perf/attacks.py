"""Memory and loop-stall attacks by clients that never read, measured from outside.

Each run starts a rawsse server in its own process with the CLI's defaults (the demo page
on), attacks it from 127.0.0.2 with sockets that never read a byte, and meanwhile asks
``/healthz`` from 127.0.0.3 on a new connection again and again. It reports the server's
RSS before and at its peak, and the slowest ``/healthz`` answer.

``pipeline``: each connection sends ``--size`` bytes of pipelined ``GET --path`` and
reads nothing. A server that keeps answering what it has buffered, although the client
reads nothing, holds every answer in memory and stalls its loop doing so.

``replay``: the server's history is filled with ``--topics`` x ``--events`` distinct
events of ``--event-size`` bytes, then ``--subscribers`` streams ask for all of those
topics with a ``Last-Event-ID`` from another epoch (which replays everything) and read
nothing. A server that writes a whole replay at once holds it all per stream.

``chunks``: each connection sends ``POST --path`` with a chunked body of ``--size``
bytes in ``--chunk``-byte chunks, and reads nothing. Every chunk costs the HTTP parser
the same whatever its size.

``batch``: each connection sends ``POST /publish`` with an NDJSON body of ``--size``
bytes of 2-byte bad lines (``1``), with the publish key ``--key``. Each line refused
costs an answer line.

``topics``: ``--subscribers`` streams each name ``--topics`` topics of their own (run it
with the per-address limits off). Reports the server's CPU to admit them all and how
long a ``/metrics`` scrape takes then.

``slowbody``: each connection sends a ``Content-Length`` body of ``--size`` bytes to
``POST --path``, ``--chunk`` bytes a send (each on the wire by itself), as a slow or
hostile client does. A server that copies what it has of the body at each read spends
time quadratic in its size.

    python perf/attacks.py pipeline --connections 30 --size 262144
    python perf/attacks.py replay --topics 64 --events 1000 --subscribers 10
    python perf/attacks.py chunks --connections 5 --size 1048576 --chunk 2 --path /publish
    python perf/attacks.py batch --connections 1 --size 16777216 --set 'publish_key="k"' --key k
    python perf/attacks.py topics --subscribers 10000 --topics 64 --set max_streams_per_address=0 \
        --set max_connections_per_address=0 --set conn_rate=0 --set max_streams=0
    python perf/attacks.py slowbody --connections 10 --size 1048576 --chunk 500 --path /publish

``serve`` is the server side, started by the two others.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from _common import cpu_seconds, raise_file_limit, rss_bytes  # noqa: E402

ATTACKER = "127.0.0.2"
PROBER = "127.0.0.3"
MiB = 1024 * 1024
#: The Last-Event-ID of another epoch: the server replays every event it keeps.
FOREIGN_ID = "00000000-1"
#: A /healthz slower than this is recorded as this slow.
PROBE_TIMEOUT = 20.0


# -- the server side --------------------------------------------------------------------


async def serve(args: argparse.Namespace) -> None:
    from rawsse import Config, Hub, Server
    from rawsse.cli.demo import demo_page

    overrides: dict[str, Any] = json.loads(args.config)
    config = Config(port=0, **overrides)
    hub = Hub(config)
    pad = "x" * max(0, args.event_size - 10)
    for n in range(args.events):
        for t in range(args.topics):
            hub.publish(f"t{t}", f"{n:09d} {pad}")
    async with Server(hub, config, demo_page=demo_page()) as server:
        print(f"ready {server.port}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def start_server(args: argparse.Namespace, **fill: int) -> tuple[subprocess.Popen[str], int]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "serve",
        "--loop",
        args.loop,
        "--config",
        json.dumps(dict(args.server_config)),
        *[f"--{name.replace('_', '-')}={value}" for name, value in fill.items()],
    ]
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("ready "):
        process.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return process, int(line.split()[1])


def stop_server(process: subprocess.Popen[str]) -> None:
    assert process.stdin is not None
    process.stdin.close()  # the server's cue to shut down
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# -- the client side --------------------------------------------------------------------


async def connect(port: int, source: str) -> socket.socket:
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    sock.bind((source, 0))
    await loop.sock_connect(sock, ("127.0.0.1", port))
    return sock


async def healthz_ms(port: int, timeout: float) -> float:
    """Milliseconds from connecting to a complete ``/healthz`` answer, on a new
    connection; ``timeout`` seconds (as milliseconds) when none came by then."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(_healthz(port), timeout)
    return (loop.time() - started) * 1000


async def _healthz(port: int) -> None:
    loop = asyncio.get_running_loop()
    sock = await connect(port, PROBER)
    try:
        await loop.sock_sendall(
            sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        answer = b""
        while data := await loop.sock_recv(sock, 4096):
            answer += data
        if not answer.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"/healthz answered {answer[:40]!r}")
    finally:
        sock.close()


async def attack(
    port: int, pid: int, payloads: list[bytes], duration: float, piece: int = 0
) -> dict[str, Any]:
    """Send each payload on its own never-reading connection (``piece`` bytes a send,
    each sent by itself, when given); probe and sample for ``duration`` seconds; close
    everything."""
    loop = asyncio.get_running_loop()
    await healthz_ms(port, 5.0)  # warm: the first answer allocates what every one needs
    rss_before = rss_bytes(pid)
    cpu_before = cpu_seconds(pid)
    peak = rss_before
    sockets = [await connect(port, ATTACKER) for _ in payloads]
    senders = [loop.create_task(_send(s, p, piece)) for s, p in zip(sockets, payloads, strict=True)]
    latencies: list[float] = []
    end = loop.time() + duration
    try:
        while loop.time() < end:
            latencies.append(await healthz_ms(port, PROBE_TIMEOUT))
            peak = max(peak, rss_bytes(pid))
            await asyncio.sleep(0.05)  # a probe every 50 ms: sampling, not waiting
        peak = max(peak, rss_bytes(pid))
        cpu = cpu_seconds(pid) - cpu_before
    finally:
        for task in senders:
            task.cancel()
        await asyncio.gather(*senders, return_exceptions=True)
        for sock in sockets:
            sock.close()
    return {
        "rss_before_mib": rss_before / MiB,
        "rss_peak_mib": peak / MiB,
        "rss_growth_mib": (peak - rss_before) / MiB,
        "server_cpu_s": cpu,
        "server_cpu_share": cpu / duration,
        "healthz_probes": len(latencies),
        "healthz_p50_ms": statistics.median(latencies),
        "healthz_max_ms": max(latencies),
        "healthz_ms": [round(x, 1) for x in latencies],
        "sent_whole": sum(1 for t in senders if not t.cancelled() and t.exception() is None),
    }


async def _send(sock: socket.socket, payload: bytes, piece: int) -> None:
    loop = asyncio.get_running_loop()
    if not piece:
        await loop.sock_sendall(sock, payload)
        return
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for at in range(0, len(payload), piece):
        await loop.sock_sendall(sock, payload[at : at + piece])
        await asyncio.sleep(0.0005)  # pacing: each piece a segment of its own


async def bodies(args: argparse.Namespace) -> dict[str, Any]:
    """``chunks`` and ``slowbody``: bodies that cost the parser per piece."""
    process, port = start_server(args, topics=0, events=0, event_size=0)
    head = f"POST {args.path} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
    try:
        if args.attack == "batch":
            head = "POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
            head += f"Authorization: Bearer {args.key}\r\nContent-Length: {args.size}\r\n\r\n"
            payload = head.encode() + b"1\n" * (args.size // 2)
            piece = 0
        elif args.attack == "chunks":
            chunk = b"%x\r\n%s\r\n" % (args.chunk, b"a" * args.chunk)
            body = chunk * (args.size // args.chunk) + b"0\r\n\r\n"
            payload = (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + body
            piece = 0
        else:
            payload = (head + f"Content-Length: {args.size}\r\n\r\n").encode()
            payload += b"a" * args.size
            piece = args.chunk
        payloads = [payload] * args.connections
        figures = await attack(port, process.pid, payloads, args.duration, piece)
    finally:
        stop_server(process)
    return {
        "attack": args.attack,
        "connections": args.connections,
        "body_bytes": args.size,
        "chunk": args.chunk,
        "path": args.path,
        **figures,
    }


async def topics(args: argparse.Namespace) -> dict[str, Any]:
    process, port = start_server(args, topics=0, events=0, event_size=0)
    loop = asyncio.get_running_loop()
    sockets: list[socket.socket] = []
    try:
        cpu_before = cpu_seconds(process.pid)
        rss_before = rss_bytes(process.pid)
        started = loop.time()
        for n in range(args.subscribers):
            query = "&".join(f"topic=s{n}-{t}" for t in range(args.topics))
            sock = await connect(port, ATTACKER)
            await loop.sock_sendall(
                sock, f"GET /events?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            )
            head = b""
            while b"\r\n\r\n" not in head:
                head += await loop.sock_recv(sock, 4096)
            if not head.startswith(b"HTTP/1.1 200") or b"retry:" in head:
                raise RuntimeError(f"stream {n} refused: {head[:200]!r}")
            sockets.append(sock)
        admitted_s = loop.time() - started
        admit_cpu = cpu_seconds(process.pid) - cpu_before
        scrapes = []
        for _ in range(5):
            begun = loop.time()
            sock = await connect(port, PROBER)
            await loop.sock_sendall(
                sock, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            while await loop.sock_recv(sock, 65536):
                pass
            sock.close()
            scrapes.append((loop.time() - begun) * 1000)
        healthz = await healthz_ms(port, PROBE_TIMEOUT)
        rss_peak = rss_bytes(process.pid)
    finally:
        for sock in sockets:
            sock.close()
        stop_server(process)
    return {
        "attack": "topics",
        "subscribers": args.subscribers,
        "topics_each": args.topics,
        "admit_seconds": admitted_s,
        "admit_server_cpu_s": admit_cpu,
        "rss_growth_mib": (rss_peak - rss_before) / MiB,
        "scrape_ms": [round(x, 1) for x in scrapes],
        "scrape_max_ms": max(scrapes),
        "healthz_after_ms": healthz,
    }


async def pipeline(args: argparse.Namespace) -> dict[str, Any]:
    process, port = start_server(args, topics=0, events=0, event_size=0)
    try:
        request = f"GET {args.path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        payload = request * (args.size // len(request))
        figures = await attack(port, process.pid, [payload] * args.connections, args.duration)
    finally:
        stop_server(process)
    return {
        "attack": "pipeline",
        "connections": args.connections,
        "bytes_each": len(payload),
        "path": args.path,
        **figures,
    }


async def replay(args: argparse.Namespace) -> dict[str, Any]:
    process, port = start_server(
        args, topics=args.topics, events=args.events, event_size=args.event_size
    )
    try:
        query = "&".join(f"topic=t{t}" for t in range(args.topics))
        request = (
            f"GET /events?{query} HTTP/1.1\r\nHost: x\r\nLast-Event-ID: {FOREIGN_ID}\r\n\r\n"
        ).encode()
        figures = await attack(port, process.pid, [request] * args.subscribers, args.duration)
    finally:
        stop_server(process)
    history_mib = args.topics * args.events * args.event_size / MiB
    return {
        "attack": "replay",
        "subscribers": args.subscribers,
        "history_mib": history_mib,
        **figures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "attack", choices=("pipeline", "replay", "chunks", "slowbody", "batch", "topics", "serve")
    )
    parser.add_argument("--loop", default="auto", choices=("auto", "asyncio", "uvloop"))
    parser.add_argument("--duration", type=float, default=4.0, help="seconds of probing")
    parser.add_argument("--connections", type=int, default=30)
    parser.add_argument("--size", type=int, default=256 * 1024, help="pipelined bytes each")
    parser.add_argument("--path", default="/", help="what the pipelined requests ask for")
    parser.add_argument("--key", default="", help="the publish key a batch sends")
    parser.add_argument("--chunk", type=int, default=2, help="bytes a chunk or a send")
    parser.add_argument("--topics", type=int, default=64)
    parser.add_argument("--events", type=int, default=1000, help="events kept per topic")
    parser.add_argument("--event-size", type=int, default=1000)
    parser.add_argument("--subscribers", type=int, default=10)
    parser.add_argument(
        "--set",
        dest="server_config",
        action="append",
        default=[],
        type=lambda item: (item.split("=")[0], json.loads(item.split("=", 1)[1])),
        metavar="FIELD=JSON",
        help="a Config field of the server under attack (default: the CLI's defaults)",
    )
    parser.add_argument("--config", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    raise_file_limit()
    if args.attack == "serve":
        from rawsse.server.loops import loop_factory

        loop = loop_factory(args.loop)()
        loop.run_until_complete(serve(args))
        return
    run = {"pipeline": pipeline, "replay": replay, "topics": topics}.get(args.attack, bodies)
    figures = asyncio.run(run(args))
    figures["loop"] = args.loop
    print(json.dumps(figures, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
