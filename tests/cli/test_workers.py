"""``python -m rawsse --workers N --redis URL`` as real processes: one port served by
every worker, events shared through a real redis-server, one demo producer, a worker
that dies restarted, SIGTERM draining them all; and two separate servers on one Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, scaled, wait_for
from tests.support.cli import Hub, start_hub
from tests.support.client import metric_at
from tests.support.redis_server import RedisServer, redis_server
from tests.support.streams import collect

if os.environ.get("RAWSSE_REQUIRE_EXTERNAL") != "1":
    pytest.importorskip("redis", reason="the redis extra is not installed")


def children(pid: int) -> list[int]:
    """The PIDs of ``pid``'s child processes (Linux)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()]


async def metric(port: int, name: str) -> float:
    return await metric_at(f"http://127.0.0.1:{port}", name)


async def wait_metric(ports: list[int], name: str, total: float, timeout: float = 10.0) -> None:
    """Wait until ``name`` summed over ``ports`` reaches ``total``."""
    deadline = asyncio.get_running_loop().time() + scaled(timeout)
    while sum([await metric(port, name) for port in ports]) < total:
        assert asyncio.get_running_loop().time() < deadline, f"{name} never reached {total}"
        await asyncio.sleep(0.02)


async def ready(port: int) -> bool:
    try:
        async with httpx.AsyncClient(timeout=scaled(2)) as client:
            return (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
    except httpx.TransportError:
        return False


def free_port_pair() -> int:
    """A free port whose next one is free too (worker N's metrics listen on port + N)."""
    for _ in range(100):
        port = free_port()
        with contextlib.ExitStack() as held:
            try:
                for candidate in (port, port + 1):
                    sock = held.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
        return port
    raise AssertionError("no two consecutive free ports")


def start_workers(
    redis_url: str, *extra: str, env: dict[str, str] | None = None
) -> tuple[Hub, int, list[int]]:
    """``python -m rawsse --workers 2`` on ``redis_url``, per-address limits off: the
    hub, its port and its workers' metrics ports (the workers' readiness is
    :func:`workers_ready`'s)."""
    metrics_port = free_port_pair()
    port = free_port()
    while port in (metrics_port, metrics_port + 1):
        port = free_port()
    hub = start_hub(
        "--redis", redis_url, "--workers", "2", "--port", str(port),
        "--metrics-port", str(metrics_port), "--log-level", "warning",
        "--max-streams-per-address", "0", "--conn-rate", "0", *extra, env=env,
    )  # fmt: skip
    return hub, port, [metrics_port, metrics_port + 1]


async def workers_ready(hub: Hub, metrics_ports: list[int]) -> None:
    """Until every worker is ready; if one is not within 30 s, the workers' log."""
    try:
        await wait_ready(metrics_ports, timeout=30)
    except AssertionError:
        _, err = hub.stop(signal.SIGKILL)
        raise AssertionError(f"workers not ready; their log: {err}") from None


async def wait_ready(ports: list[int], timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + scaled(timeout)
    while not all([await ready(port) for port in ports]):
        assert asyncio.get_running_loop().time() < deadline, "workers not ready"
        await asyncio.sleep(0.05)


def test_workers_need_redis_and_say_so_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rawsse", "--workers", "2", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=scaled(30),
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "--workers needs --redis" in result.stderr


# The servers here are processes of their own: the tests' clients run once, on
# asyncio's loop (asyncio.run), not once per loop as the in-process tests do.


def test_workers_share_one_port_one_producer_and_restart(tmp_path: Path) -> None:
    asyncio.run(workers_share_one_port_one_producer_and_restart(tmp_path))


def test_two_servers_on_one_redis_deliver_the_same_events(redis: RedisServer) -> None:
    asyncio.run(two_servers_on_one_redis_deliver_the_same_events(redis))


async def workers_share_one_port_one_producer_and_restart(tmp_path: Path) -> None:
    with redis_server(tmp_path) as redis:
        hub, port, metrics_ports = start_workers(redis.url)
        try:
            assert "workers:     2 processes" in hub.banner
            await workers_ready(hub, metrics_ports)
            pids = children(hub.process.pid)
            assert len(pids) == 2

            # Streams land on both workers; every stream sees the one demo producer's
            # ticks, numbered without repeats, with the same ids everywhere.
            url = f"http://127.0.0.1:{port}/events?topic=demo"
            readers = [asyncio.create_task(collect(url, 3, timeout=10)) for _ in range(24)]
            await wait_metric(metrics_ports, "rawsse_connected_clients", 24)
            clients = [await metric(p, "rawsse_connected_clients") for p in metrics_ports]
            assert all(c > 0 for c in clients), clients
            results = await asyncio.gather(*readers)
            by_id: dict[str, int] = {}
            for events in results:
                numbers = [json.loads(e.data)["n"] for e in events]
                assert numbers == list(range(numbers[0], numbers[0] + 3))
                for event, number in zip(events, numbers, strict=True):
                    assert by_id.setdefault(event.id, number) == number

            # A worker that dies is restarted, and serves again.
            os.kill(pids[1], signal.SIGKILL)
            await wait_for(
                lambda: (
                    len(children(hub.process.pid)) == 2 and pids[1] not in children(hub.process.pid)
                ),
                timeout=10,
            )
            await wait_ready(metrics_ports)

            # SIGTERM drains every worker: open streams end cleanly, status 0.
            stream = asyncio.create_task(collect(url, 1000, timeout=20))
            await wait_metric(metrics_ports, "rawsse_connected_clients", 1)
            code, err = hub.stop(timeout=20)
        finally:
            if hub.process.poll() is None:
                hub.process.kill()
                hub.process.communicate()
        assert code == 0, err
        assert "exited with status -9; restarting it" in err
        assert len(await stream) < 1000  # ended by the shutdown, not by reading 1000
        assert not Path(f"/proc/{pids[0]}").exists()


async def two_servers_on_one_redis_deliver_the_same_events(redis: RedisServer) -> None:
    a = start_hub("--redis", redis.url, "--no-demo", "--log-level", "warning")
    b = start_hub("--redis", redis.url, "--no-demo", "--log-level", "warning")
    try:
        on_a = asyncio.create_task(collect(f"{a.url}/events?topic=n", 10))
        on_b = asyncio.create_task(collect(f"{b.url}/events?topic=n", 10))
        ports = [int(a.url.rsplit(":", 1)[1]), int(b.url.rsplit(":", 1)[1])]
        await wait_ready(ports)
        await wait_metric(ports, "rawsse_connected_clients", 2)
        ids = []
        async with httpx.AsyncClient(timeout=scaled(5)) as client:
            for i in range(10):
                hub = (a, b)[i % 2]
                answer = await client.post(
                    f"{hub.url}/publish",
                    data={"topic": "n", "data": str(i)},
                    headers={"Authorization": f"Bearer {hub.key}"},
                )
                ids.append(answer.text.strip())
        seen_a, seen_b = await on_a, await on_b
        assert [(e.id, e.data) for e in seen_a] == [(ids[i], str(i)) for i in range(10)]
        assert [(e.id, e.data) for e in seen_b] == [(e.id, e.data) for e in seen_a]
    finally:
        for hub in (a, b):
            assert hub.stop()[0] == 0


def test_mercure_mode_on_workers_serves_every_stream_from_one_order(redis: RedisServer) -> None:
    asyncio.run(mercure_mode_on_workers_serves_every_stream_from_one_order(redis))


async def mercure_mode_on_workers_serves_every_stream_from_one_order(redis: RedisServer) -> None:
    """``--workers 2 --mercure --mercure-subscriptions``: template readers spread over
    both workers receive every public update published to the port, with the same
    ids and in the same order; a private one only where granted; and the subscription
    API on either worker lists every worker's streams."""
    from tests.server.test_mercure import BOOKS, SECRET, hub_url, publish, token

    hub, port, metrics_ports = start_workers(
        redis.url, "--mercure", "--mercure-subscriptions", env={"RAWSSE_JWT_SECRET": SECRET}
    )
    try:
        await workers_ready(hub, metrics_ports)
        base = f"http://127.0.0.1:{port}"
        granted = {"Authorization": f"Bearer {token(subscribe=[BOOKS])}"}
        readers = [
            asyncio.create_task(collect(hub_url(base, BOOKS), 3, timeout=15)) for _ in range(12)
        ]
        readers += [
            asyncio.create_task(collect(hub_url(base, BOOKS), 4, granted, 15)) for _ in range(4)
        ]
        await wait_metric(metrics_ports, "rawsse_connected_clients", 16)
        clients = [await metric(p, "rawsse_connected_clients") for p in metrics_ports]
        assert all(c > 0 for c in clients), clients
        watcher = token(subscribe=["/.well-known/mercure/subscriptions"])
        for answering in metrics_ports:  # each worker answers on the port: ask a few times
            async with httpx.AsyncClient(timeout=scaled(5)) as client:
                listed = await client.get(
                    f"{base}/.well-known/mercure/subscriptions",
                    headers={"Authorization": f"Bearer {watcher}"},
                )
            assert listed.status_code == 200, (answering, listed.text)
            assert len(listed.json()["subscriptions"]) == 16
        ids = []
        for data, private in (("one", False), ("SECRET", True), ("two", False), ("three", False)):
            fields = [("topic", f"https://example.com/books/{len(ids)}"), ("data", data)]
            answer = await publish(base, fields + ([("private", "")] if private else []))
            assert answer.status_code == 200, answer.text
            ids.append(answer.text)
        results = await asyncio.gather(*readers)
        public = [(i, d) for i, d in zip(ids, ["one", "SECRET", "two", "three"], strict=True)]
        for events in results[:12]:
            assert [(e.id, e.data) for e in events] == [p for p in public if p[1] != "SECRET"]
        for events in results[12:]:
            assert [(e.id, e.data) for e in events] == public
        code, err = hub.stop(timeout=20)
        assert code == 0, err
    finally:
        if hub.process.poll() is None:
            hub.process.kill()
            hub.process.communicate()
