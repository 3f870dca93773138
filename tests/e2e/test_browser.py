"""A real browser: Chromium driven by Playwright, against the demo page and a test page.

The demo page connects, shows events with their delay, and after a server restart is
told what was lost; a test page on another origin gets event types, multi-line and
non-ASCII data intact, reconnects after the ``retry`` delay with its Last-Event-ID and
gets exactly the missed events; an EventSource turned away for a limit comes back by
itself, one refused for lack of rights does not spin, and one from an origin not on
``--cors-origin`` is refused. The demo page's screenshot is saved in
``.artifacts/demo-page.png`` (not committed).
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx

from rawsse import Config, ServerThread
from tests.conftest import ROOT, TEST_KEY, require_program, scaled
from tests.support.browser import chromium
from tests.support.cli import start_hub

ARTIFACTS = ROOT / ".artifacts"

#: The test page: it records what its EventSource sees.
RECORDER = """
window.seen = {open: 0, error: 0, events: [], opened: [], failed: []};
window.source = new EventSource(%r);
source.onopen = () => { seen.open++; seen.opened.push(performance.now()); };
source.onerror = () => { seen.error++; seen.failed.push(performance.now()); };
for (const type of ['message', 'note'])
  source.addEventListener(type, e => seen.events.push([e.type, e.data, e.lastEventId]));
