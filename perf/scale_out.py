"""The Redis backend against the memory backend, and 1 against 2 workers, in one run.

    python perf/scale_out.py                                   # both comparisons, 10 s each
    python perf/scale_out.py --only backends --duration 5
    python perf/scale_out.py --only workers
    python perf/scale_out.py --only workers --load 1000 2000 --batch --duration 8

``backends``: rawsse with its in-process producer, on the memory backend and on a real
redis-server (started here, no persistence), at 1000 subscribers x 100 events/s and
10 000 x 10/s, each pair run back to back and alternated, with the minimal server of
perf/peers in the same run for scale. ``workers``: ``python -m rawsse --redis
--workers 1`` then ``--workers 2`` (both unpinned: the kernel places them), fed over
HTTP by perf/publisher.py, at 10 000 x 10/s.

Figures per run: p50/p99 latency, deliveries/s, share delivered, the server's CPU
(summed over its workers), Redis's CPU. Results go to perf/results/scale-out-TIME.json.

This machine has 2 cores: the load generator needs one, so two workers share the
other core with Redis and the generator; what 2 workers show here is that they work
(every event to every client of both, ids shared), not that they double capacity.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import Target, free_port, minimal, rawsse, run, save  # noqa: E402

SCENARIOS = ((1000, 100.0), (10_000, 10.0))
WORKERS_LOAD = (10_000, 10.0)


def start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(directory), "--loglevel", "warning"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while (
        subprocess.run(
            ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True
        ).stdout.strip()
        != "PONG"
    ):
        if time.monotonic() > deadline:
            raise RuntimeError("redis-server did not start")
        time.sleep(0.05)
    return process, f"redis://127.0.0.1:{port}/0"


def flush(url: str) -> None:
    """Start each run on an empty Redis (history of earlier runs costs memory)."""
    port = url.rsplit(":", 1)[1].split("/")[0]
    subprocess.run(["redis-cli", "-p", port, "flushall"], capture_output=True, check=True)


def workers_target(url: str, count: int, redis_pid: int) -> Target:
    port = free_port()
    command = [
        sys.executable, "-m", "rawsse", "--redis", url, "--workers", str(count),
        "--port", str(port), "--no-demo", "--publish-key", "bench", "--log-level", "warning",
        "--history", "100", "--heartbeat", "60", "--slow-timeout", "60", "--conn-rate", "0",
        "--max-connections-per-address", "0", "--max-streams-per-address", "0",
        "--max-streams", "0", "--publish-rate", "0",
    ]  # fmt: skip
    return Target(
        name=f"rawsse-redis-{count}-workers",
        command=command,
        producer="http",
        port=port,
        publish_headers=["Authorization: Bearer bench"],
        cpus="0,1",
        companions={"redis": redis_pid},
    )


def row(label: str, r: dict[str, object], base: dict[str, object] | None) -> str:
    ratio = f"{float(r['p99_ms']) / float(base['p99_ms']):.2f}" if base else "1"  # type: ignore[arg-type]
    redis_cpu = r.get("redis_cpu_share")
    return (
        f"| {label} | {r['clients']} x {r['rate']:g}/s | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
        f"| {ratio} | {r['deliveries_per_s']:,.0f} | {r['delivered_share']:.1%} "
        f"| {r['server_cpu_share']:.0%} | {'' if redis_cpu is None else f'{redis_cpu:.0%}'}"
        f"{'' if r['valid'] else ' INVALID'} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=1, help="alternations of each pair")
    parser.add_argument("--only", choices=("backends", "workers"))
    parser.add_argument(
        "--load", type=float, nargs=2, metavar=("CLIENTS", "RATE"),
        help="one load instead of the defaults (both comparisons)",
    )  # fmt: skip
    parser.add_argument(
        "--batch", action="store_true", help="workers: publish as one streamed NDJSON request"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: list[dict[str, object]] = []
    print("| server | load | p50 ms | p99 ms | p99 ÷ first | deliveries/s | delivered "
          "| server CPU | Redis CPU |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        redis, url = start_redis(Path(tmp))
        try:
            if args.only in (None, "backends"):
                for clients, rate in [args.load] if args.load else SCENARIOS:
                    for _ in range(args.rounds):
                        base = None
                        for label, chosen in (
                            ("rawsse memory", rawsse("inproc")),
                            ("rawsse redis", redis_target(url, redis.pid)),
                            ("minimal-one-write", minimal("one-write")),
                        ):
                            flush(url)
                            r = run(chosen, clients=int(clients), rate=rate, duration=args.duration)
                            r["label"] = label
                            results.append(r)
                            print(row(label, r, base), flush=True)
                            base = base or r
            if args.only in (None, "workers"):
                for _ in range(args.rounds):
                    base = None
                    for count in (1, 2):
                        flush(url)
                        chosen = workers_target(url, count, redis.pid)
                        clients, rate = args.load or WORKERS_LOAD
                        r = run(
                            chosen, clients=int(clients), rate=rate, duration=args.duration,
                            publisher_args=["--batch", "--path", "/publish"] if args.batch else (),
                        )  # fmt: skip
                        form = "batch" if args.batch else "http"
                        r["label"] = f"{count} worker(s), redis, {form}"
                        results.append(r)
                        print(row(str(r["label"]), r, base), flush=True)
                        base = base or r
        finally:
            redis.terminate()
            redis.wait(10)
    print(f"written to {save(results, 'scale-out', args.json)}")


def redis_target(url: str, redis_pid: int) -> Target:
    chosen = rawsse("inproc", "--redis", url)
    chosen.name = "rawsse-redis"
    chosen.companions = {"redis": redis_pid}
    return chosen


if __name__ == "__main__":
    main()
