"""Slow readers: a share of clients stop reading after the response head. The others'
p99 must not move, and the server's memory must stay under its configured bound
(``max_buffer`` per stalled client, on top of what it holds with none stalled).

    python perf/slow_readers.py --clients 1000 --rate 100 --stall 10
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import run, save, target

MAX_BUFFER_MIB = 2.0  # rawsse's default max_buffer, which perf/rawsse_server.py keeps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="rawsse", choices=("rawsse", "rawsse-http"))
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--size", type=int, default=1000, help="bytes per event: fills buffers")
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--stall", type=int, default=10, help="percent of clients stalling")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figures = {}
    for stall in (0, args.stall):
        chosen = target(args.server)
        assert chosen is not None
        figures[stall] = run(
            chosen,
            clients=args.clients,
            rate=args.rate,
            size=args.size,
            duration=args.duration,
            stall=stall,
        )
    calm, stalled = figures[0], figures[args.stall]
    ratio = stalled["p99_ms"] / calm["p99_ms"]
    bound = calm["server_rss_end_mib"] + stalled["stalled_clients"] * MAX_BUFFER_MIB
    print(
        f"p99 of the readers: {calm['p99_ms']:.1f} ms without stalled clients, "
        f"{stalled['p99_ms']:.1f} ms with {stalled['stalled_clients']} stalled ({ratio:.2f} x)"
    )
    print(
        f"delivered to the readers: {calm['delivered_share']:.1%} / {stalled['delivered_share']:.1%}"
    )
    print(
        f"server RSS at the end: {calm['server_rss_end_mib']:.1f} MiB / "
        f"{stalled['server_rss_end_mib']:.1f} MiB (bound {bound:.0f} MiB)"
    )
    result = {"calm": calm, "stalled": stalled, "p99_ratio": ratio, "rss_bound_mib": bound}
    print(f"written to {save(result, 'slow-readers', args.json)}")


if __name__ == "__main__":
    main()
