"""Driving a real headless Chromium over the DevTools protocol, for the demo page test.

Only what the test needs: start the browser on a free port, open a page, evaluate
JavaScript. Chromium is started with the flags this machine's closed network needs, in
a fresh profile directory, and ended by its PID.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--remote-debugging-address=127.0.0.1",
]


class Page:
    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        self._ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self._ws.recv(timeout=30))
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(reply["error"])
                result: dict[str, Any] = reply["result"]
                return result

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def wait_until(self, expression: str, timeout: float) -> Any:
        """Evaluate ``expression`` until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{expression} still false after {timeout} s")
            time.sleep(0.05)


@contextlib.contextmanager
def chromium_page(executable: str, url: str) -> Iterator[Page]:
    # Chromium's helper processes may still write to the profile as it exits.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        process = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            # Chromium writes the port it chose to this file once DevTools listens.
            active_port = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 30
            while not (active_port.exists() and active_port.read_text().strip()):
                assert process.poll() is None, "Chromium exited at start"
                assert time.monotonic() < deadline, "Chromium did not start DevTools"
                time.sleep(0.05)
            endpoint = f"127.0.0.1:{active_port.read_text().split()[0]}"
            targets = httpx.get(f"http://{endpoint}/json/list").json()
            page_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
            with connect(page_url, max_size=None, open_timeout=30) as ws:
                page = Page(ws)
                page.call("Page.enable")
                page.call("Page.navigate", url=url)
                yield page
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
