"""Dead peers: a client that vanishes without a FIN is dropped by the kernel's timers.

The vanishing is real: an nftables table of the test's own drops every packet of one
client's loopback connection in both directions, as a pulled cable would, while the
server keeps writing heartbeats that are never acknowledged. ``TCP_USER_TIMEOUT`` then
ends the connection with ``ETIMEDOUT``. Needs root and ``nft`` (CI installs it).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.conftest import make_config, require_program, running_server, scaled, wait_for
from tests.support.client import raw_stream


def nft_usable() -> str:
    """The path of ``nft``, once it has shown it may add a table; skip when it may not."""
    nft = require_program("nft")
    table = f"rawsse_probe_{os.getpid()}"
    made = subprocess.run([nft, "add", "table", "inet", table], capture_output=True, text=True)
    if "Operation not permitted" in made.stderr:
        pytest.skip(f"nft cannot add a table here (needs CAP_NET_ADMIN): {made.stderr.strip()}")
    assert made.returncode == 0, made.stderr
    subprocess.run([nft, "delete", "table", "inet", table], check=True)
    return nft


@contextmanager
def packets_dropped(nft: str, port: int) -> Iterator[None]:
    """Drop every loopback packet to or from local TCP port ``port`` while inside."""
    table = f"rawsse_test_{os.getpid()}"
    rules = "\n".join(
        [
            f"table inet {table} {{",
            "  chain out {",
            "    type filter hook output priority 0; policy accept;",
            f"    tcp dport {port} drop",
            f"    tcp sport {port} drop",
            "  }",
            "}",
            "",
        ]
    )
    subprocess.run([nft, "-f", "-"], input=rules, text=True, check=True)
    try:
        yield
    finally:
        subprocess.run([nft, "delete", "table", "inet", table], check=True)


async def test_stream_sockets_have_the_dead_peer_timers() -> None:
    async with running_server(make_config(dead_peer_timeout=20)) as server:
        conn, _ = await raw_stream(server.port, "/events?topic=t")
        await wait_for(lambda: server.hub.subscriber_count == 1)
        (connection,) = server._state.connections
        assert connection.transport is not None
        sock = connection.transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 20_000
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 10
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        await conn.close()


async def test_a_vanished_client_is_dropped_within_heartbeat_plus_timeout() -> None:
    nft = nft_usable()
    config = make_config(heartbeat=0.2, dead_peer_timeout=1.0)
    async with running_server(config) as server:
        hub = server.hub
        conn, _ = await raw_stream(server.port, "/events?topic=t")
        await wait_for(lambda: hub.subscriber_count == 1)
        client_port = conn.writer.get_extra_info("sockname")[1]
        with packets_dropped(nft, client_port):
            loop = asyncio.get_running_loop()
            started = loop.time()
            # Its own write buffer stays nearly empty: only the kernel can tell.
            await wait_for(lambda: hub.subscriber_count == 0, timeout=10)
            elapsed = loop.time() - started
        assert hub.metrics.disconnects["dead_peer"] == 1
        # heartbeat (0.2) + user timeout (1.0), plus the kernel's retransmission timer.
        assert 1.0 <= elapsed <= scaled(5), elapsed
        conn.writer.transport.abort()
