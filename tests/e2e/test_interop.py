"""The SSE clients people use, against a running hub: httpx-sse, sseclient-py, curl and
the npm ``eventsource`` package under Node (pinned in tests/interop). Each sees the same
events, types, ids and data (multi-line, non-ASCII, an id with spaces and punctuation),
and after the hub drops its stream each resumes with its last id, its ``Last-Event-ID``
coming back unchanged, and gets exactly what it missed: the npm client by itself, the
others by reconnecting with the header as their users do."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from httpx_sse import connect_sse

from rawsse import Config, ServerThread
from tests.conftest import ROOT, TEST_KEY, require_program, scaled
from tests.support.sse_parser import parse

INTEROP = ROOT / "tests" / "interop"

Event = tuple[str, str, str]  # (type, id, data)

#: Published before the drop: a typed multi-line event, non-ASCII data, and an id that
#: must come back unchanged as a Last-Event-ID header (spaces inside, punctuation).
BEFORE = [
    ("note", "first id", "line one\nline two"),
    ("message", None, "héllo ☃ 日本語"),
    ("message", "edge id ~!@#$%^&*()_+{}|:<>?", "third"),
]
MISSED = ["missed 1", "missed 2"]


def wait(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def read_httpx_sse(url: str, last_id: str | None, out: list[Event], count: int) -> None:
    headers = {"Last-Event-ID": last_id} if last_id else {}
    with (
        httpx.Client(timeout=scaled(20)) as client,
        connect_sse(client, "GET", url, headers=headers) as s,
    ):
        for event in s.iter_sse():
            if event.retry is not None and not event.data:
                continue  # httpx-sse hands a lone retry: on as an event; browsers do not
            out.append((event.event, event.id, event.data))
            if len(out) == count:
                return


def read_sseclient(url: str, last_id: str | None, out: list[Event], count: int) -> None:
    from sseclient import SSEClient

    request = urllib.request.Request(url, headers={"Last-Event-ID": last_id} if last_id else {})
    with urllib.request.urlopen(request, timeout=scaled(20)) as response:
        for event in SSEClient(response).events():
            out.append((event.event, event.id, event.data))
            if len(out) == count:
                return


def read_curl(url: str, last_id: str | None, out: list[Event], count: int) -> None:
    curl = shutil.which("curl")
    assert curl is not None
    args = [curl, "-sN", "--max-time", str(int(scaled(20))), url]
    if last_id:
        args[1:1] = ["-H", f"Last-Event-ID: {last_id}"]
    base = len(out)
    with subprocess.Popen(args, stdout=subprocess.PIPE) as process:
        assert process.stdout is not None
        text = b""
        for line in process.stdout:
            text += line
            events = parse(text.decode()).events
            out[base:] = [(e.type, e.last_event_id, e.data) for e in events]
            if len(out) >= count:
                process.terminate()
                break


READERS = {"httpx-sse": read_httpx_sse, "sseclient-py": read_sseclient, "curl": read_curl}


def reconnecting(
    reader: Callable[[str, str | None, list[Event], int], None],
) -> Callable[..., None]:
    """A client's user's loop: read until the stream ends, then reconnect with the last
    id seen, until ``count`` events."""

    def loop(url: str, out: list[Event], count: int) -> None:
        while len(out) < count:
            last_id = out[-1][1] if out else None
            reader(url, last_id, out, count)

    return loop


def require_npm_eventsource(interop: Path = INTEROP) -> str:
    """Node's path, once the npm client is installed in ``interop``; else skip (fail
    when external programs are required). Called in the test itself: a skip raised in
    the reader's thread would be an error in that thread, not a skip."""
    node = require_program("node")
    if not (interop / "node_modules" / "eventsource").exists():
        if os.environ.get("RAWSSE_REQUIRE_EXTERNAL") == "1":
            pytest.fail("npm eventsource not installed: npm ci --prefix tests/interop")
        pytest.skip("npm eventsource not installed: npm ci --prefix tests/interop")
    return node


def test_a_missing_npm_client_is_a_skip_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAWSSE_REQUIRE_EXTERNAL", raising=False)
    with pytest.raises(pytest.skip.Exception, match="npm ci --prefix tests/interop"):
        require_npm_eventsource(tmp_path)
    monkeypatch.setenv("RAWSSE_REQUIRE_EXTERNAL", "1")
    with pytest.raises(pytest.fail.Exception, match="npm eventsource not installed"):
        require_npm_eventsource(tmp_path)


def read_npm_eventsource(url: str, out: list[Event], count: int) -> None:
    with subprocess.Popen(
        [require_program("node"), str(INTEROP / "read.mjs"), url, str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            event = json.loads(line)
            out.append((event["type"], event["id"], event["data"]))


@pytest.mark.parametrize("client", [*READERS, "npm eventsource"])
def test_each_client_sees_the_same_events_and_resumes_after_a_drop(client: str) -> None:
    if client == "curl":
        require_program("curl")
    if client == "sseclient-py" and os.environ.get("RAWSSE_REQUIRE_EXTERNAL") != "1":
        pytest.importorskip("sseclient")
    if client == "npm eventsource":
        require_npm_eventsource()
    config = Config(port=0, publish_key=TEST_KEY, retry=200, shutdown_retry_window=0)
    expected_count = len(BEFORE) + len(MISSED) + 1
    with ServerThread(config=config) as server:
        url = f"{server.url}/events?topic=t"
        seen: list[Event] = []
        read = (
            read_npm_eventsource if client == "npm eventsource" else reconnecting(READERS[client])
        )
        reader = threading.Thread(target=read, args=(url, seen, expected_count), daemon=True)
        reader.start()
        wait(lambda: server.call(lambda: server.hub.subscriber_count) == 1, "never subscribed")
        before = [server.publish("t", data, event=kind, id=id) for kind, id, data in BEFORE]
        wait(lambda: len(seen) == len(BEFORE), f"{client} read {seen}")

        def drop_then_publish() -> list[str]:
            server.hub.end_streams(None, "test")
            return [server.hub.publish("t", data) for data in MISSED]

        missed = server.call(drop_then_publish)
        wait(lambda: server.call(lambda: server.hub.subscriber_count) == 1, "never came back")
        live = server.publish("t", "live")
        reader.join(scaled(20))
        assert not reader.is_alive(), seen
    assert seen == [
        *[(kind, event_id, data) for (kind, _, data), event_id in zip(BEFORE, before, strict=True)],
        *[("message", event_id, data) for event_id, data in zip(missed, MISSED, strict=True)],
        ("message", live, "live"),
    ]
