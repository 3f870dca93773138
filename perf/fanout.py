"""Fan-out benchmark: N subscribers, R events/s of S bytes for D seconds; reports
publish-to-receive latency percentiles, deliveries/s and the share delivered, events
lost, server CPU and memory, and the load generator's own CPU (over 90 %: INVALID).

    python perf/fanout.py --clients 1000 --rate 100 --size 100 --duration 10
    python perf/fanout.py --server rawsse-http --publishers 4      # events over HTTP
    python perf/fanout.py --server rawsse-http --batch             # one NDJSON request
    python perf/fanout.py --server nginx-nchan                     # a peer, if installed

Servers: rawsse (in-process producer), rawsse-http, minimal-one-write, minimal-batched,
sse-starlette, aiohttp-sse, nginx-nchan. Results go to perf/results/ as JSON.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import SERVERS, print_figures, run, save, target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="rawsse", choices=SERVERS)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100, help="events per second")
    parser.add_argument("--size", type=int, default=100, help="bytes of data per event")
    parser.add_argument("--duration", type=float, default=10, help="seconds of publishing")
    parser.add_argument("--stall", type=int, default=0, help="percent of clients that stop reading")
    parser.add_argument("--publishers", type=int, default=4, help="HTTP publisher connections")
    parser.add_argument(
        "--flush-delay", default="auto", help="rawsse's --flush-delay: seconds, or auto"
    )
    parser.add_argument(
        "--batch",
        action="store_true",
        help="rawsse-http: publish as one streamed NDJSON request (the batch form)",
    )
    parser.add_argument("--json", type=Path, help="where to write the result")
    args = parser.parse_args()
    chosen = target(args.server, flush_delay=args.flush_delay)
    if chosen is None:
        sys.exit(f"{args.server} is not installed here")
    result = run(
        chosen,
        clients=args.clients,
        rate=args.rate,
        size=args.size,
        duration=args.duration,
        stall=args.stall,
        publishers=args.publishers,
        publisher_args=["--batch", "--path", "/publish"] if args.batch else [],
    )
    result["flush_delay"] = args.flush_delay
    result["publish_form"] = "batch" if args.batch else f"{args.publishers} connections"
    print_figures(result)
    if not result["valid"]:
        print("INVALID: the load generator saturated its core", file=sys.stderr)
    print(f"written to {os.path.relpath(save(result, 'fanout', args.json))}")


if __name__ == "__main__":
    main()
