"""The publish path: events per second accepted, over ``POST /publish`` on keep-alive
connections and from an in-process producer, each with a few subscribers receiving
everything (deliveries are checked, so nothing is accepted and then lost).

    python perf/publish.py --connections 4 --subscribers 10 --duration 5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import run, save, target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--subscribers", type=int, default=10)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--flush-delay", default="auto", help="seconds, or auto")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = {}
    for name, rate in (("rawsse-http", 0.0), ("rawsse", -1.0)):
        chosen = target(name, flush_delay=args.flush_delay)
        assert chosen is not None
        r = run(
            chosen,
            clients=args.subscribers,
            rate=rate,
            size=args.size,
            duration=args.duration,
            publishers=args.connections,
        )
        r["accepted_per_s"] = r["events_published"] / args.duration
        results[name] = r
        how = f"over HTTP, {args.connections} keep-alive connections" if rate == 0 else "in-process"
        print(
            f"{how}: {r['accepted_per_s']:,.0f} events/s accepted, "
            f"{r['delivered_share']:.1%} delivered to {args.subscribers} subscribers, "
            f"server CPU {r['server_cpu_share']:.0%}",
            flush=True,
        )
    print(f"written to {save(results, 'publish', args.json)}")


if __name__ == "__main__":
    main()
