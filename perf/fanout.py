"""Fan-out benchmark: N subscribers, R events/s of S bytes for D seconds, from an
in-process producer; reports publish-to-receive latency percentiles, deliveries/s,
events lost, and the CPU and memory of the server and of the load generator.

    python perf/fanout.py --clients 1000 --rate 100 --size 100 --duration 10

The server runs pinned to CPU 0 and the load generator to CPU 1 (when taskset exists).
A run where the load generator used over 90 % of its core is marked INVALID: its
figures measure the generator, not the server. Results go to perf/results/ as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import cpu_seconds, pinned, raise_file_limit, rss_bytes  # noqa: E402


def percentile(sorted_values: list[int], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, int(fraction * len(sorted_values)))
    return sorted_values[index] / 1e6


def read_until(process: subprocess.Popen[str], prefix: str, timeout: float) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"server exited before {prefix!r}")
        if line.startswith(prefix):
            return line.strip()
    raise TimeoutError(prefix)


def run(args: argparse.Namespace) -> dict[str, object]:
    raise_file_limit()
    server = subprocess.Popen(
        pinned(
            [
                sys.executable,
                str(HERE / "rawsse_server.py"),
                "--clients",
                str(args.clients),
                "--rate",
                str(args.rate),
                "--size",
                str(args.size),
                "--duration",
                str(args.duration),
                "--loop",
                args.loop,
            ],
            0,
        ),
        stdout=subprocess.PIPE,
        text=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "clients.json"
        try:
            port = int(read_until(server, "ready", 30).split()[1])
            rss_empty = rss_bytes(server.pid)
            clients = subprocess.Popen(
                pinned(
                    [
                        sys.executable,
                        str(HERE / "load_clients.py"),
                        "--port",
                        str(port),
                        "--clients",
                        str(args.clients),
                        "--timeout",
                        str(args.duration + 30),
                        "--out",
                        str(out),
                    ],
                    1,
                )
            )
            read_until(server, "producing", 120)
            rss_idle = rss_bytes(server.pid)
            cpu_start = cpu_seconds(server.pid)
            published = int(read_until(server, "published", args.duration + 60).split()[1])
            server_cpu = cpu_seconds(server.pid) - cpu_start
            rss_end = rss_bytes(server.pid)
            clients.wait(timeout=args.duration + 60)
            result = json.loads(out.read_text())
        finally:
            for process in (server,):
                if process.poll() is None:
                    process.terminate()
                    process.wait(10)
    latencies = sorted(result.pop("latencies_ns"))
    expected = published * args.clients
    generator_share = result["cpu_s"] / max(result["wall_s"], 1e-9)
    return {
        "server": "rawsse",
        "loop": args.loop,
        "clients": args.clients,
        "rate": args.rate,
        "size": args.size,
        "duration": args.duration,
        "events_published": published,
        "deliveries_expected": expected,
        "deliveries": result["received"],
        "lost": expected - result["received"],
        "deliveries_per_s": result["received"] / args.duration,
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "p999_ms": percentile(latencies, 0.999),
        "max_ms": latencies[-1] / 1e6 if latencies else float("nan"),
        "server_cpu_share": server_cpu / args.duration,
        "server_rss_idle_mib": rss_idle / 2**20,
        "server_rss_end_mib": rss_end / 2**20,
        "rss_per_subscriber_kib": (rss_idle - rss_empty) / args.clients / 1024,
        "generator_cpu_share": generator_share,
        "valid": generator_share < 0.9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100, help="events per second")
    parser.add_argument("--size", type=int, default=100, help="bytes of data per event")
    parser.add_argument("--duration", type=float, default=10, help="seconds of publishing")
    parser.add_argument("--loop", default="auto", choices=("auto", "asyncio", "uvloop"))
    parser.add_argument(
        "--json", type=Path, help="where to write the result (default perf/results/)"
    )
    args = parser.parse_args()
    result = run(args)
    for key, value in result.items():
        print(f"{key:>24}: {value:.3f}" if isinstance(value, float) else f"{key:>24}: {value}")
    if not result["valid"]:
        print("INVALID: the load generator saturated its core", file=sys.stderr)
    target = args.json or HERE / "results" / f"fanout-{time.strftime('%Y%m%d-%H%M%S')}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2))
    print(f"written to {os.path.relpath(target)}")


if __name__ == "__main__":
    main()