"""


def ms(seconds: float) -> float:
    return scaled(seconds) * 1000


@contextlib.contextmanager
def app_origin() -> Iterator[str]:
    """Another origin for the test page: a server of its own on another loopback port
    (Chromium keeps pages from other address spaces off loopback, so the page must be
    served from loopback too)."""
    with ServerThread(config=Config(port=0), demo_page=b"<html><body>app</body></html>") as app:
        yield app.url


def app_page(browser: Any, app: str, stream_url: str) -> Any:
    """A page on origin ``app`` recording an EventSource on ``stream_url``."""
    page = browser.new_page()
    page.goto(f"{app}/")
    page.evaluate(RECORDER % stream_url)
    return page


def test_demo_page_in_chromium() -> None:
    hub = start_hub("--retry", "300")
    port = hub.url.rsplit(":", 1)[1]
    restarted = None
    try:
        with chromium() as browser:
            page = browser.new_page()
            page.goto(hub.url + "/")
            page.wait_for_function(
                "document.getElementById('state').textContent === 'open' && "
                "Number(document.getElementById('count').textContent) >= 2",
                timeout=ms(15),
            )
            # The live panel shows the hub's own figures: at least this page is a client.
            page.wait_for_function(
                "Number(document.getElementById('stat-clients').textContent) >= 1",
                timeout=ms(10),
            )
            deliveries = page.evaluate("document.getElementById('stat-deliveries').textContent")
            assert float(deliveries) >= 0  # a number, no longer the placeholder
            delay = page.evaluate(
                "document.querySelector('#events tr td:nth-child(4)').textContent"
            )
            assert delay.endswith(" ms"), delay
            # Nothing the page asked for was missing (a browser asks for /favicon.ico
            # unless the page names an icon).
            metrics = httpx.get(hub.url + "/metrics").text
            assert 'status="404"' not in metrics, metrics
            answer = httpx.post(
                hub.url + "/publish",
                data={"topic": "demo", "data": "hello, browser"},
                headers={"Authorization": f"Bearer {hub.key}"},
            )
            assert answer.status_code == 200
            page.wait_for_function(
                "[...document.querySelectorAll('#events td.data')]"
                ".some(td => td.textContent === 'hello, browser')",
                timeout=ms(10),
            )
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "demo-page.png"), full_page=True)
            assert (ARTIFACTS / "demo-page.png").stat().st_size > 1000
            # Restart the hub on the same port: the browser reconnects by itself with
            # its Last-Event-ID, from the old epoch, and is told what was lost.
            status, err = hub.stop(signal.SIGTERM)
            assert status == 0, err
            restarted = start_hub("--port", port, "--retry", "300")
            page.wait_for_function(
                "document.getElementById('reconnects').textContent === '1'", timeout=ms(15)
            )
            page.wait_for_function(
                "[...document.querySelectorAll('#events tr td:nth-child(2)')]"
                ".some(td => td.textContent === 'rawsse-lost')",
                timeout=ms(10),
            )
            assert page.evaluate("document.getElementById('state').textContent") == "open"
    finally:
        for process in (hub, restarted):
            if process is not None and process.process.poll() is None:
                process.stop()


def test_event_source_on_another_origin_resumes_after_a_drop() -> None:
    with app_origin() as app:
        config = Config(
            port=0,
            publish_key=TEST_KEY,
            retry=300,
            shutdown_retry_window=0,  # the drop below sends no retry: of its own
            cors_origins=(app,),
        )
        with ServerThread(config=config) as server, chromium() as browser:
            resume_after_a_drop(server, app_page(browser, app, f"{server.url}/events?topic=t"))


def resume_after_a_drop(server: ServerThread, page: Any) -> None:
    """The page reads events, loses its stream, comes back after its retry: and
    gets exactly what it missed."""
    page.wait_for_function("seen.open === 1", timeout=ms(10))
    published = [
        server.publish("t", "line one\nline two", event="note"),
        server.publish("t", "héllo ☃ 日本語"),
        server.publish("t", "  spaces kept  "),
    ]
    page.wait_for_function("seen.events.length === 3", timeout=ms(10))
    assert page.evaluate("seen.events") == [
        ["note", "line one\nline two", published[0]],
        ["message", "héllo ☃ 日本語", published[1]],
        ["message", "  spaces kept  ", published[2]],
    ]

    def drop_then_publish() -> list[str]:
        # The streams end, and events are published before the browser is back.
        server.hub.end_streams(None, "test")
        return [server.hub.publish("t", f"missed {i}") for i in range(2)]

    missed = server.call(drop_then_publish)
    page.wait_for_function("seen.open === 2", timeout=ms(10))
    live = server.publish("t", "live again")
    page.wait_for_function("seen.events.length === 6", timeout=ms(10))
    events = page.evaluate("seen.events")
    assert [e[2] for e in events] == [*published, *missed, live]  # none twice, no hole
    waited = page.evaluate("seen.opened[1] - seen.failed[0]")
    assert waited >= 250, waited  # the retry: 300 ms the server sent on connecting
    assert page.evaluate("source.readyState") == 1


def test_an_origin_not_allowed_is_refused() -> None:
    config = Config(port=0, publish_key=TEST_KEY, retry=300)  # no --cors-origin
    with app_origin() as app, ServerThread(config=config) as server, chromium() as browser:
        page = app_page(browser, app, f"{server.url}/events?topic=t")
        page.wait_for_function("source.readyState === 2", timeout=ms(10))  # CLOSED for good
        assert page.evaluate("seen.open") == 0 and page.evaluate("seen.events") == []


def test_an_event_source_without_rights_does_not_spin() -> None:
    """401 closes an EventSource for good (a limit's 200 with retry: does not): the
    browser asks once and stops."""
    secret = "a-browser-test-secret-long-enough-for-hs256"
    config = Config(port=0, publish_key=TEST_KEY, retry=300, subscribe_auth=True, jwt_secret=secret)
    with ServerThread(config=config) as server, chromium() as browser:
        page = browser.new_page()
        page.goto(f"{server.url}/healthz")  # same origin: only the credentials are missing
        page.evaluate(RECORDER % "/events?topic=t")
        page.wait_for_function("source.readyState === 2", timeout=ms(10))
        refusals = server.call(lambda: server.hub.metrics.requests.get(("/events", 401), 0))
        assert refusals == 1 and page.evaluate("seen.error") == 1


def test_an_event_source_turned_away_for_a_limit_comes_back_by_itself() -> None:
    """Over ``--max-streams`` a browser's EventSource is answered 200 with a ``retry:``
    hint, not an error status, so it keeps trying and gets in once a slot frees up."""
    curl = require_program("curl")
    hub = start_hub("--no-demo", "--max-streams", "1", "--limit-retry", "300")
    holder = subprocess.Popen(
        [curl, "-sN", f"{hub.url}/events?topic=held"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_clients(hub.url, 1)
        with chromium() as browser:
            page = browser.new_page()
            page.goto(hub.url + "/healthz")
            page.evaluate(RECORDER % "/events?topic=t")
            # Turned away more than once, and still trying (CONNECTING, not CLOSED).
            page.wait_for_function("seen.error >= 2", timeout=ms(15))
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
            page.wait_for_function("seen.events.some(e => e[1] === 'you are in')", timeout=ms(10))
            assert page.evaluate("source.readyState") == 1
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        hub.stop()


def test_chromium_reads_compressed_streams_event_by_event() -> None:
    """With ``--compress``, Chromium's EventSource (which asks for gzip) gets a gzip
    stream; each event arrives intact before the next is published, for a stream
    opened first and one that joins its group's compressor mid-stream."""
    hub = start_hub("--no-demo", "--compress")
    try:
        with chromium() as browser:
            page = browser.new_page()
            encodings: list[str | None] = []
            page.on(
                "response",
                lambda r: (
                    encodings.append(r.headers.get("content-encoding"))
                    if "/events" in r.url
                    else None
                ),
            )
            page.goto(hub.url + "/healthz")
            page.evaluate(RECORDER % "/events?topic=orders")
            page.wait_for_function("seen.open === 1", timeout=ms(10))
            with httpx.Client(headers={"Authorization": f"Bearer {hub.key}"}) as client:
                for n in range(40):
                    if n == 10:
                        page.evaluate(
                            "window.late = []; window.second = new EventSource("
                            "'/events?topic=orders'); second.onmessage = e => late.push(e.data); true"
                        )
                        wait_for_clients(hub.url, 2)
                    order = {"n": n, "item": "book", "note": "é ✓", "total": n * 1.5}
                    answer = client.post(
                        hub.url + "/publish", json={"topic": "orders", "data": json.dumps(order)}
                    )
                    assert answer.status_code == 200
                    page.wait_for_function(f"seen.events.length === {n + 1}", timeout=ms(5))
                    if n >= 10:
                        page.wait_for_function(f"late.length === {n - 9}", timeout=ms(5))
            first = [json.loads(data) for _, data, _ in page.evaluate("seen.events")]
            late = [json.loads(data) for data in page.evaluate("late")]
            assert [o["n"] for o in first] == list(range(40))
            assert late == first[10:]
            assert first[3] == {"n": 3, "item": "book", "note": "é ✓", "total": 4.5}
            assert page.evaluate("seen.error") == 0
            assert encodings == ["gzip", "gzip"], encodings
    finally:
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
