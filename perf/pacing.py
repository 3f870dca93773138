"""The flush delay's figures (#22): in-process against HTTP-fed publishing, at the
default (adaptive) flush delay and at 0, beside the floor, in one run.

    python perf/pacing.py --rate 100 --repeat 3       # 1000 x 100/s
    python perf/pacing.py --rate 2000 --repeat 2      # 1000 x 2000/s
    python perf/pacing.py --rate 4000 --repeat 1      # the moonshot

Each round runs, in turn (the first measure changes from round to round):

- ``floor``: the minimal server writing each tick's events once per client
  (``minimal-batched``);
- ``floor-http``: the same minimal server fed like ``http-0`` (its events written once
  per client per loop iteration): the floor for publishing over HTTP;
- ``inproc-0`` and ``inproc-auto``: rawsse publishing in-process (``Hub.publish`` from
  a timer), with ``--flush-delay 0`` and the default;
- ``http-0`` and ``http-auto``: rawsse fed by ``publisher.py``, one ``POST /publish`` an
  event over ``--publishers`` keep-alive connections (one request in flight each);
- ``batch-auto``: rawsse fed one streamed NDJSON request (the batch form), default flags.

Every event is stamped with when it was due, so a server (or a publisher it holds up)
that falls behind pays for it in latency. Figures: p99, server CPU share, the share
delivered, the load generator's CPU; and the medians over the rounds of the per-round
ratios named in the summary.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Target, median_ratio, minimal, rawsse, run, save_rounds

#: label -> (server, --flush-delay, publisher arguments)
MEASURES: dict[str, tuple[str, str, list[str]]] = {
    "floor": ("minimal-batched", "0", []),
    "floor-http": ("minimal-batched-http", "0", []),
    "inproc-0": ("inproc", "0", []),
    "inproc-auto": ("inproc", "auto", []),
    "http-0": ("http", "0", []),
    "http-auto": ("http", "auto", []),
    "batch-auto": ("http", "auto", ["--batch", "--path", "/publish"]),
}

#: (name, numerator, denominator, figure)
RATIOS = [
    ("CPU http / inproc, flush 0", "http-0", "inproc-0", "server_cpu_share"),
    ("CPU http / inproc, default", "http-auto", "inproc-auto", "server_cpu_share"),
    ("p99 http / inproc, flush 0", "http-0", "inproc-0", "p99_ms"),
    ("p99 http default / inproc 0", "http-auto", "inproc-0", "p99_ms"),
    ("p99 http / inproc, default", "http-auto", "inproc-auto", "p99_ms"),
    ("p99 inproc default / floor", "inproc-auto", "floor", "p99_ms"),
    ("CPU http floor / floor", "floor-http", "floor", "server_cpu_share"),
    ("CPU http / http floor, flush 0", "http-0", "floor-http", "server_cpu_share"),
    ("p99 http default / http floor", "http-auto", "floor-http", "p99_ms"),
    ("CPU http default / http floor", "http-auto", "floor-http", "server_cpu_share"),
    ("p99 batch default / inproc default", "batch-auto", "inproc-auto", "p99_ms"),
]


def target(label: str) -> Target:
    server, flush_delay, _ = MEASURES[label]
    if server.startswith("minimal-"):
        mode = server.removeprefix("minimal-")
        fed = "http" if mode.endswith("-http") else "inproc"
        return minimal(mode.removesuffix("-http"), fed)
    return rawsse(server, "--flush-delay", flush_delay)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--duration", type=float, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument("--only", nargs="*", choices=list(MEASURES), help="these measures alone")
    parser.add_argument("--json", type=Path, help="where to write the result")
    args = parser.parse_args()
    names = args.only or list(MEASURES)
    rounds: list[dict[str, dict[str, object]]] = []
    for round_no in range(args.repeat):
        shift = round_no % len(names)
        results: dict[str, dict[str, object]] = {}
        for label in names[shift:] + names[:shift]:
            result = run(
                target(label),
                clients=args.clients,
                rate=args.rate,
                size=args.size,
                duration=args.duration,
                publishers=args.publishers,
                publisher_args=MEASURES[label][2],
            )
            results[label] = result
            print(
                f"round {round_no + 1} {label:>11}: p99 {result['p99_ms']:.1f} ms, "
                f"server CPU {result['server_cpu_share']:.0%}, "
                f"delivered {result['delivered_share']:.2%}, "
                f"generator CPU {result['generator_cpu_share']:.0%}",
                flush=True,
            )
        rounds.append(results)
    summary: dict[str, float] = {}
    for name, top, bottom, figure in RATIOS:
        if top in names and bottom in names:
            summary[name] = median_ratio(rounds, top, bottom, figure)
            print(f"{name:>36}: {summary[name]:.3f}")
    print(f"written to {save_rounds(args, rounds, summary, 'pacing')}")


if __name__ == "__main__":
    main()
