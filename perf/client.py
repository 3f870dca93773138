"""What rawsse.client costs on top of the HTTP calls it makes, in one run.

The hub (``python -m rawsse``, pinned to CPU 0) is fed from this process (pinned to CPU
1) over one keep-alive connection, ``--events`` events of ``--size`` bytes each way:

- ``httpx``: raw ``httpx.Client.post`` calls with the JSON form, one per event, each
  event encoded and its answer's id read (the floor: what any Python publisher pays);
- ``client``: ``Client.publish``, defaults (each event given an id the client draws, so
  that a retry cannot duplicate it);
- ``client-no-retry``: ``Client(retries=0).publish`` (the hub assigns the ids: the same
  request as ``httpx``, so the difference is the client's own code);
- ``httpx-batch``: one raw ``httpx`` request streaming the events as NDJSON from a
  generator, each line's id read from the answer; and ``client-batch``:
  ``Client.publish_many`` from the same generator.

``--mock``: the same calls answered by an ``httpx.MockTransport`` in this process (no
hub, no socket): what is left is the client's own code against the caller's.

The measures are interleaved ``--repeat`` times; the figures are events/s, this
process's CPU per event (the publisher's own cost: the hub runs elsewhere), and the
client's overhead in each against its raw httpx counterpart in the same round
(medians).

    python perf/client.py --events 10000 --repeat 5
    python perf/client.py --events 10000 --repeat 5 --mock
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import httpx  # noqa: E402
from _common import pinned  # noqa: E402
from harness import free_port, save  # noqa: E402

from rawsse.client import Client  # noqa: E402

KEY = "bench"
HEADERS = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}


def start_hub(port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "rawsse", "--port", str(port), "--publish-key", KEY,
               "--publish-rate", "0", "--history", "10", "--log-level", "warning"]  # fmt: skip
    process = subprocess.Popen(pinned(command, 0), stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("the hub never became ready")


def answer(request: httpx.Request) -> httpx.Response:
    """What the hub answers, made in this process (``--mock``): a batch's lines each an
    id, one event its id."""
    body = request.read()
    if request.headers.get("content-type") == "application/x-ndjson":
        lines = body.count(b"\n")
        return httpx.Response(200, content=b'{"id":"0123abcd-1"}\n' * lines)
    return httpx.Response(200, content=b"0123abcd-1\n")


def measures(url: str, count: int, size: int, mock: bool = False) -> dict[str, Callable[[], None]]:
    data = "x" * size

    def http(timeout: float = 5.0) -> httpx.Client:
        transport = httpx.MockTransport(answer) if mock else None
        return httpx.Client(timeout=timeout, transport=transport)

    def events() -> Iterator[dict[str, str]]:
        for _ in range(count):
            yield {"topic": "bench", "data": data}

    def raw() -> None:
        with http() as client:
            for _ in range(count):
                body = json.dumps({"topic": "bench", "data": data}).encode()  # as a caller would
                got = client.post(url + "/publish", content=body, headers=HEADERS)
                assert got.status_code == 200, got.text
                got.text.strip()  # the id, which a publisher wants (the client returns it)

    def client(retries: int) -> Callable[[], None]:
        def run() -> None:
            with http() as client, Client(url, key=KEY, retries=retries, http=client) as hub:
                for _ in range(count):
                    hub.publish("bench", data)

        return run

    def raw_batch() -> None:
        lines = (json.dumps(e).encode() + b"\n" for e in events())
        headers = {**HEADERS, "Content-Type": "application/x-ndjson"}
        with http(60) as client:
            got = client.post(url + "/publish", content=lines, headers=headers)
        assert got.status_code == 200
        ids = [json.loads(line)["id"] for line in got.text.splitlines()]  # each line's
        assert len(ids) == count

    def client_batch() -> None:
        with http(60) as client, Client(url, key=KEY, http=client) as hub:
            results = hub.publish_many(events())
        assert len(results) == count and all(isinstance(r, str) for r in results)

    return {
        "httpx": raw,
        "client": client(3),
        "client-no-retry": client(0),
        "httpx-batch": raw_batch,
        "client-batch": client_batch,
    }


BASELINE = {"client": "httpx", "client-no-retry": "httpx", "client-batch": "httpx-batch"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--mock", action="store_true", help="answer in this process: the client's code alone"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {1})
    port = free_port()
    hub = start_hub(port)
    url = f"http://127.0.0.1:{port}"
    rounds: list[dict[str, float]] = []
    try:
        for round in range(args.repeat):
            rates: dict[str, float] = {}
            chosen = list(measures(url, args.events, args.size, args.mock).items())
            shift = round % len(chosen)  # each round starts elsewhere: no measure always first
            for label, run in chosen[shift:] + chosen[:shift]:
                gc.collect()
                started, cpu = time.perf_counter(), time.process_time()
                run()
                cpu = time.process_time() - cpu
                rates[label] = args.events / (time.perf_counter() - started)
                rates[label + " cpu"] = cpu / args.events * 1e6
                print(
                    f"round {round + 1} {label}: {rates[label]:,.0f} events/s, "
                    f"this process's CPU {rates[label + ' cpu']:.1f} µs an event",
                    flush=True,
                )
            rounds.append(rates)
    finally:
        hub.terminate()
        hub.wait(15)
    for label in [name for name in measures(url, 0, 0) if not name.endswith(" cpu")]:
        rate = statistics.median(r[label] for r in rounds)
        cpu = statistics.median(r[label + " cpu"] for r in rounds)
        line = f"{label}: {rate:,.0f} events/s ({1e6 / rate:.1f} µs an event, {cpu:.1f} µs CPU)"
        base = BASELINE.get(label)
        if base is not None:
            wall = [(r[base] / r[label]) - 1 for r in rounds]
            spent = [r[label + " cpu"] / r[base + " cpu"] - 1 for r in rounds]
            line += (
                f"; overhead against {base}: {statistics.median(wall):+.1%} in time, "
                f"{statistics.median(spent):+.1%} in the publisher's CPU"
            )
        print(line)
    print(f"written to {os.path.relpath(save(rounds, 'client', args.json))}")


if __name__ == "__main__":
    main()
