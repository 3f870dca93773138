"""Compressed streams (``--compress``) over real sockets: negotiation, each event
inflatable as soon as it is written, streams that join a group mid-stream and then
share its compressor, replay, lost notices, heartbeats, a member's own notice, and
the end of a stream (``retry:`` and a gzip trailer whose checksum zlib checks), for
chunked and close-delimited bodies; then httpx-sse and curl ``--compressed``."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import time
from typing import Any

import httpx
import jwt
import pytest
from httpx_sse import aconnect_sse

from rawsse.hub.compressed import RESET_EVERY
from rawsse.hub.hub import Hub
from rawsse.hub.subscriber import Subscriber
from rawsse.server.server import Server
from tests.conftest import make_config, require_program, running_server, scaled, wait_for
from tests.support.client import raw_stream
from tests.support.gzip_stream import GzipStream

SECRET = "compression-test-secret-of-32-bytes!"


def compressing(**changes: Any) -> Any:
    return make_config(compress=True, **changes)


def members(hub: Hub) -> list[Subscriber]:
    return list(hub.subscribers())


def shares_the_lane(subscriber: Subscriber) -> bool:
    """Whether the stream writes its group's compressed bytes straight to its
    transport (it joined the group's compressor)."""
    sink = subscriber.compressed
    assert sink is not None
    return sink.lane is not None and subscriber.transport is sink.transport


async def publish_until(
    hub: Hub, streams: list[GzipStream], done: Any, timeout: float = 5.0
) -> int:
    """Publish one event at a time, each read by every stream before the next, until
    ``done()``; return how many. (A lane resets at most every ``RESET_EVERY`` s.)"""
    deadline = time.monotonic() + scaled(timeout)
    count = 0
    while not done():
        assert time.monotonic() < deadline, "the condition never held"
        hub.publish("t", json.dumps({"n": count, "kind": "order", "status": "paid"}))
        count += 1
        for stream in streams:
            await stream.wait_events(len(stream.events) + 1)
    return count


@pytest.mark.parametrize("version", ["1.1", "1.0"])
async def test_a_stream_that_accepts_gzip_gets_each_event_compressed_at_once(
    version: str,
) -> None:
    async with running_server(compressing()) as server:
        hub = server.hub
        stream = await GzipStream.open(server.port, "/events?topic=t", version=version)
        assert stream.headers["vary"] == "accept-encoding"
        assert stream.chunked is (version == "1.1")
        await wait_for(lambda: hub.subscriber_count == 1)
        for n in range(5):
            # Each event is inflated before the next is published: nothing waits in a
            # compressor's buffer for more data.
            sent = hub.publish("t", f"event {n}", event="tick")
            (*_, last) = await stream.wait_events(n + 1)
            assert (last.type, last.data, last.last_event_id) == ("tick", f"event {n}", sent)
        assert not stream.complete  # the gzip stream goes on
        await stream.close()
        await wait_for(lambda: hub.subscriber_count == 0)


@pytest.mark.parametrize(
    ("compress", "accept", "encoded", "vary"),
    [
        (True, None, False, True),
        (True, "gzip;q=0", False, True),
        (True, "br, identity", False, True),
        (True, "br;q=1, *;q=0.1", True, True),
        (True, "GZIP", True, True),
        (True, "gzip;q=oops", False, True),  # a malformed weight: sent as it is
        (False, "gzip", False, False),
    ],
)
async def test_compression_is_negotiated(
    compress: bool, accept: str | None, encoded: bool, vary: bool
) -> None:
    extra = [f"Accept-Encoding: {accept}"] if accept is not None else []
    async with running_server(make_config(compress=compress)) as server:
        conn, head = await raw_stream(server.port, "/events?topic=t", *extra)
        headers = head.decode("latin-1").lower()
        assert ("content-encoding: gzip" in headers) is encoded
        assert ("vary: accept-encoding" in headers) is vary
        await wait_for(lambda: server.hub.subscriber_count == 1)
        server.hub.publish("t", "plain or not")
        if encoded:
            stream = GzipStream(conn, head)
            await stream.wait_events(1)
            assert stream.events[0].data == "plain or not"
        else:
            body = head
            while b"plain or not" not in body:
                body += await conn.read_some()
        await conn.close()
        await wait_for(lambda: server.hub.subscriber_count == 0)


async def test_streams_that_join_mid_stream_share_the_groups_compressor() -> None:
    """A stream begins with a compressor of its own and joins the group's at its next
    reset; from then on every member gets the same bytes, and each stream inflates
    every event it was sent, in order, whenever it joined."""
    async with running_server(compressing()) as server:
        hub = server.hub
        first = await GzipStream.open(server.port, "/events?topic=t")
        await wait_for(lambda: hub.subscriber_count == 1)
        await publish_until(hub, [first], lambda: shares_the_lane(members(hub)[0]))
        second = await GzipStream.open(server.port, "/events?topic=t")
        third = await GzipStream.open(server.port, "/events?topic=t", version="1.0")
        await wait_for(lambda: hub.subscriber_count == 3)
        streams = [first, second, third]
        # The newcomers catch up within a reset, not sooner than RESET_EVERY after the
        # last one (the members' window is kept until then).
        started = time.monotonic()
        await publish_until(hub, streams, lambda: all(map(shares_the_lane, members(hub))))
        assert time.monotonic() - started >= RESET_EVERY / 2
        # Then one compression a flush, shared: each member gets the same bytes.
        before = [stream.compressed_bytes for stream in streams]
        targets = [len(stream.events) + 20 for stream in streams]
        for n in range(20):
            hub.publish("t", json.dumps({"n": n, "kind": "order", "status": "shipped"}))
        for stream, target in zip(streams, targets, strict=True):
            await stream.wait_events(target)
        grown = [stream.compressed_bytes - b for stream, b in zip(streams, before, strict=True)]
        assert grown[0] == grown[1] == grown[2], grown
        # Everything each was sent, in order, whatever it began with.
        datas = [[e.data for e in stream.events] for stream in streams]
        assert datas[1] == datas[2] == datas[0][-len(datas[1]) :]
        assert json.loads(datas[0][-1]) == {"n": 19, "kind": "order", "status": "shipped"}
        for stream in streams:
            await stream.close()
        await wait_for(lambda: hub.subscriber_count == 0)


async def test_replay_and_the_lost_notice_are_compressed() -> None:
    async with running_server(compressing(history=3)) as server:
        hub = server.hub
        ids = [hub.publish("t", f"kept {n}") for n in range(5)]
        resumed = await GzipStream.open(server.port, "/events?topic=t", f"Last-Event-ID: {ids[2]}")
        events = await resumed.wait_events(2)
        assert [(e.data, e.last_event_id) for e in events] == [
            ("kept 3", ids[3]),
            ("kept 4", ids[4]),
        ]
        lost = await GzipStream.open(server.port, "/events?topic=t", f"Last-Event-ID: {ids[0]}")
        (notice, *replayed) = await lost.wait_events(4)
        assert notice.type == "rawsse-lost"
        assert [e.data for e in replayed] == ["kept 2", "kept 3", "kept 4"]
        await wait_for(lambda: hub.subscriber_count == 2)
        hub.publish("t", "live")
        for stream in (resumed, lost):
            await stream.wait_text("data: live\n\n")
            await stream.close()
        await wait_for(lambda: hub.subscriber_count == 0)


async def test_heartbeats_are_compressed() -> None:
    async with running_server(compressing(heartbeat=0.05)) as server:
        stream = await GzipStream.open(server.port, "/events?topic=t")
        await stream.wait_text(":\n\n:\n\n")
        server.hub.publish("t", "after the heartbeats")
        await stream.wait_events(1)
        await stream.close()
        await wait_for(lambda: server.hub.subscriber_count == 0)


async def shut_down(server: Server) -> None:
    await server.shutdown(timeout=scaled(2))


@pytest.mark.parametrize("version", ["1.1", "1.0"])
async def test_shutdown_ends_every_compressed_stream_with_retry_and_a_good_trailer(
    version: str,
) -> None:
    """A member of the group's compressor and a stream still on its own both end with
    a ``retry:`` in a final block and a trailer whose checksum covers all they got."""
    async with running_server(compressing()) as server:
        hub = server.hub
        member = await GzipStream.open(server.port, "/events?topic=t", version=version)
        await wait_for(lambda: hub.subscriber_count == 1)
        await publish_until(hub, [member], lambda: shares_the_lane(members(hub)[0]))
        newcomer = await GzipStream.open(server.port, "/events?topic=t", version=version)
        await wait_for(lambda: hub.subscriber_count == 2)
        hub.publish("t", "last words")
        for stream in (member, newcomer):
            await stream.wait_text("data: last words\n\n")
        assert sum(map(shares_the_lane, members(hub))) == 1  # one of each
        await shut_down(server)
        for stream in (member, newcomer):
            await stream.read_to_end()
            assert stream.complete, stream.text  # zlib checked the CRC and the length
            assert stream.parser.retry is not None
            await stream.close()
        assert hub.metrics.disconnects["shutdown"] == 2


async def test_a_member_sent_a_notice_of_its_own_rejoins_and_its_checksum_holds() -> None:
    """The token-expiry notice is this stream's alone: it leaves the group's compressor
    for its own, gets its notice and the group's events, and ends at expiry with a
    trailer that adds up the pieces."""
    config = compressing(jwt_secret=SECRET, subscribe_auth=True, token_expiry_notice=1.0)
    async with running_server(config) as server:
        hub = server.hub
        claims = {"rawsse": {"subscribe": ["t"]}, "exp": int(time.time()) + 3}
        token = jwt.encode(claims, SECRET)
        stream = await GzipStream.open(
            server.port, "/events?topic=t", f"Authorization: Bearer {token}"
        )
        await wait_for(lambda: hub.subscriber_count == 1)
        await publish_until(hub, [stream], lambda: shares_the_lane(members(hub)[0]))
        await stream.wait_text("event: rawsse-auth-expiring", timeout=5)
        (subscriber,) = members(hub)
        assert subscriber.compressed is not None and not shares_the_lane(subscriber)
        sent = await publish_until(hub, [stream], lambda: shares_the_lane(subscriber))
        assert sent >= 1
        await stream.read_to_end(timeout=5)
        assert stream.complete, stream.text
        assert [e.type for e in stream.events].count("rawsse-auth-expiring") == 1
        await stream.close()
        await wait_for(lambda: hub.subscriber_count == 0)
        assert hub.metrics.disconnects["auth_expired"] == 1


async def test_httpx_sse_reads_a_compressed_stream() -> None:
    async with running_server(compressing()) as server:
        hub = server.hub
        got: list[str] = []

        async def read() -> str:
            async with (
                httpx.AsyncClient(timeout=scaled(5)) as client,
                aconnect_sse(client, "GET", f"{server.url}/events?topic=t") as source,
            ):
                async for event in source.aiter_sse():
                    got.append(event.data)
                    if len(got) == 30:
                        break
                return source.response.headers["content-encoding"]

        reader = asyncio.create_task(read())
        await wait_for(lambda: hub.subscriber_count == 1)
        for n in range(30):
            hub.publish("t", json.dumps({"n": n, "note": "é ✓"}))
            await wait_for(lambda n=n: len(got) > n)  # type: ignore[misc]
        assert await reader == "gzip"
        assert [json.loads(data)["n"] for data in got] == list(range(30))
        await wait_for(lambda: hub.subscriber_count == 0)


async def test_curl_compressed_reads_each_event_as_it_comes() -> None:
    curl = require_program("curl")
    async with running_server(compressing()) as server:
        hub = server.hub
        process = await asyncio.create_subprocess_exec(
            curl, "-sN", "--compressed", "-D", "-", f"{server.url}/events?topic=t",
            stdout=subprocess.PIPE,
        )  # fmt: skip
        assert process.stdout is not None
        try:
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                head += await asyncio.wait_for(process.stdout.readline(), scaled(5))
            assert b"content-encoding: gzip" in head.lower()
            await wait_for(lambda: hub.subscriber_count == 1)
            for n in range(3):
                hub.publish("t", f"curl {n}")
                line = b""
                while line != f"data: curl {n}\n".encode():
                    line = await asyncio.wait_for(process.stdout.readline(), scaled(5))
        finally:
            process.terminate()
            await process.wait()
        await wait_for(lambda: hub.subscriber_count == 0)


async def test_a_compressed_stream_that_stops_reading_is_dropped_and_leaves_nothing() -> None:
    """The drop rules hold for compressed streams: one that never reads falls over
    ``max_buffer`` and is aborted, while a reading member of the same group goes on."""
    config = compressing(max_buffer=100_000, write_high_water=10_000)
    async with running_server(config) as server:
        hub = server.hub
        reader = await GzipStream.open(server.port, "/events?topic=t")
        stuck = await GzipStream.open(server.port, "/events?topic=t")
        await wait_for(lambda: hub.subscriber_count == 2)
        deadline = time.monotonic() + scaled(10)
        count = 0
        while hub.metrics.disconnects.get("slow_buffer", 0) == 0:
            assert time.monotonic() < deadline, "the stuck stream was never dropped"
            # Random text: it compresses little, so the stuck stream's buffer fills.
            hub.publish("t", base64.b64encode(os.urandom(30_000)).decode())
            count += 1
            await reader.wait_events(count, timeout=10)
        await wait_for(lambda: hub.subscriber_count == 1)
        sent = hub.publish("t", "after the drop")
        (*_, last) = await reader.wait_events(count + 1)
        assert (last.data, last.last_event_id) == ("after the drop", sent)
        for stream in (reader, stuck):
            await stream.close()
        await wait_for(lambda: hub.subscriber_count == 0)
