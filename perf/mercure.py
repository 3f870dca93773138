"""Mercure mode against the native API, with the same deliveries, in one run.

Every measure has ``--clients`` subscribers receiving every event of ``--rate`` events/s
(published in-process, to one topic), so the figures differ only by how subscribers
are routed:

- ``native``: ``GET /events?topic=T``, one group;
- ``mercure-exact``: ``GET /.well-known/mercure?topic=T``, anonymous, one group;
- ``mercure-templates``: spread over ``--templates`` distinct URI templates that all
  match T (``https://bench.example/e/{v0}`` ... ``{v99}``): as many groups, and each
  event's topic matched against every template once, then found in the cache;
- ``mercure-private``: every event private, the subscribers spread over ``--grants``
  distinct grant sets (tokens whose ``mercure.subscribe`` all cover T, each with a
  selector of its own): as many groups, each event's visibility checked once per group.

And with ``--exact-topics N`` (1000 in the issue), a second pair with the same
deliveries: each event one update on N topics ``T/0`` ... ``T/N-1``, the subscribers
spread over them (one topic each, round robin), read natively (``native-N``) and
through Mercure (``mercure-exact-N``, its ratio given to ``native-N``).

The minimal server (``minimal-one-write``: each tick's events written once per client)
runs first in each round, as the floor. The measures are interleaved ``--repeat``
times; each figure is given as a ratio to the native run of the same round.

    python perf/mercure.py --clients 1000 --rate 100 --duration 10 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Target, minimal, rawsse, run, save
from rawsse_server import MERCURE_SECRET

TOPIC = "https://bench.example/e/1"
HUB = "/.well-known/mercure"


def token(subscribe: list[str]) -> str:
    import jwt

    claims = {"mercure": {"subscribe": subscribe}, "exp": int(time.time() + 86400)}
    return str(jwt.encode(claims, MERCURE_SECRET, algorithm="HS256"))


def measures(templates: int, grants: int, exact_topics: int) -> dict[str, Target]:
    """The servers of one round, by label."""

    def mercure(paths: list[str], *extra: str) -> Target:
        chosen = rawsse("inproc", "--mercure", "--topic", TOPIC, *extra)
        chosen.subscribe_paths = paths
        return chosen

    native = rawsse("inproc", "--topic", TOPIC)
    native.subscribe_path = "/events?" + urlencode({"topic": TOPIC})
    exact = [f"{HUB}?" + urlencode({"topic": TOPIC})]
    spread = [
        f"{HUB}?" + urlencode({"topic": f"https://bench.example/e/{{v{i}}}"})
        for i in range(templates)
    ]
    granted = [
        f"{HUB}?"
        + urlencode(
            {"topic": TOPIC, "authorization": token([TOPIC, f"https://bench.example/g/{i}"])}
        )
        for i in range(grants)
    ]
    chosen = {
        "minimal": minimal("one-write"),
        "native": native,
        "mercure-exact": mercure(exact),
        "mercure-templates": mercure(spread),
        "mercure-private": mercure(granted, "--private"),
    }
    if exact_topics:
        names = [f"{TOPIC}/{i}" for i in range(exact_topics)]
        spread_native = rawsse("inproc", "--topic", TOPIC, "--topics", str(exact_topics))
        spread_native.subscribe_paths = ["/events?" + urlencode({"topic": n}) for n in names]
        chosen[f"native-{exact_topics}"] = spread_native
        chosen[f"mercure-exact-{exact_topics}"] = mercure(
            [f"{HUB}?" + urlencode({"topic": n}) for n in names], "--topics", str(exact_topics)
        )
    return chosen


def reference(label: str) -> str:
    """The native run a measure is compared with: the one with the same deliveries."""
    suffix = label.rsplit("-", 1)[-1]
    return f"native-{suffix}" if suffix.isdigit() and not label.startswith("native") else "native"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--templates", type=int, default=100)
    parser.add_argument("--grants", type=int, default=10)
    parser.add_argument("--exact-topics", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rounds: list[dict[str, dict[str, object]]] = []
    for round in range(args.repeat):
        results: dict[str, dict[str, object]] = {}
        for label, chosen in measures(args.templates, args.grants, args.exact_topics).items():
            result = run(
                chosen, clients=args.clients, rate=args.rate, size=args.size, duration=args.duration
            )
            results[label] = result
            native = results.get(reference(label))
            if native is None:
                print(
                    f"round {round + 1} {label}: p99 {result['p99_ms']:.1f} ms, "
                    f"server CPU {result['server_cpu_share']:.0%} (the floor)",
                    flush=True,
                )
                continue
            print(
                f"round {round + 1} {label}: p99 {result['p99_ms']:.1f} ms "
                f"({float(result['p99_ms']) / float(native['p99_ms']):.2f} x {reference(label)}), "  # type: ignore[arg-type]
                f"server CPU {result['server_cpu_share']:.0%} "
                f"({float(result['server_cpu_share']) / float(native['server_cpu_share']):.2f} x), "  # type: ignore[arg-type]
                f"{result['delivered_share']:.1%} delivered"
                + ("" if result["valid"] else " INVALID: the load generator saturated"),
                flush=True,
            )
        rounds.append(results)
    for label in rounds[0]:
        if label == "minimal":
            floor = [float(r["native"]["p99_ms"]) / float(r["minimal"]["p99_ms"]) for r in rounds]  # type: ignore[arg-type]
            print(f"native: p99 {statistics.median(floor):.2f} x the minimal server's")
            continue
        base = reference(label)
        if base == label:
            continue
        p99 = [float(r[label]["p99_ms"]) / float(r[base]["p99_ms"]) for r in rounds]  # type: ignore[arg-type]
        cpu = [
            float(r[label]["server_cpu_share"]) / float(r[base]["server_cpu_share"])  # type: ignore[arg-type]
            for r in rounds
        ]
        print(
            f"{label}: p99 {statistics.median(p99):.2f} x {base}, "
            f"CPU {statistics.median(cpu):.2f} x {base} (medians of {len(rounds)})"
        )
    print(f"written to {os.path.relpath(save(rounds, 'mercure', args.json))}")


if __name__ == "__main__":
    main()
