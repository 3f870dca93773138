"""The publish path: events per second accepted, each with a few subscribers receiving
everything (deliveries are checked, so nothing is accepted and then lost), in one run:

- rawsse over HTTP, one event per ``POST /publish?topic=`` on ``--connections``
  keep-alive connections;
- rawsse over HTTP, a batch: one connection streaming newline-delimited JSON events in
  one chunked request;
- rawsse from an in-process producer;
- nginx with nchan (when installed), one event per ``POST`` to its publisher endpoint on
  the same connections, by the same publisher.

    python perf/publish.py --connections 4 --subscribers 10 --duration 5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import run, save, target

#: What each measurement runs: its label, the server, the rate (0: as fast as answered,
#: -1: the in-process burst), and what the publisher is given.
MEASURES = (
    ("rawsse-http", "rawsse-http", 0.0, ()),
    ("rawsse-http-batch", "rawsse-http", 0.0, ("--batch", "--path", "/publish")),
    ("rawsse", "rawsse", -1.0, ()),
    ("nginx-nchan", "nginx-nchan", 0.0, ()),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--subscribers", type=int, default=10)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--flush-delay", default="auto", help="seconds, or auto")
    parser.add_argument(
        "--batch-rate",
        type=float,
        default=0.0,
        help="events/s the batch publisher writes (0: as fast as the server reads)",
    )
    parser.add_argument("--only", nargs="+", choices=[m[0] for m in MEASURES])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = {}
    for label, name, rate, publisher_args in MEASURES:
        if args.only and label not in args.only:
            continue
        chosen = target(name, flush_delay=args.flush_delay)
        if chosen is None:
            print(f"{label}: not installed, skipped", flush=True)
            continue
        batch = "--batch" in publisher_args
        if batch:
            rate = args.batch_rate
        r = run(
            chosen,
            clients=args.subscribers,
            rate=rate,
            size=args.size,
            duration=args.duration,
            publishers=1 if batch else args.connections,
            publisher_args=publisher_args,
        )
        r["accepted_per_s"] = r["events_published"] / args.duration
        results[label] = r
        if rate < 0:
            how = "in-process"
        elif batch:
            how = "over HTTP, one batch request streamed on one connection"
        else:
            how = f"over HTTP, {args.connections} keep-alive connections, one event each"
        print(
            f"{label} ({how}): {r['accepted_per_s']:,.0f} events/s accepted, "
            f"{r['delivered_share']:.1%} delivered to {args.subscribers} subscribers, "
            f"p99 {r['p99_ms']:.1f} ms, server CPU {r['server_cpu_share']:.0%}",
            flush=True,
        )
    print(f"written to {save(results, 'publish', args.json)}")


if __name__ == "__main__":
    main()
