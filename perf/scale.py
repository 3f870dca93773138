"""p99 latency and server CPU as the number of subscribers grows.

    python perf/scale.py                               # 100, 1000, 10 000, 19 000 at 10/s
    python perf/scale.py --counts 10000 19000 --rate 1 --server rawsse-http

Clients come from 127.0.0.2-51 (ephemeral ports do not run out); the soft open-file
limit is raised to the hard one (20 000 per process here, so 19 000 clients at most).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import SERVERS, run, save, target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="rawsse", choices=SERVERS)
    parser.add_argument("--counts", type=int, nargs="+", default=[100, 1000, 10_000, 19_000])
    parser.add_argument("--rate", type=float, default=10)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = []
    print(
        "| subscribers | events/s | p50 | p99 | max | delivered | server CPU | RSS/subscriber | generator CPU |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for count in args.counts:
        chosen = target(args.server)
        if chosen is None:
            sys.exit(f"{args.server} is not installed here")
        r = run(chosen, clients=count, rate=args.rate, duration=args.duration)
        results.append(r)
        print(
            f"| {count} | {args.rate:g} | {r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms "
            f"| {r['max_ms']:.1f} ms | {r['delivered_share']:.1%} | {r['server_cpu_share']:.0%} "
            f"| {r['rss_per_subscriber_kib']:.2f} KiB | {r['generator_cpu_share']:.0%}"
            f"{'' if r['valid'] else ' INVALID'} |",
            flush=True,
        )
    print(f"written to {save(results, 'scale', args.json)}")


if __name__ == "__main__":
    main()
