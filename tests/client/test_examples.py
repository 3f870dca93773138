"""The FastAPI examples, started as a user starts them (uvicorn, as its own process):
one publishes to a hub through the async client, the other runs the hub inside the
app and publishes in-process. An order POSTed to each reaches a subscriber."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import ROOT, TEST_KEY, free_port, running_server, scaled
from tests.support.streams import Reader

if os.environ.get("RAWSSE_REQUIRE_EXTERNAL") != "1":
    pytest.importorskip("fastapi", reason="FastAPI is not installed")
    pytest.importorskip("uvicorn", reason="uvicorn is not installed")


@contextlib.asynccontextmanager
async def uvicorn(module: str, **env: str) -> AsyncIterator[str]:
    """``uvicorn MODULE:app --app-dir examples`` on a free port, until it answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", f"{module}:app", "--app-dir", str(ROOT / "examples"),
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = asyncio.get_running_loop().time() + scaled(20)
        async with httpx.AsyncClient(timeout=scaled(2)) as client:
            while True:
                assert process.poll() is None, process.communicate()
                with contextlib.suppress(httpx.TransportError):
                    await client.get(url + "/docs")
                    break
                assert asyncio.get_running_loop().time() < deadline, "uvicorn never answered"
                await asyncio.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(scaled(15))
        finally:
            if process.poll() is None:
                process.kill()
            _, errors = process.communicate()
    # uvicorn shuts the app down (its lifespan's end), then ends by the signal it got.
    assert process.returncode in (0, -signal.SIGTERM), errors
    assert "Traceback" not in errors and "ERROR" not in errors, errors


async def post_order(url: str, item: str) -> dict[str, object]:
    async with httpx.AsyncClient(timeout=scaled(5)) as client:
        answer = await client.post(f"{url}/orders", json={"item": item, "quantity": 2})
    assert answer.status_code == 200, answer.text
    result: dict[str, object] = answer.json()
    return result


async def test_the_fastapi_publisher_publishes_through_the_async_client() -> None:
    async with (
        running_server() as hub,
        Reader(f"{hub.url}/events?topic=orders") as reader,
        uvicorn("fastapi_publisher", RAWSSE_URL=hub.url, RAWSSE_PUBLISH_KEY=TEST_KEY) as app,
    ):
        first = await post_order(app, "book")
        second = await post_order(app, "pen")
        events = await reader.wait_count(2)
        assert [e.id for e in events] == [first["event_id"], second["event_id"]]
        assert [e.event for e in events] == ["order-created"] * 2
        assert json.loads(events[1].data) == {"number": 2, "item": "pen", "quantity": 2}


async def test_the_fastapi_app_with_the_hub_inside_publishes_in_process() -> None:
    async with uvicorn("fastapi_embedded", RAWSSE_PORT="0") as app:
        async with httpx.AsyncClient(timeout=scaled(5)) as client:
            hub_url = (await client.get(f"{app}/hub")).json()["url"]
        async with Reader(f"{hub_url}/events?topic=orders") as reader:
            sent = await post_order(app, "book")
            (event,) = await reader.wait_count(1)
        assert event.id == sent["event_id"]
        assert json.loads(event.data) == {"item": "book", "quantity": 2}
