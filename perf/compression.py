"""Compressed streams against plain ones (#22): bytes on the wire, server CPU and
latency for the same fan-out of realistic JSON events, in one run.

    python perf/compression.py --clients 1000 --rate 100 --size 750 --duration 10 --repeat 3

Each round runs, in turn (the first measure changes from round to round): the minimal
server (the floor, same sizes, plain), rawsse plain, and rawsse with ``--compress``.
Events are JSON orders of 0.5 to 1 KB (``rawsse_server.py --json-events``: the same
keys, numbers, short strings; 1000 drawn once from a fixed seed) behind the
publisher's 20-digit stamp. Every client asks for gzip (``loadgen --gzip 1``), as
browsers do: the plain run is a hub without ``--compress``. Figures: body bytes the
clients read per delivery, server CPU share, p99, and for each the median over the
rounds of the per-round ratio gzip / plain (and p99 over the floor's).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Target, median_ratio, minimal, rawsse, run, save_rounds


def measures(flush_delay: str) -> dict[str, Target]:
    common = ["--flush-delay", flush_delay, "--json-events"]
    return {
        "floor": minimal("batched"),
        "plain": rawsse("inproc", *common),
        "gzip": rawsse("inproc", *common, "--compress"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--size", type=int, default=750, help="mean bytes of JSON per event")
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--flush-delay", default="0")
    parser.add_argument("--json", type=Path, help="where to write the result")
    args = parser.parse_args()
    targets = measures(args.flush_delay)
    names = list(targets)
    rounds: list[dict[str, dict[str, object]]] = []
    for round_no in range(args.repeat):
        order = names[round_no % len(names) :] + names[: round_no % len(names)]
        results: dict[str, dict[str, object]] = {}
        for name in order:
            result = run(
                targets[name],
                clients=args.clients,
                rate=args.rate,
                size=args.size,
                duration=args.duration,
                generator_args=["--gzip", "1"],
            )
            delivered = max(int(result["deliveries"]), 1)  # type: ignore[call-overload]
            result["wire_bytes_per_delivery"] = int(result["wire_bytes"] or 0) / delivered  # type: ignore[call-overload]
            results[name] = result
            print(
                f"round {round_no + 1} {name:>5}: p99 {result['p99_ms']:.1f} ms, "
                f"server CPU {result['server_cpu_share']:.0%}, "
                f"{result['wire_bytes_per_delivery']:.0f} B a delivery, "
                f"delivered {result['delivered_share']:.2%}, "
                f"compressed streams {result['compressed_streams']}, "
                f"generator CPU {result['generator_cpu_share']:.0%}",
                flush=True,
            )
        rounds.append(results)

    summary = {
        "bytes gzip / plain": median_ratio(rounds, "gzip", "plain", "wire_bytes_per_delivery"),
        "server CPU gzip / plain": median_ratio(rounds, "gzip", "plain", "server_cpu_share"),
        "p99 gzip / plain": median_ratio(rounds, "gzip", "plain", "p99_ms"),
        "p99 plain / floor": median_ratio(rounds, "plain", "floor", "p99_ms"),
        "p99 gzip / floor": median_ratio(rounds, "gzip", "floor", "p99_ms"),
    }
    for key, value in summary.items():
        print(f"{key:>26}: {value:.3f}")
    print(f"written to {save_rounds(args, rounds, summary, 'compression')}")


if __name__ == "__main__":
    main()
