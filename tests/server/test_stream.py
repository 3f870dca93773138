"""Event streams end to end, with real clients: httpx-sse, curl -N and raw sockets
(HTTP/1.1 chunked and HTTP/1.0 close-delimited)."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import pytest

from rawsse.backends.memory import LOST_EVENT
from tests.conftest import (
    TEST_KEY,
    make_config,
    require_program,
    running_server,
    scaled,
    wait_for,
)
from tests.support.client import raw_stream
from tests.support.sse_parser import StreamParser, dechunk, parse
from tests.support.streams import collect, events_after, read_with_reconnects, subscribed


async def test_httpx_sse_receives_events_published_in_process_and_over_http() -> None:
    async with running_server() as server:
        hub = server.hub
        reader = asyncio.create_task(collect(f"{server.url}/events?topic=news", 3))
        await subscribed(hub, 1)
        first = hub.publish("news", "line one\nline two", event="headline")
        hub.publish("other", "not for us")
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                f"{server.url}/publish",
                data={"topic": "news", "data": "from a form"},
                headers={"Authorization": f"Bearer {TEST_KEY}"},
            )
            assert answer.status_code == 200
            second = answer.text.strip()
            answer = await client.post(
                f"{server.url}/publish",
                json={"topic": ["news", "x"], "data": "from JSON", "id": "mine-1"},
                headers={"Authorization": f"Bearer {TEST_KEY}"},
            )
            assert answer.text == "mine-1\n"
        events = await reader
        assert [(e.event, e.data, e.id) for e in events] == [
            ("headline", "line one\nline two", first),
            ("message", "from a form", second),
            ("message", "from JSON", "mine-1"),
        ]
        await wait_for(lambda: hub.subscriber_count == 0)
        assert hub.metrics.disconnects["client_closed"] == 1


async def test_raw_body_publish_with_query_fields() -> None:
    async with running_server() as server:
        reader = asyncio.create_task(collect(f"{server.url}/events?topic=news", 1))
        await subscribed(server.hub, 1)
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                f"{server.url}/publish?topic=news&event=raw&retry=1500",
                content="body\r\nas data ☃".encode(),
                headers={"Authorization": f"Bearer {TEST_KEY}", "Content-Type": "text/plain"},
            )
        assert answer.status_code == 200
        (event,) = await reader
        assert (event.event, event.data, event.retry) == ("raw", "body\nas data ☃", 1500)


async def test_json_data_that_is_not_a_string_is_sent_as_compact_json() -> None:
    values = [{"price": 1.5, "name": "café"}, [1, 2], 42, True, None]
    async with running_server() as server:
        reader = asyncio.create_task(collect(f"{server.url}/events?topic=j", len(values)))
        await subscribed(server.hub, 1)
        async with httpx.AsyncClient() as client:
            for value in values:
                answer = await client.post(
                    f"{server.url}/publish",
                    json={"topic": "j", "data": value},
                    headers={"Authorization": f"Bearer {TEST_KEY}"},
                )
                assert answer.status_code == 200
        events = await reader
        assert [e.data for e in events] == [
            '{"price":1.5,"name":"café"}',
            "[1,2]",
            "42",
            "true",
            "null",
        ]
        assert [json.loads(e.data) for e in events] == values


async def test_an_event_on_several_topics_reaches_a_subscriber_of_both_once() -> None:
    async with running_server() as server:
        hub = server.hub
        both = asyncio.create_task(collect(f"{server.url}/events?topic=a&topic=b", 3))
        only_b = asyncio.create_task(collect(f"{server.url}/events?topic=b", 2))
        await subscribed(hub, 2)
        hub.publish(["a", "b"], "to both")
        hub.publish("a", "to a")
        await asyncio.sleep(0)  # a second loop iteration: a second batch
        hub.publish("b", "to b")
        assert [e.data for e in await both] == ["to both", "to a", "to b"]
        assert [e.data for e in await only_b] == ["to both", "to b"]


@pytest.mark.parametrize("version", ["--http1.1", "--http1.0"])
async def test_curl_reads_the_stream(version: str) -> None:
    curl_path = require_program("curl")
    async with running_server() as server:
        curl = await asyncio.create_subprocess_exec(
            curl_path,
            "-sN",
            version,
            f"{server.url}/events?topic=t",
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            await subscribed(server.hub, 1)
            server.hub.publish("t", "via curl", event="e", id="c-1")
            assert curl.stdout is not None
            text = b""
            while b"\n\n" not in text:
                text += await asyncio.wait_for(curl.stdout.read(1024), scaled(5))
            assert text == b"event: e\nid: c-1\ndata: via curl\n\n"
        finally:
            curl.terminate()
            await curl.wait()
        await wait_for(lambda: server.hub.subscriber_count == 0)


async def test_http_1_1_streams_are_chunked_and_end_with_the_terminating_chunk() -> None:
    async with running_server(make_config(retry=2000, shutdown_retry_window=1000)) as server:
        conn, head = await raw_stream(server.port, "/events?topic=t")
        head, _, body = head.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"transfer-encoding: chunked" in head.lower()
        await subscribed(server.hub, 1)
        server.hub.publish("t", "one")
        server.hub.publish("t", "two")
        await server.shutdown(timeout=scaled(5))
        body += await conn.read_until_closed()
        payload, terminated = dechunk(body)
        assert terminated
        parsed = parse(payload.decode())
        assert [e.data for e in parsed.events] == ["one", "two"]
        # retry on connect (2000), then the shutdown hint within the window.
        assert payload.startswith(b"retry: 2000\n\n")
        assert parsed.retry is not None and 0 <= parsed.retry <= 1000
        await conn.close()


async def test_http_1_0_streams_are_close_delimited() -> None:
    async with running_server() as server:
        conn, head = await raw_stream(server.port, "/events?topic=t", version="1.0")
        head, _, body = head.partition(b"\r\n\r\n")
        assert b"transfer-encoding" not in head.lower()
        assert b"connection: close" in head.lower()
        await subscribed(server.hub, 1)
        server.hub.publish("t", "plain")
        await server.shutdown(timeout=scaled(5))
        body += await conn.read_until_closed()
        # The event as is, then the shutdown's retry hint; no chunk framing anywhere.
        assert re.fullmatch(rb"id: [0-9a-f]{8}-1\ndata: plain\n\nretry: [0-9]+\n\n", body), body
        await conn.close()


async def test_heartbeats_go_to_idle_streams_only() -> None:
    async with running_server(make_config(heartbeat=0.2)) as server:
        hub = server.hub
        busy, _ = await raw_stream(server.port, "/events?topic=busy", version="1.0")
        idle, _ = await raw_stream(server.port, "/events?topic=idle", version="1.0")
        await subscribed(hub, 2)
        idle_parser, busy_parser = StreamParser(), StreamParser()
        loop = asyncio.get_running_loop()
        end = loop.time() + scaled(1.0)
        n = 0
        while loop.time() < end:
            n += 1
            hub.publish("busy", str(n))
            await asyncio.sleep(0.02)
        idle_parser.feed((await idle.read_some()).decode())
        while len(busy_parser.events) < n:
            busy_parser.feed((await busy.read_some()).decode())
        assert idle_parser.comments >= 2 and idle_parser.events == []
        assert busy_parser.comments == 0
        await busy.close()
        await idle.close()


async def test_client_disconnects_are_noticed_at_once() -> None:
    async with running_server() as server:
        conns = [(await raw_stream(server.port, f"/events?topic=t{i % 2}"))[0] for i in range(4)]
        await subscribed(server.hub, 4)
        assert server.hub.topic_count == 2
        for conn in conns:
            await conn.close()
        await wait_for(lambda: server.hub.subscriber_count == 0)
        assert server.hub.topic_count == 0
        assert server.hub.metrics.disconnects["client_closed"] == 4


async def test_data_sent_by_a_stream_client_is_ignored() -> None:
    async with running_server() as server:
        conn, _ = await raw_stream(server.port, "/events?topic=t", version="1.0")
        await subscribed(server.hub, 1)
        await conn.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n" * 100)
        server.hub.publish("t", "still streaming")
        body = b""
        while b"\n\n" not in body:
            body += await conn.read_some()
        assert [e.data for e in parse(body.decode()).events] == ["still streaming"]
        await conn.close()


@pytest.mark.parametrize("query", [False, True])
async def test_reconnecting_with_last_event_id_replays_what_was_missed(query: bool) -> None:
    async with running_server() as server:
        hub = server.hub
        ids = [hub.publish("t", f"e{i}") for i in range(5)]
        hub.publish("other", "never")
        url = f"{server.url}/events?topic=t"
        events = await events_after(url, ids[1], 3, query=query)
        assert [(e.id, e.data) for e in events] == [(ids[i], f"e{i}") for i in (2, 3, 4)]


async def test_a_stream_closed_during_its_replay_writes_nothing_more() -> None:
    """A client that leaves while its long replay is written page by page: the pages
    still to come are not written to its closed transport (uvloop raises there, in a
    callback of the loop's), and nothing is left behind."""
    async with running_server(make_config(history=400)) as server:
        hub = server.hub
        ids = [hub.publish("t", "x" * 4000) for _ in range(400)]
        for _ in range(20):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(
                b"GET /events?topic=t HTTP/1.1\r\nhost: x\r\nlast-event-id: %s\r\n\r\n"
                % ids[0].encode()
            )
            await reader.readuntil(b"\r\n\r\n")  # the head: its replay has begun
            writer.transport.abort()
        await wait_for(lambda: server.connection_count == 0)
        # Give pages scheduled for the next loop iterations their turn.
        for _ in range(10):
            await asyncio.sleep(0)
        assert hub.subscriber_count == 0


async def test_no_duplicate_and_no_hole_at_the_seam_while_publishing() -> None:
    """A producer publishes without pause while a client reads, drops and reconnects
    with its last id three times: it must see every event exactly once, in order."""
    async with running_server() as server:
        hub = server.hub
        stop = asyncio.Event()

        async def produce() -> None:
            n = 0
            while not stop.is_set() and n < 20000:
                n += 1
                hub.publish("t", str(n))
                if n % 3 == 0:
                    await asyncio.sleep(0)

        producer = asyncio.create_task(produce())
        seen = await read_with_reconnects(f"{server.url}/events?topic=t", rounds=4)
        stop.set()
        await producer
        assert seen == list(range(seen[0], seen[0] + len(seen)))


async def test_a_reconnect_from_before_the_history_is_told_what_was_lost() -> None:
    async with running_server(make_config(history=3)) as server:
        hub = server.hub
        ids = [hub.publish("t", f"e{i}") for i in range(10)]
        events = await events_after(f"{server.url}/events?topic=t", ids[2], 4)
        assert events[0].event == LOST_EVENT
        notice = json.loads(events[0].data)
        assert notice == {"reason": "expired", "last_event_id": ids[2], "resume_id": ids[6]}
        assert events[0].id == ids[6]
        assert [e.data for e in events[1:]] == ["e7", "e8", "e9"]
        other = await events_after(f"{server.url}/events?topic=t", "deadbeef-4", 4)
        assert json.loads(other[0].data)["reason"] == "epoch"
        assert [e.data for e in other[1:]] == ["e7", "e8", "e9"]
