"""Clients that never read what they asked for: pipelined requests and long replays.

A connection whose client does not read gets no more answers until it drains, and a
replay is written as the client drains it, so neither can make the server hold more
than its write-buffer limits. The attacks of ``perf/attacks.py`` run here at small sizes
against a server in its own process, whose RSS and whose ``/healthz`` latency (asked
from another address during the attack) are measured from outside.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from typing import Any

import pytest

from rawsse.events import chunk
from rawsse.hub.subscriber import REPLAY_PAGE
from rawsse.server.server import Server
from tests.conftest import ROOT, make_config, running_server, scaled, wait_for
from tests.support.fakes import quiet_socket
from tests.support.sse_parser import StreamParser, dechunk

PERF = ROOT / "perf"
KiB = 1024
MiB = 1024 * KiB
#: A Last-Event-ID from another epoch: everything kept is replayed.
FOREIGN_ID = "00000000-1"


async def read_exactly(sock: socket.socket, size: int, timeout: float = 10.0) -> bytes:
    loop = asyncio.get_running_loop()
    data = bytearray()
    while len(data) < size:
        chunk_ = await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), scaled(timeout))
        if not chunk_:
            raise ConnectionError(f"closed after {len(data)} of {size} bytes")
        data += chunk_
    return bytes(data)


def only_connection(server: Server) -> Any:
    (connection,) = server._state.connections
    return connection


def answered(server: Server, path: str) -> int:
    return server.hub.metrics.requests.get((path, 200), 0)


# -- pipelined requests -------------------------------------------------------------------


async def test_pipelined_requests_wait_until_the_client_reads() -> None:
    """Thousands of pipelined requests from a client that reads nothing: answers stop
    once its transport is over the high-water mark, with at most about one answer more
    held; they go on, every one of them, in order, once it reads."""
    config = make_config(write_high_water=16 * KiB)
    page = b"p" * 4000
    count = 3000
    async with running_server(config, demo_page=page) as server:
        loop = asyncio.get_running_loop()
        sock = await quiet_socket(server.port)
        request = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
        sender = loop.create_task(loop.sock_sendall(sock, request * count))
        try:
            await wait_for(lambda: server.connection_count == 1)
            transport = only_connection(server).transport
            await wait_for(lambda: transport.get_write_buffer_size() >= config.write_high_water)
            held = answered(server, "/")
            for _ in range(200):  # many loop iterations: one answer each, were it not held
                await asyncio.sleep(0)
            assert answered(server, "/") == held < count
            assert transport.get_write_buffer_size() <= config.write_high_water + len(page) + 200

            first = await read_exactly(sock, 200)
            one = len(first.partition(b"\r\n\r\n")[0]) + 4 + len(page)
            rest = await read_exactly(sock, one * count - len(first), timeout=30)
            assert first + rest == (first + rest)[:one] * count
            assert (first + rest)[:one].endswith(b"\r\n\r\n" + page)
            await asyncio.wait_for(sender, scaled(5))
            assert answered(server, "/") == count
        finally:
            sender.cancel()
            sock.close()


async def test_a_pipelining_client_that_never_reads_is_closed() -> None:
    """Held requests are still under the request timeout: such a client is closed, and
    its connection, buffer and slot are freed."""
    config = make_config(write_high_water=16 * KiB, request_timeout=1.0, slow_timeout=1.0)
    async with running_server(config, demo_page=b"p" * 4000) as server:
        loop = asyncio.get_running_loop()
        sock = await quiet_socket(server.port)
        sender = loop.create_task(
            loop.sock_sendall(sock, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n" * 3000)
        )
        try:
            await wait_for(lambda: answered(server, "/") > 0)
            await wait_for(lambda: server.connection_count == 0, timeout=10)
            assert answered(server, "/") < 3000
        finally:
            sender.cancel()
            sock.close()


async def test_pipelined_requests_sent_before_a_half_close_are_all_answered() -> None:
    """``printf 'GET ...GET ...' | nc``: the client sends its requests and shuts its
    side. Answered a turn at a time, they are all still answered, then the server
    closes."""
    count = 50
    async with running_server() as server:
        loop = asyncio.get_running_loop()
        sock = await quiet_socket(server.port)
        try:
            request = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
            await loop.sock_sendall(sock, request * count)
            sock.shutdown(socket.SHUT_WR)
            received = b""
            while data := await asyncio.wait_for(loop.sock_recv(sock, 65536), scaled(5)):
                received += data
        finally:
            sock.close()
        assert received.count(b"HTTP/1.1 200 OK\r\n") == count
        assert received.endswith(b"ok\n")


# -- replay -------------------------------------------------------------------------------


def fill_history(server: Server, topics: int, events: int, size: int) -> list[str]:
    """Publish ``events`` distinct events of ``size`` bytes to each of ``topics``
    topics, interleaved; return their data in publish order."""
    published = []
    pad = "x" * size
    for n in range(events):
        for t in range(topics):
            data = f"{n}/{t} {pad}"
            server.hub.publish(f"t{t}", data)
            published.append(data)
    return published


def events_request(topics: int, last_event_id: str) -> bytes:
    query = "&".join(f"topic=t{t}" for t in range(topics))
    return (
        f"GET /events?{query} HTTP/1.1\r\nHost: t\r\nLast-Event-ID: {last_event_id}\r\n\r\n"
    ).encode()


async def test_a_replay_is_written_as_the_client_drains_it() -> None:
    """3 MB to replay to a client that reads nothing: the server holds at most the
    high-water mark and one page for it, the slow timeout still applies, and live
    events held behind the replay count against max_buffer."""
    config = make_config(
        write_high_water=16 * KiB, max_buffer=256 * KiB, slow_timeout=1.0, history=1000
    )
    async with running_server(config) as server:
        hub = server.hub
        fill_history(server, topics=16, events=200, size=1000)
        loop = asyncio.get_running_loop()
        first = await quiet_socket(server.port)
        second = await quiet_socket(server.port)
        try:
            await loop.sock_sendall(first, events_request(16, FOREIGN_ID))
            await wait_for(lambda: len(hub.paused) == 1)
            (subscriber,) = hub.paused
            limit = config.write_high_water + len(chunk(b"x" * (REPLAY_PAGE + 1100)))
            assert subscriber.transport.get_write_buffer_size() <= limit
            # Live events meanwhile wait behind the replay; past max_buffer: dropped.
            for _ in range(300):
                hub.publish("t0", "y" * 1000)
            await wait_for(lambda: hub.metrics.disconnects["slow_buffer"] == 1)

            await loop.sock_sendall(second, events_request(16, FOREIGN_ID))
            await wait_for(lambda: len(hub.paused) == 1)
            await wait_for(lambda: hub.metrics.disconnects["slow_timeout"] == 1, timeout=5)
            assert hub.subscriber_count == 0
        finally:
            first.close()
            second.close()


async def test_events_published_during_a_long_replay_follow_it_once_in_order() -> None:
    """A client reading slowly through a 2 MB replay while events keep being published
    to its topics receives every event ever published to them exactly once, in
    order: the replay, then what was held behind it, then the live stream."""
    config = make_config(write_high_water=16 * KiB, history=1000)
    async with running_server(config) as server:
        hub = server.hub
        published = fill_history(server, topics=8, events=250, size=1000)
        loop = asyncio.get_running_loop()
        sock = await quiet_socket(server.port)
        try:
            await loop.sock_sendall(sock, events_request(8, FOREIGN_ID))
            received = b""
            for n in range(100):
                received += await asyncio.wait_for(loop.sock_recv(sock, 16 * KiB), scaled(5))
                data = f"live {n}"
                hub.publish(f"t{n % 8}", data)
                published.append(data)
            hub.publish("t0", "end")
            published.append("end")
            while not received.endswith(b"data: end\n\n\r\n"):
                more = await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), scaled(10))
                assert more, "closed early"
                received += more
        finally:
            sock.close()
        parser = StreamParser()
        text = dechunk(received.partition(b"\r\n\r\n")[2])[0].decode()
        for start in range(0, len(text), 4096):  # small pieces: the parser is simple
            parser.feed(text[start : start + 4096])
        lost, *events = parser.events
        assert json.loads(lost.data)["reason"] == "epoch"
        assert [e.data for e in events] == published


# -- the same attacks as perf/attacks.py, measured from outside ---------------------------


def attack(kind: str, loop: str, *args: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, str(PERF / "attacks.py"), kind, "--loop", loop, *args],
        capture_output=True,
        text=True,
        timeout=scaled(120),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    figures: dict[str, Any] = json.loads(result.stdout)
    return figures


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_pipelining_non_readers_cost_neither_memory_nor_latency(loop: str) -> None:
    """10 connections of 256 KiB of pipelined ``GET /`` that never read. Before the fix:
    +130 MiB and a /healthz that took over 20 s."""
    figures = attack("pipeline", loop, "--connections", "10", "--duration", "2")
    assert figures["rss_growth_mib"] < 32, figures
    assert figures["healthz_max_ms"] < scaled(1000), figures


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_replaying_to_non_readers_costs_neither_memory_nor_latency(loop: str) -> None:
    """5 streams that never read, each replayed 16 MB. Before the fix: the whole replay
    held per stream (+80 MiB) and the loop blocked at each subscribe."""
    figures = attack(
        "replay", loop, "--topics", "16", "--events", "1000", "--subscribers", "5",
        "--duration", "2",
    )  # fmt: skip
    assert figures["rss_growth_mib"] < 32, figures
    assert figures["healthz_max_ms"] < scaled(1000), figures


async def test_a_stream_ended_while_its_client_reads_nothing_is_aborted() -> None:
    """Ending a stream (here: shutdown) closes it once its buffer drains, which a client
    that reads nothing never lets happen; past slow_timeout it is aborted, rather than
    holding its buffer and its slot until the shutdown timeout (or for ever)."""
    config = make_config(write_high_water=1 * MiB, max_buffer=2 * MiB, slow_timeout=0.5)
    async with running_server(config) as server:
        hub = server.hub
        loop = asyncio.get_running_loop()
        sock = await quiet_socket(server.port)
        try:
            await loop.sock_sendall(sock, b"GET /events?topic=t HTTP/1.1\r\nHost: t\r\n\r\n")
            await wait_for(lambda: hub.subscriber_count == 1)
            (subscriber,) = hub.subscribers()
            for _ in range(400):  # until the kernel is full and bytes wait in the transport
                if subscriber.transport.get_write_buffer_size() > 0:
                    break
                hub.publish("t", "z" * 64 * KiB)
                await asyncio.sleep(0)
            assert 0 < subscriber.transport.get_write_buffer_size() < config.write_high_water
            assert not hub.paused  # so the stall sweep is not what ends it
            started = loop.time()
            await server.shutdown(timeout=scaled(30))
            assert loop.time() - started < scaled(5)
        finally:
            sock.close()
