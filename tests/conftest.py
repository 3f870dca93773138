"""Fixtures shared by every layer of tests.

Every async test runs on both event loops (asyncio's and uvloop's, when installed),
through pytest-asyncio's loop-factory hook. ``running_server`` starts a real server on
a free loopback port and, at the end, checks the server left nothing behind: no task,
no subscriber, no exception reported to the loop's handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

import rawsse
from rawsse.config import Config
from rawsse.hub.hub import Hub
from rawsse.server.server import Server

try:
    import uvloop
except ImportError:  # pragma: no cover - the test extra installs it
    uvloop = None  # type: ignore[assignment]

#: The checkout: README, deploy/, examples/, perf/ and tests/interop are found from here.
ROOT = Path(__file__).resolve().parent.parent

#: Multiply every wait in the tests by this on slow machines.
TIME_SCALE = float(os.environ.get("RAWSSE_TEST_TIME_SCALE", "1"))


def scaled(seconds: float) -> float:
    return seconds * TIME_SCALE


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop
    }
    if uvloop is not None:
        factories["uvloop"] = uvloop.new_event_loop
    elif os.environ.get("RAWSSE_REQUIRE_EXTERNAL") == "1":
        raise pytest.UsageError("uvloop is required (RAWSSE_REQUIRE_EXTERNAL=1)")
    return factories


def free_port() -> int:
    """A loopback port free now, for a server the test starts (redis-server, nginx)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_program(name: str) -> str:
    """The path of an external program; skip without it, unless RAWSSE_REQUIRE_EXTERNAL=1
    (as in CI, which installs it), where its absence is a failure."""
    # Daemons (nginx) live in sbin, which a user's PATH may lack.
    path = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if path is None:
        if os.environ.get("RAWSSE_REQUIRE_EXTERNAL") == "1":
            pytest.fail(f"{name} is required (RAWSSE_REQUIRE_EXTERNAL=1) but not installed")
        pytest.skip(f"{name} is not installed")
    return path


@pytest.fixture
def redis(tmp_path: Any) -> Iterator[Any]:
    """A real redis-server (with its append-only file) for one test."""
    from tests.support.redis_server import redis_server

    with redis_server(tmp_path) as server:
        yield server


#: Settings for tests: the defaults, with a publish key and short timers.
TEST_KEY = "test-key"


#: For tests that open many connections from 127.0.0.1 on purpose: the per-address limits
#: off (they have tests of their own).
NO_CLIENT_LIMITS: dict[str, Any] = {
    "conn_rate": 0,
    "max_connections_per_address": 0,
    "max_streams_per_address": 0,
}


#: For tests whose clients stand for browsers connecting directly (from 127.0.0.x): no
#: trusted proxy, since loopback is one by default (a proxy on the same machine).
DIRECT_CLIENTS: dict[str, Any] = {"trusted_proxies": ()}


def make_config(**changes: Any) -> Config:
    base: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "publish_key": TEST_KEY}
    base.update(changes)
    return Config(**base)


@contextlib.asynccontextmanager
async def running_server(
    config: Config | None = None, *, hub: Hub | None = None, demo_page: bytes | None = None
) -> AsyncIterator[Server]:
    """A started server; on exit, shuts it down and checks nothing was left behind."""
    async with running_servers([(config or make_config(), hub)], demo_page=demo_page) as servers:
        yield servers[0]


@contextlib.asynccontextmanager
async def running_servers(
    setups: Sequence[tuple[Config, Hub | None]], *, demo_page: bytes | None = None
) -> AsyncIterator[list[Server]]:
    """Started servers, one per ``(config, hub)``; on exit, shuts them all down and
    checks that together they left nothing behind."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    servers: list[Server] = []
    try:
        for config, hub in setups:
            server = Server(hub, config, demo_page=demo_page)
            await server.start()
            servers.append(server)
        yield servers
    finally:
        for server in servers:
            await server.shutdown(timeout=scaled(5))
        loop.set_exception_handler(previous)
    for server in servers:
        assert server.hub.subscriber_count == 0
        assert not server.hub.paused
        assert server.connection_count == 0
    leftover = [t for t in asyncio.all_tasks() if _started_by_rawsse(t)]
    assert not leftover, f"tasks left behind: {leftover}"
    assert not errors, f"exceptions reached the loop's handler: {errors}"


#: The package's own folder: a task whose code lives there was started by rawsse. (Not
#: any path with "/rawsse/" in it: a checkout is usually a folder called rawsse, and the
#: tests' own tasks live in it too.)
_PACKAGE_DIR = os.path.dirname(os.path.abspath(rawsse.__file__)) + os.sep


def _started_by_rawsse(task: asyncio.Task[Any]) -> bool:
    code = getattr(task.get_coro(), "cr_code", None)
    return code is not None and os.path.abspath(code.co_filename).startswith(_PACKAGE_DIR)


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``predicate()`` is true, checking after each loop iteration."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + scaled(timeout)
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {predicate}")
        await asyncio.sleep(0.005)
