"""Latency through nginx against direct, in one run.

    python perf/behind_nginx.py                       # 1000 x 100/s, 10 s, 2 rounds
    python perf/behind_nginx.py --load 1000 100 --duration 10 --rounds 3

rawsse with its in-process producer, its clients connecting directly, then through
nginx configured by deploy/nginx.conf itself (ports and paths substituted, and
``worker_processes 1``: this machine has two cores, one for the load generator),
alternated. nginx runs unpinned. Figures: p50/p99, delivered share, rawsse's and
nginx's CPU. Results go to perf/results/behind-nginx-TIME.json.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import free_port, rawsse, run, save  # noqa: E402

CONF = HERE.parent / "deploy" / "nginx.conf"


def nginx_front(upstream_port: int) -> tuple[int, list[int], Callable[[], None]]:
    """Start nginx from deploy/nginx.conf in front of ``upstream_port``."""
    nginx = shutil.which("nginx", path="/usr/sbin:/usr/bin:/sbin")
    if nginx is None:
        sys.exit("nginx is not installed (apt-get install nginx)")
    prefix = Path(tempfile.mkdtemp(prefix="rawsse-front-"))
    port = free_port()
    conf = CONF.read_text()
    for old, new in {
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{upstream_port};",
        "listen 80;": f"listen 127.0.0.1:{port};",
        "pid /run/nginx-rawsse.pid;": f"pid {prefix}/nginx.pid;",
        "/var/log/nginx/": f"{prefix}/",
        "/var/lib/nginx/": f"{prefix}/",
        "worker_processes auto;": "worker_processes 1;",
    }.items():
        assert old in conf, old
        conf = conf.replace(old, new)
    (prefix / "nginx.conf").write_text(conf)
    process = subprocess.Popen(
        [nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"]
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("nginx did not start") from None
            time.sleep(0.05)
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()

    def stop() -> None:
        process.terminate()
        process.wait(10)
        shutil.rmtree(prefix, ignore_errors=True)

    return port, [int(pid) for pid in children], stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--load", type=float, nargs=2, default=(1000, 100.0),
                        metavar=("CLIENTS", "RATE"))  # fmt: skip
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    clients, rate = int(args.load[0]), args.load[1]
    results: list[dict[str, object]] = []
    print("| path | load | p50 ms | p99 ms | p99 ÷ direct | delivered | rawsse CPU | nginx CPU |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for _ in range(args.rounds):
        direct: dict[str, object] | None = None
        for label in ("direct", "through nginx"):
            target = rawsse("inproc")
            if label == "through nginx":
                target.front = nginx_front
            r = run(target, clients=clients, rate=rate, duration=args.duration)
            r["label"] = label
            results.append(r)
            direct = direct or r
            nginx_cpu = r.get("front_cpu_share")
            print(
                f"| {label} | {clients} x {rate:g}/s | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
                f"| {float(r['p99_ms']) / float(direct['p99_ms']):.2f} "  # type: ignore[arg-type]
                f"| {r['delivered_share']:.1%} | {r['server_cpu_share']:.0%} "
                f"| {'' if nginx_cpu is None else f'{nginx_cpu:.0%}'}"
                f"{'' if r['valid'] else ' INVALID'} |",
                flush=True,
            )
    print(f"written to {save(results, 'behind-nginx', args.json)}")


if __name__ == "__main__":
    main()
