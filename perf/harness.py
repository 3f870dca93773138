"""One fan-out run of any server under test, measured the same way for all of them.

A run: start the server pinned to CPU 0; start the C load generator (``loadgen.c``,
built on first use; the Python one when no compiler exists) pinned to CPU 1 with N
clients; once every client has its response head, events are produced, either by the
server itself (``inproc``: the embedding API, as the minimal servers) or by
``publisher.py`` over HTTP on keep-alive connections (``http``: as nchan is fed). Each
event carries ``time.monotonic_ns()`` at publish; clients subtract on arrival. The last
event says ``end``.

Figures: latency percentiles from the generator's histogram, deliveries and the share
delivered, server CPU share and RSS, and the generator's own CPU share: a run where it
used over 90 % of its core is marked invalid, since it then measures itself.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import cpu_seconds, pinned, raise_file_limit, rss_bytes  # noqa: E402

BUILD = HERE / ".build"
SATURATED = 0.9


def loadgen() -> Path | None:
    """The compiled C load generator, rebuilt when its source is newer; None without cc."""
    source = HERE / "loadgen.c"
    binary = BUILD / "loadgen"
    if binary.exists() and binary.stat().st_mtime >= source.stat().st_mtime:
        return binary
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    BUILD.mkdir(exist_ok=True)
    subprocess.run([compiler, "-O2", "-o", str(binary), str(source), "-lz"], check=True)
    return binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Target:
    """How to start one server under test and talk to it."""

    name: str
    command: list[str]  # prints "ready PORT" (inproc servers) or listens on `port`
    producer: str  # "inproc" or "http"
    subscribe_path: str = "/events?topic=bench"
    #: Paths spread over the clients (client i takes path i % len), instead of one.
    subscribe_paths: list[str] | None = None
    publish_path: str = "/publish?topic=bench"
    publish_headers: list[str] = field(default_factory=list)
    port: int | None = None  # fixed port for servers that print nothing
    cleanup: list[Path] = field(default_factory=list)
    cpus: str = "0"  # where the server runs (the load generator has CPU 1)
    companions: dict[str, int] = field(default_factory=dict)  # other processes to measure
    # A proxy started in front of the server once its port is known: returns the port
    # clients connect to, the proxy's PIDs (measured as companion "front") and a stop.
    front: Callable[[int], tuple[int, list[int], Callable[[], None]]] | None = None


def _read_until(process: subprocess.Popen[str], prefix: str, timeout: float) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"server exited before printing {prefix!r}")
        if line.startswith(prefix):
            return line.strip()
    raise TimeoutError(prefix)


def _wait_listening(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port}")


def _workers(pid: int) -> list[int]:
    """The processes doing the work: nginx's worker or rawsse's ``--workers`` (the
    children), else ``pid`` itself."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return [pid]
    return [int(child) for child in children] or [pid]


def _cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


def _rss(pids: list[int]) -> int:
    return sum(rss_bytes(pid) for pid in pids)


def _percentile(hist: list[list[int]], total: int, fraction: float) -> float:
    if total == 0:
        return float("nan")
    rank = fraction * total
    seen = 0
    for micros, count in hist:
        seen += count
        if seen >= rank:
            return micros / 1000
    return hist[-1][0] / 1000


