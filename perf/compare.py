"""rawsse against its peers, in one run, by the same harness and load generator.

    python perf/compare.py                      # every installed server, default scenarios
    python perf/compare.py --quick              # short runs, to see that it all works

Scenarios (each server that is installed; peers missing here are listed as skipped):
  1. 1000 subscribers x 100 events/s (median p99 of --repeat runs)
  2. 10 000 subscribers x 10 events/s
  3. RSS per idle subscriber at 10 000 subscribers
In-process servers publish through their own API; rawsse-http and nginx-nchan are fed by
four keep-alive HTTP publishers. Ratios are to rawsse (in-process) and, for HTTP, to
rawsse-http, since absolute times vary from run to run. Writes JSON (and a PNG chart
when matplotlib is installed: the ``perf`` extra) to perf/results/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import SERVERS, run, save, target


def median_run(name: str, repeat: int, **kwargs: Any) -> dict[str, Any]:
    runs = []
    for _ in range(repeat):
        chosen = target(name)
        assert chosen is not None
        runs.append(run(chosen, **kwargs))
    runs.sort(key=lambda r: r["p99_ms"])
    result = dict(runs[len(runs) // 2])
    result["p99_runs_ms"] = [r["p99_ms"] for r in runs]
    return result


def fmt(value: float, unit: str = "") -> str:
    if value != value:  # NaN
        return "-"
    if value >= 100:
        return f"{value:,.0f}{unit}"
    return f"{value:.1f}{unit}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", nargs="*", default=list(SERVERS), choices=SERVERS)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--big", type=int, default=10_000, help="subscribers of scenarios 2, 3")
    parser.add_argument("--quick", action="store_true", help="50 and 100 clients, 1 s, once")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    small, big, duration, repeat = 1000, args.big, args.duration, args.repeat
    if args.quick:
        small, big, duration, repeat = 50, 100, 1.0, 1
    rows: dict[str, dict[str, Any]] = {}
    skipped = []
    for name in args.servers:
        if target(name) is None:
            skipped.append(name)
            continue
        print(f"-- {name}", flush=True)
        row: dict[str, Any] = {}
        row["small"] = median_run(name, repeat, clients=small, rate=100, duration=duration)
        chosen = target(name)
        assert chosen is not None
        row["big"] = run(chosen, clients=big, rate=10, duration=duration)
        chosen = target(name)
        assert chosen is not None
        row["memory"] = run(chosen, clients=big, rate=10, duration=duration, hold=True)
        rows[name] = row
    base = rows.get("rawsse", {})
    base_http = rows.get("rawsse-http", base)
    header = (
        f"| server | p99 {small}x100/s | delivered | p99 {big}x10/s | delivered "
        f"| RSS/idle subscriber | p99 ratio | memory ratio |"
    )
    lines = [header, "| " + " | ".join(["---"] * 8) + " |"]
    for name, row in rows.items():
        ref = base_http if row["small"]["producer"] == "http" else base
        ratio = row["small"]["p99_ms"] / ref["small"]["p99_ms"] if ref else float("nan")
        mem = row["memory"]["rss_per_subscriber_kib"]
        mem_ratio = mem / base["memory"]["rss_per_subscriber_kib"] if base else float("nan")
        lines.append(
            f"| {name} | {fmt(row['small']['p99_ms'], ' ms')} "
            f"| {row['small']['delivered_share']:.0%} "
            f"| {fmt(row['big']['p99_ms'], ' ms')} | {row['big']['delivered_share']:.0%} "
            f"| {fmt(mem, ' KiB')} | {ratio:.2f} x | {mem_ratio:.1f} x |"
        )
    invalid = [
        f"{name}/{scenario}"
        for name, row in rows.items()
        for scenario, r in row.items()
        if r.get("valid") is False
    ]
    print("\n".join(lines))
    if skipped:
        print(f"not installed here, skipped: {', '.join(skipped)}")
    if invalid:
        print(f"INVALID (load generator saturated): {', '.join(invalid)}")
    path = save({"rows": rows, "skipped": skipped, "table": lines}, "compare", args.json)
    print(f"written to {path}")
    chart(rows, path.with_suffix(".png"))


def chart(rows: dict[str, dict[str, Any]], path: Path) -> None:
    """Bar charts of p99 and memory per server, when matplotlib is installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    names = list(rows)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, (key, field, title) in zip(
        axes,
        [
            ("small", "p99_ms", "p99 latency, 1000 x 100/s (ms, log)"),
            ("big", "p99_ms", "p99 latency, 10 000 x 10/s (ms, log)"),
            ("memory", "rss_per_subscriber_kib", "RSS per idle subscriber (KiB)"),
        ],
        strict=True,
    ):
        values = [rows[n][key][field] for n in names]
        ax.barh(names, values, color=["#2a7" if n.startswith("rawsse") else "#999" for n in names])
        if field == "p99_ms":
            ax.set_xscale("log")
        ax.set_title(title, fontsize=10)
        ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"chart: {path}")


if __name__ == "__main__":
    main()
