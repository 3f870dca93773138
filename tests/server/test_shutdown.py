"""Graceful, bounded shutdown: in process, and of the CLI by signal."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import time

import httpx
import pytest

from rawsse.server.server import Server
from tests.conftest import make_config, running_server, scaled, wait_for
from tests.support.cli import Hub as CliHub
from tests.support.cli import start_hub
from tests.support.client import RawConnection, get, raw_stream
from tests.support.fakes import never_reading_stream
from tests.support.sse_parser import dechunk, parse


async def test_a_request_in_flight_when_draining_gets_503_and_close() -> None:
    async with running_server() as server:
        conn = await RawConnection.open(server.port)
        await conn.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")  # not finished yet
        await wait_for(lambda: server.connection_count == 1)
        shutdown = asyncio.create_task(server.shutdown(timeout=scaled(5)))
        await wait_for(lambda: server.draining)
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", server.port)  # no longer accepting
        await conn.send(b"\r\n")
        answer = await conn.answer()
        assert (answer.status, answer.body) == (503, b"draining\n")
        assert answer.headers["connection"] == "close"
        await shutdown
        await conn.close()


async def test_tasks_are_cancelled_and_idle_connections_closed() -> None:
    async with running_server() as server:
        cancelled = asyncio.Event()

        async def producer() -> None:
            try:
                await asyncio.Event().wait()
            finally:
                cancelled.set()

        server.spawn(producer(), name="producer")
        idle = await RawConnection.open(server.port)
        await idle.send(get("/healthz"))
        assert (await idle.answer()).status == 200
        await server.shutdown(timeout=scaled(5))
        assert cancelled.is_set()
        assert await idle.read_until_closed() == b""
        await idle.close()


async def test_shutdown_is_bounded_even_when_clients_never_read() -> None:
    config = make_config(max_buffer=64 * 1024 * 1024, write_high_water=16 * 1024)
    async with running_server(config) as server:
        hub = server.hub
        stuck = await never_reading_stream(server.port, "/events?topic=t")
        reader = await RawConnection.open(server.port)
        await reader.send(get("/events?topic=u"))
        await wait_for(lambda: hub.subscriber_count == 2)
        (stuck_sub,) = [s for s in hub.subscribers() if "t" in s.topics]
        while stuck_sub.paused_since is None:
            hub.publish("t", "z" * 60000)
            await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await server.shutdown(timeout=0.5)
        assert loop.time() - started < 0.5 + scaled(1.5)
        assert hub.subscriber_count == 0
        assert hub.metrics.disconnects["shutdown"] == 2
        body, terminated = dechunk((await reader.read_until_closed()).partition(b"\r\n\r\n")[2])
        assert terminated and parse(body.decode()).retry is not None
        stuck.close()
        await reader.close()


async def test_server_as_async_context_manager_and_port_zero() -> None:
    async with Server(config=make_config()) as server:
        assert server.port != 0 and server.url == f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{server.url}/healthz")).text == "ok\n"
    assert server.sockets == ()


def require_uvloop() -> None:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        if os.environ.get("RAWSSE_REQUIRE_EXTERNAL") == "1":
            raise
        pytest.skip("uvloop is not installed")


def read_stream_until(sock: socket.socket, marker: bytes, timeout: float) -> bytes:
    sock.settimeout(scaled(timeout))
    data = b""
    while marker not in data:
        more = sock.recv(65536)
        if not more:
            break
        data += more
    return data


def stuck_behind(hub: CliHub, port: int) -> socket.socket:
    """A stream client that never reads, with megabytes published until the hub
    reports it paused (behind by more than the high-water mark)."""
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(("127.0.0.1", port))
    stuck.sendall(get("/events?topic=big"))
    auth = {"Authorization": f"Bearer {hub.key}"}
    with httpx.Client() as client:
        deadline = time.monotonic() + scaled(10)
        while b"rawsse_paused_clients 1" not in client.get(f"{hub.url}/metrics").content:
            assert time.monotonic() < deadline, "the stuck client never fell behind"
            client.post(
                f"{hub.url}/publish", data={"topic": "big", "data": "b" * 500_000}, headers=auth
            )
    return stuck


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_sigterm_drains_and_exits_0_within_the_timeout(loop: str) -> None:
    if loop == "uvloop":
        require_uvloop()
    hub = start_hub(
        "--shutdown-timeout", "2", "--max-buffer", str(64 * 1024 * 1024), "--loop", loop
    )
    try:
        port = int(hub.url.rsplit(":", 1)[1])
        reader = socket.create_connection(("127.0.0.1", port))
        reader.sendall(get("/events?topic=demo"))
        assert b"event: tick" in read_stream_until(reader, b"event: tick", 5)
        stuck = stuck_behind(hub, port)
        started = time.monotonic()
        status, err = hub.stop(signal.SIGTERM)
        elapsed = time.monotonic() - started
        assert status == 0, err
        assert elapsed < 2 + scaled(2), elapsed
        assert "Traceback" not in err
        tail = read_stream_until(reader, b"0\r\n\r\n", 5)
        assert tail.endswith(b"0\r\n\r\n") and b"retry: " in tail
        reader.close()
        stuck.close()
    finally:
        if hub.process.poll() is None:
            hub.process.kill()
            hub.process.wait()


def test_a_second_signal_forces_exit() -> None:
    hub = start_hub("--shutdown-timeout", "60", "--max-buffer", str(64 * 1024 * 1024))
    try:
        port = int(hub.url.rsplit(":", 1)[1])
        stuck = stuck_behind(hub, port)
        started = time.monotonic()
        hub.process.send_signal(signal.SIGTERM)
        # Wait until draining has begun (the listener is closed), then signal again.
        deadline = time.monotonic() + scaled(10)
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                break
            assert time.monotonic() < deadline
        status, err = hub.stop(signal.SIGINT)
        assert status == 0, err
        assert time.monotonic() - started < scaled(10)
        assert "aborting every connection" in err
        stuck.close()
    finally:
        if hub.process.poll() is None:
            hub.process.kill()
            hub.process.wait()


async def test_periodic_timers_do_not_pile_up() -> None:
    """Each periodic callback has one timer armed in the loop, however often it has
    re-armed, and the handles of timers that fired are freed, not kept."""
    loop = asyncio.get_running_loop()
    if not hasattr(loop, "_scheduled"):
        pytest.skip("uvloop's timer handles cannot be inspected")
    async with running_server(make_config(heartbeat=0.02, slow_timeout=0.04)) as server:

        def handles() -> list[asyncio.TimerHandle]:
            return [
                obj
                for obj in gc.get_objects()
                if isinstance(obj, asyncio.TimerHandle)
                and getattr(obj._callback, "__self__", None) is server
            ]

        def armed() -> list[str]:
            scheduled = loop._scheduled  # type: ignore[attr-defined]
            return sorted(
                h._callback.__name__
                for h in scheduled
                if not h.cancelled() and getattr(h._callback, "__self__", None) is server
            )

        conn, _ = await raw_stream(server.port, "/events?topic=t", version="1.0")
        received = b""
        while received.count(b":\n\n") < 10:  # ten heartbeats: every timer re-armed often
            received += await conn.read_some()
        assert armed() == ["_check_stalled", "_heartbeat", "_prune_limits"]
        assert len(handles()) == 3
        await conn.close()