def run(
    target: Target,
    *,
    clients: int,
    rate: float,
    size: int = 100,
    duration: float = 10.0,
    stall: int = 0,
    publishers: int = 4,
    hold: bool = False,
    publisher_args: Sequence[str] = (),
    generator_args: Sequence[str] = (),
) -> dict[str, object]:
    """One run; with ``hold`` only connect the clients and measure memory."""
    raise_file_limit()
    binary = loadgen()
    server = subprocess.Popen(
        pinned(
            [
                *target.command,
                *(
                    [
                        "--clients",
                        str(clients),
                        "--rate",
                        str(0 if hold else rate),
                        "--size",
                        str(size),
                        "--duration",
                        str(0 if hold else duration),
                    ]
                    if target.producer == "inproc"
                    else []
                ),
            ],
            target.cpus,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    generator: subprocess.Popen[str] | None = None
    publisher: subprocess.Popen[str] | None = None
    stop_front: Callable[[], None] | None = None
    front_pids: list[int] = []
    try:
        if target.port is None:
            port = int(_read_until(server, "ready", 60).split()[1])
        else:
            port = target.port
            _wait_listening(port, 30)
        client_port = port
        if target.front is not None:
            client_port, front_pids, stop_front = target.front(port)
            _wait_listening(client_port, 30)
        time.sleep(0.2)
        measured = _workers(server.pid)
        rss_empty = _rss(measured)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "clients.json"
            path_args = ["--path", target.subscribe_path]
            if target.subscribe_paths is not None:
                paths_file = Path(tmp) / "paths.txt"
                paths_file.write_text("\n".join(target.subscribe_paths) + "\n")
                path_args = ["--paths", str(paths_file)]
            if binary is not None:
                command = [
                    str(binary),
                    "--port",
                    str(client_port),
                    "--clients",
                    str(clients),
                    *path_args,
                    "--stall",
                    str(stall),
                    "--timeout",
                    str(duration + 30),
                    "--out",
                    str(out),
                    "--hold",
                    "1" if hold else "0",
                    *generator_args,
                ]
            else:
                if target.subscribe_paths is not None:
                    raise RuntimeError("spread paths need the C load generator (cc)")
                command = [
                    sys.executable,
                    str(HERE / "load_clients.py"),
                    "--port",
                    str(client_port),
                    "--clients",
                    str(clients),
                    "--timeout",
                    str(duration + 30),
                    "--out",
                    str(out),
                ]
            generator = subprocess.Popen(pinned(command, 1), stderr=subprocess.PIPE, text=True)
            assert generator.stderr is not None
            line = generator.stderr.readline()
            if "connected" not in line:
                raise RuntimeError(f"load generator: {line.strip()}")
            time.sleep(0.5)  # let the server settle (and count its subscribers)
            rss_idle = _rss(measured)
            figures: dict[str, object] = {
                "server": target.name,
                "producer": target.producer,
                "clients": clients,
                "rss_per_subscriber_kib": (rss_idle - rss_empty) / clients / 1024,
                "server_rss_idle_mib": rss_idle / 2**20,
            }
            if hold:
                return figures
            cpu_start = _cpu(measured)
            companions_start = {name: cpu_seconds(p) for name, p in target.companions.items()}
            front_start = _cpu(front_pids)
            wall_start = time.monotonic()
            if target.producer == "inproc":
                _read_until(server, "producing", 60)
                published = int(_read_until(server, "published", duration + 60).split()[1])
            else:
                publisher = subprocess.Popen(
                    pinned(
                        [
                            sys.executable,
                            str(HERE / "publisher.py"),
                            "--port",
                            str(port),
                            "--path",
                            target.publish_path,
                            "--connections",
                            str(publishers),
                            "--rate",
                            str(rate),
                            "--size",
                            str(size),
                            "--duration",
                            str(duration),
                            *[arg for h in target.publish_headers for arg in ("--header", h)],
                            *publisher_args,
                        ],
                        1,
                    ),
                    stdout=subprocess.PIPE,
                    text=True,
                )
                published = int(_read_until(publisher, "published", duration + 60).split()[1])
                publisher.wait(30)
            server_cpu = _cpu(measured) - cpu_start
            wall = time.monotonic() - wall_start
            for name, pid in target.companions.items():
                used = cpu_seconds(pid) - companions_start[name]
                figures[f"{name}_cpu_share"] = used / wall
            if front_pids:
                figures["front_cpu_share"] = (_cpu(front_pids) - front_start) / wall
            rss_end = _rss(measured)
            generator.wait(duration + 60)
            result = json.loads(out.read_text())
    finally:
        if stop_front is not None:
            stop_front()
        for process in (publisher, generator, server):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        for path in target.cleanup:
            shutil.rmtree(path, ignore_errors=True)
    # loadgen.c stalls every (100 // stall)-th client, starting with the first.
    reading = clients - (len(range(0, clients, 100 // stall)) if stall else 0)
    expected = published * reading
    received = int(result["received"])
    hist = result.get("hist")
    if hist is None:  # the Python generator: raw latencies
        lat = sorted(result.pop("latencies_ns"))
        hist = [[v // 1000, 1] for v in lat]
    generator_share = float(result["cpu_s"]) / max(float(result["wall_s"]), 1e-9)
    figures.update(
        {
            "rate": rate,
            "size": size,
            "duration": duration,
            "stalled_clients": clients - reading,
            "events_published": published,
            "deliveries_expected": expected,
            "deliveries": received,
            "clients_ended": result.get("ended"),
            "clients_closed_early": result.get("closed"),
            "delivered_share": received / expected if expected else float("nan"),
            "deliveries_per_s": received / duration,
            "p50_ms": _percentile(hist, received, 0.50),
            "p99_ms": _percentile(hist, received, 0.99),
            "p999_ms": _percentile(hist, received, 0.999),
            "max_ms": hist[-1][0] / 1000 if hist else float("nan"),
            "server_cpu_share": server_cpu / wall,
            "server_processes": len(measured),
            "server_rss_end_mib": rss_end / 2**20,
            "generator_cpu_share": generator_share,
            "generator": "c" if binary is not None else "python",
            # Body bytes the clients read (compressed as sent, for compressed streams).
            "wire_bytes": result.get("wire_bytes"),
            "compressed_streams": result.get("compressed"),
            "valid": generator_share < SATURATED,
        }
    )
    return figures


# -- the servers under test ---------------------------------------------------------------


def rawsse(producer: str = "inproc", *extra: str) -> Target:
    """rawsse with an in-process producer, or serving HTTP publishers."""
    command = [sys.executable, str(HERE / "rawsse_server.py"), "--producer", producer, *extra]
    return Target(
        name="rawsse" if producer == "inproc" else "rawsse-http",
        command=command,
        producer=producer,
        publish_headers=["Authorization: Bearer bench"],
    )


def minimal(mode: str, producer: str = "inproc") -> Target:
    """The minimal server (``peers/minimal_server.py``): an in-process producer, or fed
    by HTTP publishers (``minimal-MODE-http``)."""
    return Target(
        name=f"minimal-{mode}" if producer == "inproc" else f"minimal-{mode}-http",
        command=[sys.executable, str(HERE / "peers" / "minimal_server.py"), "--mode", mode],
        producer=producer,
    )


def python_peer(name: str) -> Target | None:
    """sse-starlette on uvicorn, or aiohttp-sse, when installed."""
    module = {"sse-starlette": "sse_starlette", "aiohttp-sse": "aiohttp_sse"}[name]
    try:
        __import__(module)
    except ImportError:
        return None
    script = {"sse-starlette": "starlette_server.py", "aiohttp-sse": "aiohttp_server.py"}[name]
    return Target(
        name=name, command=[sys.executable, str(HERE / "peers" / script)], producer="inproc"
    )


def nchan() -> Target | None:
    """nginx with the nchan module (Debian: nginx, libnginx-mod-nchan), one worker, on a
    loopback port with a prefix of its own."""
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
    )
    module = Path("/usr/lib/nginx/modules/ngx_nchan_module.so")
    if nginx is None or not module.exists():
        return None
    port = free_port()
    prefix = Path(tempfile.mkdtemp(prefix="rawsse-nchan-"))
    (prefix / "logs").mkdir()
    conf = (HERE / "peers" / "nchan.conf").read_text()
    conf = conf.replace("@MODULE@", str(module)).replace("@PORT@", str(port))
    (prefix / "nginx.conf").write_text(conf)
    return Target(
        name="nginx-nchan",
        command=[nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
        producer="http",
        subscribe_path="/sub/bench",
        publish_path="/pub/bench",
        port=port,
        cleanup=[prefix],
    )


SERVERS = (
    "rawsse",
    "rawsse-http",
    "minimal-one-write",
    "minimal-batched",
    "sse-starlette",
    "aiohttp-sse",
    "nginx-nchan",
)


def target(name: str, *, flush_delay: str = "auto") -> Target | None:
    """The server called ``name``; None when it is not installed here."""
    extra = ["--flush-delay", flush_delay]
    if name == "rawsse":
        return rawsse("inproc", *extra)
    if name == "rawsse-http":
        return rawsse("http", *extra)
    if name.startswith("minimal-"):
        return minimal(name.removeprefix("minimal-"))
    if name in ("sse-starlette", "aiohttp-sse"):
        return python_peer(name)
    if name == "nginx-nchan":
        return nchan()
    raise ValueError(f"unknown server {name!r}; choose from {', '.join(SERVERS)}")


def print_figures(result: dict[str, object]) -> None:
    for key, value in result.items():
        if isinstance(value, float):
            print(f"{key:>24}: {value:.3f}")
        else:
            print(f"{key:>24}: {value}")


def median_ratio(
    rounds: Sequence[dict[str, dict[str, object]]], top: str, bottom: str, figure: str
) -> float:
    """The median over ``rounds`` of each round's ``figure`` of ``top`` over ``bottom``:
    measures run in the same round share the machine's state of the moment."""
    return statistics.median(
        float(r[top][figure]) / float(r[bottom][figure])  # type: ignore[arg-type]
        for r in rounds
    )


def save_rounds(
    args: argparse.Namespace,
    rounds: Sequence[dict[str, dict[str, object]]],
    summary: dict[str, float],
    name: str,
) -> Path:
    """Write a script's arguments, its rounds and their summary (see :func:`save`)."""
    report = {"args": {k: str(v) for k, v in vars(args).items()}, "rounds": rounds}
    return save({**report, "summary": summary}, name, getattr(args, "json", None))


def save(result: object, name: str, path: Path | None = None) -> Path:
    """Write ``result`` as JSON to ``path`` or perf/results/NAME-TIME.json."""
    target_path = path or HERE / "results" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    target_path.parent.mkdir(parents=True, exist_ok=True)
    target_path.write_text(json.dumps(result, indent=2))
    return target_path
