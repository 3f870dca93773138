"""The demo page in a real browser: EventSource connects, events show with their
delay, and after a server restart the page reconnects and is told what was lost."""

from __future__ import annotations

import signal
import subprocess
import time

import httpx

from tests.cli import start_hub
from tests.conftest import require_program, scaled


def test_demo_page_in_chromium() -> None:
    chromium = require_program("chromium")
    from tests.browser import chromium_page

    hub = start_hub("--retry", "300")
    port = hub.url.rsplit(":", 1)[1]
    restarted = None
    try:
        with chromium_page(chromium, hub.url + "/") as page:
            page.wait_until(
                "document.getElementById('state').textContent === 'open' && "
                "Number(document.getElementById('count').textContent) >= 2",
                scaled(15),
            )
            # The live panel shows the hub's own figures: at least this page is a client.
            page.wait_until(
                "Number(document.getElementById('stat-clients').textContent) >= 1", scaled(10)
            )
            deliveries = page.evaluate("document.getElementById('stat-deliveries').textContent")
            assert float(deliveries) >= 0  # a number, no longer the placeholder
            delay = page.evaluate(
                "document.querySelector('#events tr td:nth-child(4)').textContent"
            )
            assert delay.endswith(" ms"), delay
            answer = httpx.post(
                hub.url + "/publish",
                data={"topic": "demo", "data": "hello, browser"},
                headers={"Authorization": f"Bearer {hub.key}"},
            )
            assert answer.status_code == 200
            page.wait_until(
                "[...document.querySelectorAll('#events td.data')]"
                ".some(td => td.textContent === 'hello, browser')",
                scaled(10),
            )
            # Restart the hub on the same port: the browser reconnects by itself with
            # its Last-Event-ID, from the old epoch, and is told what was lost.
            status, err = hub.stop(signal.SIGTERM)
            assert status == 0, err
            restarted = start_hub("--port", port, "--retry", "300")
            page.wait_until("document.getElementById('reconnects').textContent === '1'", scaled(15))
            page.wait_until(
                "[...document.querySelectorAll('#events tr td:nth-child(2)')]"
                ".some(td => td.textContent === 'rawsse-lost')",
                scaled(10),
            )
            assert page.evaluate("document.getElementById('state').textContent") == "open"
    finally:
        for process in (hub, restarted):
            if process is not None and process.process.poll() is None:
                process.stop()


def test_an_event_source_turned_away_for_a_limit_comes_back_by_itself() -> None:
    """Over ``--max-streams`` a browser's EventSource is answered 200 with a ``retry:``
    hint, not an error status, so it keeps trying and gets in once a slot frees up."""
    chromium = require_program("chromium")
    curl = require_program("curl")
    from tests.browser import chromium_page

    hub = start_hub("--no-demo", "--max-streams", "1", "--limit-retry", "300")
    holder = subprocess.Popen(
        [curl, "-sN", f"{hub.url}/events?topic=held"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_clients(hub.url, 1)
        with chromium_page(chromium, hub.url + "/healthz") as page:
            page.evaluate(
                "window.seen = {open: 0, error: 0, data: []};"
                "window.source = new EventSource('/events?topic=t');"
                "source.onopen = () => seen.open++;"
                "source.onerror = () => seen.error++;"
                "source.onmessage = e => seen.data.push(e.data);"
            )
            # Turned away more than once, and still trying (CONNECTING, not CLOSED).
            page.wait_until("seen.error >= 2", scaled(15))
            assert page.evaluate("source.readyState") in (0, 1)
            holder.terminate()  # our curl, by its PID: the slot frees up
            holder.wait(10)
            wait_for_clients(hub.url, 1)  # the browser took it
            publish = httpx.post(
                hub.url + "/publish",
                data={"topic": "t", "data": "you are in"},
                headers={"Authorization": f"Bearer {hub.key}"},
            )
            assert publish.status_code == 200
            page.wait_until("seen.data.includes('you are in')", scaled(10))
            assert page.evaluate("source.readyState") == 1
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        hub.stop()


def wait_for_clients(url: str, count: int) -> None:
    """Wait until the hub's metrics show ``count`` connected stream clients."""
    deadline = time.monotonic() + scaled(15)
    while True:
        metrics = httpx.get(url + "/metrics").text
        if f"rawsse_connected_clients {count}\n" in metrics:
            return
        assert time.monotonic() < deadline, f"never {count} clients:\n{metrics}"
        time.sleep(0.05)
