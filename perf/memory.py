"""RSS per idle subscriber: the server's growth from empty to N connected, idle
subscribers, divided by N, at 10 000 and at the largest count the machine allows.

    python perf/memory.py                       # rawsse at 10 000 and 19 000
    python perf/memory.py --server aiohttp-sse --counts 10000
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
    parser.add_argument("--counts", type=int, nargs="+", default=[10_000, 19_000])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = []
    for count in args.counts:
        chosen = target(args.server)
        if chosen is None:
            sys.exit(f"{args.server} is not installed here")
        r = run(chosen, clients=count, rate=1, hold=True)
        results.append(r)
        print(
            f"{args.server}: {count} idle subscribers, {r['server_rss_idle_mib']:.1f} MiB, "
            f"{r['rss_per_subscriber_kib']:.2f} KiB per subscriber",
            flush=True,
        )
    print(f"written to {save(results, 'memory', args.json)}")


if __name__ == "__main__":
    main()
