"""rawsse behind a real nginx configured by ``deploy/nginx.conf`` (ports and paths
substituted), with rawsse's default flags: events arrive as they are published, replay
works through it, many browsers from many addresses are all served and logged under
their own addresses, a client that stops reading is dropped, and a shutdown ends the
streams cleanly. Also with nginx's default ``proxy_http_version 1.0``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse

from rawsse.server.batch import NDJSON as NDJSON_TYPE
from tests.conftest import TEST_KEY, make_config, running_server, scaled, wait_for
from tests.support.client import RawConnection
from tests.support.nginx_server import nginx_in_front

NDJSON = NDJSON_TYPE.decode()


async def read_events(url: str, count: int, headers: dict[str, str]) -> list[ServerSentEvent]:
    """``count`` events (nginx consumes ``X-Accel-Buffering``, so no header checks)."""
    got: list[ServerSentEvent] = []
    async with (
        httpx.AsyncClient(timeout=scaled(5)) as client,
        aconnect_sse(client, "GET", url, headers=headers) as source,
    ):
        async for event in source.aiter_sse():
            got.append(event)
            if len(got) == count:
                break
    return got


VERSIONS = {"1.1": None, "1.0": {"proxy_http_version 1.1;": "proxy_http_version 1.0;"}}


@pytest.mark.parametrize("version", sorted(VERSIONS))
async def test_events_and_replay_through_nginx(
    version: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rawsse.access")
    async with running_server(make_config()) as server:
        with nginx_in_front(tmp_path, server.port, VERSIONS[version]) as front:
            hub = server.hub
            url = f"{front}/events?topic=t"
            transport = httpx.AsyncHTTPTransport(local_address="127.0.0.23")
            async with (
                httpx.AsyncClient(transport=transport, timeout=scaled(5)) as client,
                aconnect_sse(client, "GET", url) as source,
            ):
                assert source.response.status_code == 200
                assert source.response.headers["content-type"].startswith("text/event-stream")
                await wait_for(lambda: hub.subscriber_count == 1)
                events = source.aiter_sse()
                ids = []
                for i in range(3):  # each one arrives before the next is published
                    ids.append(hub.publish("t", f"e{i}", event="note"))
                    event = await anext(events)
                    assert (event.id, event.event, event.data) == (ids[i], "note", f"e{i}")
                more = [hub.publish("t", f"e{i}") for i in range(3, 6)]
            replayed = await read_events(url, 3, headers={"Last-Event-ID": ids[2]})
            assert [(e.id, e.data) for e in replayed] == [(more[i], f"e{i + 3}") for i in range(3)]
            await wait_for(lambda: hub.subscriber_count == 0)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "127.0.0.23 via 127.0.0.1:" in logged  # the browser's address, not nginx's


async def test_many_browsers_from_many_addresses_with_default_flags(tmp_path: Path) -> None:
    async with running_server(make_config()) as server:
        with nginx_in_front(tmp_path, server.port) as front:
            port = int(front.rsplit(":", 1)[1])
            hub = server.hub
            browsers = []
            for i in range(150):
                conn = await RawConnection.open(port, source=f"127.0.1.{i + 1}")
                await conn.send(b"GET /events?topic=t HTTP/1.1\r\nHost: app\r\n\r\n")
                browsers.append(conn)
            await wait_for(lambda: hub.subscriber_count == 150, timeout=10)
            event_id = hub.publish("t", "for everyone")
            for conn in browsers:
                seen = b""
                while f"id: {event_id}".encode() not in seen:
                    seen += await conn.read_some()
                assert seen.startswith(b"HTTP/1.1 200") and b"retry:" not in seen
                await conn.close()
            await wait_for(lambda: hub.subscriber_count == 0)
            assert hub.metrics.rejected["limit"] == 0


async def test_a_browser_that_stops_reading_is_dropped_by_rawsse(tmp_path: Path) -> None:
    """Behind nginx a stalled browser cannot hold rawsse's memory: once nginx's and the
    kernel's buffers are full, rawsse's write buffer for nginx's connection grows past
    ``--max-buffer`` and rawsse drops the stream (``slow_buffer``); nginx then closes
    the browser's connection. (nginx's ``send_timeout``, 60 s, would end it later.)"""
    config = make_config(max_buffer=256 * 1024)
    async with running_server(config) as server:
        with nginx_in_front(tmp_path, server.port) as front:
            port = int(front.rsplit(":", 1)[1])
            hub = server.hub
            stalled = await RawConnection.open(port, source="127.0.0.31")
            await stalled.send(b"GET /events?topic=t HTTP/1.1\r\nHost: app\r\n\r\n")
            await wait_for(lambda: hub.subscriber_count == 1)
            chunk = "x" * 64 * 1024
            for _ in range(2000):  # at most 128 MiB; far less fills every buffer
                hub.publish("t", chunk)
                await asyncio.sleep(0)
                if hub.metrics.disconnects["slow_buffer"]:
                    break
            assert hub.metrics.disconnects["slow_buffer"] == 1
            await wait_for(lambda: hub.subscriber_count == 0)
            assert await stalled.read_until_closed(timeout=30)  # what was in flight, then EOF
            await stalled.close()


async def test_a_shutdown_ends_streams_cleanly_through_nginx(tmp_path: Path) -> None:
    async with running_server(make_config()) as server:
        with nginx_in_front(tmp_path, server.port) as front:
            received = []
            async with (
                httpx.AsyncClient(timeout=scaled(10)) as client,
                aconnect_sse(client, "GET", f"{front}/events?topic=t") as source,
            ):
                await wait_for(lambda: server.hub.subscriber_count == 1)
                server.hub.publish("t", "last")
                shutdown = asyncio.create_task(server.shutdown())
                async for event in source.aiter_sse():  # ends without an error
                    received.append(event)
                await shutdown
    # The event, then the shutdown's retry: hint (a random wait within the window);
    # the body ended cleanly (the iteration above ended without an error).
    assert received[0].data == "last"
    assert received[-1].retry is not None and 0 <= received[-1].retry <= 5000


async def test_batches_stream_through_nginx_and_may_be_as_large_as_rawsse_allows(
    tmp_path: Path,
) -> None:
    """A streamed NDJSON publish reaches rawsse line by line (its first event is
    delivered while the request is still open), and a 2 MiB batch is rawsse's to
    answer, not nginx's HTML 413."""
    async with running_server(make_config()) as server:
        with nginx_in_front(tmp_path, server.port) as front:
            hub = server.hub
            auth = {"Authorization": f"Bearer {TEST_KEY}", "Content-Type": NDJSON}
            first_delivered = asyncio.Event()

            async def lines() -> AsyncIterator[bytes]:
                yield b'{"topic": "t", "data": "first"}\n'
                await asyncio.wait_for(first_delivered.wait(), scaled(10))
                yield b'{"topic": "t", "data": "second"}\n'

            async with (
                httpx.AsyncClient(timeout=scaled(10)) as client,
                aconnect_sse(client, "GET", f"{front}/events?topic=t") as source,
            ):
                await wait_for(lambda: hub.subscriber_count == 1)
                events = source.aiter_sse()
                batch = asyncio.create_task(
                    client.post(f"{front}/publish", content=lines(), headers=auth)
                )
                assert (await anext(events)).data == "first"  # the request is still open
                first_delivered.set()
                answer = await batch
                assert answer.status_code == 200 and answer.text.count('"id"') == 2
                assert (await anext(events)).data == "second"
                line = b'{"topic": "big", "data": "%s"}\n' % (b"x" * 1000)
                big = line * (2 * 1024 * 1024 // len(line) + 1)
                answer = await client.post(f"{front}/publish", content=big, headers=auth)
                assert answer.status_code == 200, answer.text[:200]
                assert answer.text.count('"id"') == big.count(b"\n")
