"""The embedding API, and the runnable examples in examples/ that README points to."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from rawsse import Config, InvalidEvent, ServerThread
from tests.conftest import ROOT, scaled

EXAMPLES = ROOT / "examples"


def read_events(url: str, count: int) -> list[tuple[str, str]]:
    with httpx.Client(timeout=scaled(10)) as client, connect_sse(client, "GET", url) as source:
        events = []
        for event in source.iter_sse():
            events.append((event.event, event.data))
            if len(events) == count:
                break
        return events


def test_server_thread_publishes_from_other_threads() -> None:
    with ServerThread(config=Config(port=0), loop="asyncio") as server:
        assert server.port != 0
        result: list[list[tuple[str, str]]] = []

        def reader() -> None:
            result.append(read_events(f"{server.url}/events?topic=jobs", 3))

        thread = threading.Thread(target=reader)
        thread.start()
        deadline = time.monotonic() + scaled(10)
        # ServerThread.call reads the hub's state on its own thread.
        while server.call(lambda: server.hub.subscriber_count) == 0:
            assert time.monotonic() < deadline, "the reader never subscribed"
            time.sleep(0.01)
        assert server.call(lambda: threading.current_thread().name) == "rawsse-server"
        ids = [server.publish("jobs", f"step {i}", event="progress") for i in range(3)]
        thread.join(scaled(10))
        assert result == [[("progress", f"step {i}") for i in range(3)]]
        assert len(set(ids)) == 3
        with pytest.raises(InvalidEvent):
            server.publish("jobs", "x", id="bad\nid")
    assert not server._thread or not server._thread.is_alive()


def test_server_thread_reports_start_up_errors() -> None:
    with ServerThread(config=Config(port=0)) as first:
        clash = ServerThread(config=Config(port=first.port))
        with pytest.raises(OSError):
            clash.start()
    with pytest.raises(RuntimeError, match="not running"):
        ServerThread(config=Config(port=0)).publish("t", "x")
    with pytest.raises(RuntimeError, match="not running"):
        ServerThread(config=Config(port=0)).call(int)


def run_example(name: str, *args: str) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLES / name), "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"serving on (http://\S+);", line)
    assert match, (line, process.stderr.read() if process.stderr else "")
    return process, match.group(1)


def test_example_embed_asyncio() -> None:
    process, url = run_example("embed_asyncio.py")
    try:
        assert read_events(f"{url}/events?topic=clock", 1)[0][0] == "time"
        process.send_signal(signal.SIGTERM)
        assert process.wait(scaled(15)) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_example_embed_thread() -> None:
    process, url = run_example("embed_thread.py", "--count", "150", "--interval", "0.02")
    try:
        events = read_events(f"{url}/events?topic=jobs", 2)
        assert all(kind == "progress" for kind, _ in events)
        assert process.wait(scaled(30)) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_example_embed_redis_from_asyncio_and_a_thread(redis: Any) -> None:
    """Two embedding programs, one asyncio and one with a background-thread server, on
    one real Redis: each serves what both publish, with ids from Redis's epoch."""
    if os.environ.get("RAWSSE_REQUIRE_EXTERNAL") != "1":
        pytest.importorskip("redis", reason="the redis extra is not installed")
    common = ("--redis", redis.url, "--count", "300", "--interval", "0.02")
    in_asyncio, url = run_example("embed_redis.py", *common)
    in_thread, _ = run_example("embed_redis.py", "--thread", *common)
    try:
        events = read_events(f"{url}/events?topic=jobs", 40)
        assert all(kind == "progress" for kind, _ in events)
        publishers = {json.loads(data)["by"].split("-")[0] for _, data in events}
        assert publishers == {"asyncio", "thread"}
        epoch = redis.command("GET", "rawsse:epoch").split(b"\r\n")[1].decode()
        assert in_asyncio.wait(scaled(30)) == 0
        assert in_thread.wait(scaled(30)) == 0
        for process in (in_asyncio, in_thread):
            out, _ = process.communicate()
            ids = re.findall(r"published (\S+)", out)
            assert ids and all(i.startswith(epoch + "-") for i in ids)
    finally:
        for process in (in_asyncio, in_thread):
            if process.poll() is None:
                process.kill()
            process.communicate()
