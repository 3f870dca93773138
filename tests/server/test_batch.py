"""Batch publish: newline-delimited JSON, published line by line as it arrives, answered
line by line, with every publish limit holding per line."""

from __future__ import annotations

import asyncio
import json
import os
import re
from typing import Any

import httpx
import pytest

from rawsse.policy.auth import mint_token
from rawsse.server.batch import MAX_REFUSED_LINES
from tests.conftest import ROOT, TEST_KEY, make_config, require_program, running_server, wait_for
from tests.support.client import RawConnection, exchange, raw_stream
from tests.support.sse_parser import dechunk, parse

AUTH = f"Authorization: Bearer {TEST_KEY}"
NDJSON = "Content-Type: application/x-ndjson"


def lines(*events: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(event).encode() + b"\n" for event in events)


def batch_head(*headers: str, length: int | None = None) -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    head = ["POST /publish HTTP/1.1", "Host: t", framing, *headers, "", ""]
    return "\r\n".join(head).encode()


def batch(body: bytes, *headers: str) -> bytes:
    return batch_head(AUTH, NDJSON, *headers, length=len(body)) + body


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def answers(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.splitlines()]


class Reader:
    """A stream's events as they arrive."""

    def __init__(self, conn: RawConnection, head: bytes) -> None:
        self.conn = conn
        self.raw = head.partition(b"\r\n\r\n")[2]

    def events(self) -> list[Any]:
        payload, _ = dechunk(self.raw)
        return [e for e in parse(payload.decode()).events if e.data]

    async def until(self, count: int) -> list[Any]:
        while len(self.events()) < count:
            self.raw += await self.conn.read_some()
        return self.events()


async def test_a_batch_publishes_every_line_in_order_and_answers_each() -> None:
    async with running_server() as server:
        conn, head = await raw_stream(server.port, "/events?topic=a&topic=b")
        reader = Reader(conn, head)
        body = lines(
            {"topic": "a", "data": "one"},
            {"topic": ["a", "b"], "data": "two", "event": "note"},
            {"topic": "b", "data": {"n": 3}, "id": 'order-"7"'},
            {"topic": "a", "data": "four\nlines", "retry": 1500},
        )
        answer = await exchange(server.port, batch(body + b"\n\r\n"), method=b"POST")
        assert answer.status == 200
        assert answer.headers["content-type"] == "application/x-ndjson"
        ids = [a["id"] for a in answers(answer.body)]  # blank lines get no answer
        assert len(ids) == 4 and ids[2] == 'order-"7"'
        events = await reader.until(4)
        assert [(e.last_event_id, e.type, e.data) for e in events] == [
            (ids[0], "message", "one"),
            (ids[1], "note", "two"),
            (ids[2], "message", '{"n":3}'),
            (ids[3], "message", "four\nlines"),
        ]
        assert server.hub.metrics.events_published == 4
        await conn.close()


async def test_refused_lines_do_not_discard_the_good_ones() -> None:
    async with running_server(make_config(max_event_size=200)) as server:
        conn, head = await raw_stream(server.port, "/events?topic=a")
        reader = Reader(conn, head)
        body = b"".join(
            [
                lines({"topic": "a", "data": "first"}),
                b"{not json\n",
                lines({"data": "no topic"}),
                lines({"topic": "a", "data": "x", "id": "0000beef-1"}),  # reserved shape
                lines({"topic": "a", "data": "x", "event": "rawsse-lost"}),
                lines({"topic": "a", "data": "x", "retry": -1}),
                lines({"topic": "a", "data": "y" * 300}),  # over max_event_size
                b"[1, 2]\n",
                lines({"topic": "a", "data": "last"}),
            ]
        )
        answer = await exchange(server.port, batch(body), method=b"POST")
        assert answer.status == 400  # the first line refused
        results = answers(answer.body)
        assert "id" in results[0] and "id" in results[-1]
        errors = results[1:-1]
        assert [e["status"] for e in errors] == [400, 400, 400, 400, 400, 413, 400]
        assert "invalid JSON" in errors[0]["error"] and "topic" in errors[1]["error"]
        assert "reserved" in errors[2]["error"] and "retry" in errors[4]["error"]
        assert [e.data for e in await reader.until(2)] == ["first", "last"]
        assert server.hub.metrics.events_published == 2
        await conn.close()


async def test_a_chunked_batch_is_published_as_its_lines_arrive() -> None:
    """One request kept open: each event reaches a subscriber before the next line is
    sent, and a line split across chunks is put together."""
    async with running_server() as server:
        sub, head = await raw_stream(server.port, "/events?topic=live")
        reader = Reader(sub, head)
        producer = await RawConnection.open(server.port)
        await producer.send(batch_head(AUTH, NDJSON))
        for i in range(5):
            line = lines({"topic": "live", "data": f"tick {i}"})
            await producer.send(chunk(line[:7]))
            await producer.send(chunk(line[7:]))
            assert (await reader.until(i + 1))[-1].data == f"tick {i}"
        await producer.send(b"0\r\n\r\n")
        answer = await producer.answer(head_only_for=b"POST")
        assert answer.status == 200 and len(answers(answer.body)) == 5
        # The connection is kept alive for the next request.
        await producer.send(batch(lines({"topic": "live", "data": "again"})))
        assert (await producer.answer(head_only_for=b"POST")).status == 200
        await producer.close()
        await sub.close()


async def test_a_line_over_the_limit_is_skipped_unread_across_chunks() -> None:
    async with running_server(make_config(max_event_size=100)) as server:
        producer = await RawConnection.open(server.port)
        await producer.send(batch_head(AUTH, NDJSON))
        await producer.send(chunk(b'{"topic":"a","data":"' + b"z" * 80))
        await producer.send(chunk(b"z" * 5000))  # the same line, far over 100 bytes
        await producer.send(chunk(b'"}\n{"topic":"a","data":"after"}\n'))
        await producer.send(b"0\r\n\r\n")
        answer = await producer.answer(head_only_for=b"POST")
        results = answers(answer.body)
        assert answer.status == 413
        assert results[0] == {"error": "line over the 100-byte limit", "status": 413}
        assert "id" in results[1] and len(results) == 2
        assert server.hub.metrics.events_published == 1
        await producer.close()


async def test_a_batch_over_max_batch_size_ends_with_what_was_published() -> None:
    async with running_server(make_config(max_batch_size=1000)) as server:
        # Declared too large: refused before any line is read.
        answer = await exchange(server.port, batch_head(AUTH, NDJSON, length=5000), method=b"POST")
        assert answer.status == 413 and server.hub.metrics.events_published == 0
        # Streamed past the limit: the lines before it published and answered, then 413.
        producer = await RawConnection.open(server.port)
        await producer.send(batch_head(AUTH, NDJSON))
        line = lines({"topic": "a", "data": "x" * 70})  # 100 bytes
        for _ in range(12):
            await producer.send(chunk(line))
        answer = await producer.answer(head_only_for=b"POST")
        assert answer.status == 413 and answer.headers["connection"] == "close"
        results = answers(answer.body)
        assert all("id" in r for r in results[:-1]) and results[-1]["status"] == 413
        assert server.hub.metrics.events_published == len(results) - 1 == 10
        await producer.close()


async def test_every_line_spends_a_publish_of_the_credential() -> None:
    async with running_server(make_config(publish_rate=1, publish_burst=3)) as server:
        body = lines(*({"topic": "a", "data": str(i)} for i in range(5)))
        answer = await exchange(server.port, batch(body), method=b"POST")
        assert answer.status == 429
        assert [r.get("status", 200) for r in answers(answer.body)] == [200, 200, 200, 429, 429]
        assert server.hub.metrics.events_published == 3


async def test_a_batch_without_rights_is_refused_before_its_body() -> None:
    secret = "s" * 32
    async with running_server(make_config(jwt_secret=secret)) as server:
        body = lines({"topic": "a", "data": "x"})
        no_key = await exchange(server.port, batch_head(NDJSON, length=len(body)), method=b"POST")
        assert no_key.status == 401
        wrong = batch_head("Authorization: Bearer nope", NDJSON, length=len(body)) + body
        assert (await exchange(server.port, wrong, method=b"POST")).status == 401
        # A token allowed one topic: lines to another are refused, each.
        token = mint_token(secret, publish=["orders.*"], ttl=60)
        body = lines({"topic": "orders.1", "data": "x"}, {"topic": "users.1", "data": "y"})
        answer = await exchange(
            server.port,
            batch_head(f"Authorization: Bearer {token}", NDJSON, length=len(body)) + body,
            method=b"POST",
        )
        assert answer.status == 403
        assert answers(answer.body)[1] == {
            "error": "this token may not publish to topic 'users.1'",
            "status": 403,
        }
        assert server.hub.metrics.events_published == 1
        # A token that may read but not publish: refused on its head, body unread.
        reader = mint_token(secret, subscribe=["*"], ttl=60)
        producer = await RawConnection.open(server.port)
        await producer.send(batch_head(f"Authorization: Bearer {reader}", NDJSON))
        answer = await producer.answer(head_only_for=b"POST")
        assert (answer.status, answer.body) == (403, b"this token may not publish\n")
        await producer.close()
        single = b"POST /publish?topic=a HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n"
        single += f"Authorization: Bearer {reader}\r\n\r\nx".encode()
        answer = await exchange(server.port, single, method=b"POST")
        assert (answer.status, answer.body) == (403, b"this token may not publish\n")
        assert server.hub.metrics.events_published == 1


async def test_a_batch_of_too_many_refused_lines_is_refused_whole() -> None:
    """A body of bad lines costs an answer line each: after ``MAX_REFUSED_LINES`` the
    batch ends (the first refusal's status, the answers so far, closed) and the rest is
    not read, good lines included."""
    async with running_server() as server:
        body = lines({"topic": "a", "data": "first"}) + b"1\n" * 5000
        body += lines(*({"topic": "a", "data": "late"} for _ in range(100)))
        producer = await RawConnection.open(server.port)
        await producer.send(batch_head(AUTH, NDJSON))
        await producer.send(chunk(body))
        answer = await producer.answer(head_only_for=b"POST")
        assert answer.status == 400 and answer.headers["connection"] == "close"
        results = answers(answer.body)
        assert "id" in results[0]
        assert len(results) == 1 + MAX_REFUSED_LINES + 1
        assert all(r["status"] == 400 for r in results[1:])
        assert results[-1]["error"] == f"more than {MAX_REFUSED_LINES} lines refused"
        assert server.hub.metrics.events_published == 1
        await producer.close()


@pytest.mark.parametrize(
    ("path", "status", "reason"),
    [("/publish?topic=a", 400, b"from its lines"), ("/publish?x=%ff", 400, b"UTF-8")],
)
async def test_a_batch_with_a_bad_query_is_refused(path: str, status: int, reason: bytes) -> None:
    async with running_server() as server:
        body = lines({"topic": "a", "data": "x"})
        raw = batch(body).replace(b"POST /publish ", f"POST {path} ".encode(), 1)
        answer = await exchange(server.port, raw, method=b"POST")
        assert answer.status == status and reason in answer.body
        assert server.hub.metrics.events_published == 0


async def test_a_batch_that_goes_silent_times_out_with_its_answers() -> None:
    async with running_server(make_config(request_timeout=0.3)) as server:
        producer = await RawConnection.open(server.port)
        await producer.send(batch_head(AUTH, NDJSON))
        await producer.send(chunk(lines({"topic": "a", "data": "x"})))
        answer = await producer.answer(head_only_for=b"POST")
        assert answer.status == 408
        results = answers(answer.body)
        assert "id" in results[0] and results[1] == {"error": "request timeout", "status": 408}
        await producer.close()


async def test_httpx_streams_a_batch_from_a_generator() -> None:
    """What a producer would write: a generator of lines as the request's content."""
    async with running_server() as server:

        async def produce() -> Any:
            for i in range(100):
                yield lines({"topic": "gen", "data": str(i)})

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            response = await client.post(
                "/publish",
                content=produce(),
                headers={
                    "Authorization": f"Bearer {TEST_KEY}",
                    "Content-Type": "application/x-ndjson",
                },
            )
        assert response.status_code == 200
        assert len([json.loads(line)["id"] for line in response.text.splitlines()]) == 100
        await wait_for(lambda: server.hub.metrics.events_published == 100)


async def test_the_readme_batch_example_runs_as_written() -> None:
    """README's shell example (printf piped to curl), run by bash against a server, its
    address swapped in: every line published, answered in order."""
    require_program("curl")
    readme = (ROOT / "README.md").read_text()
    (example,) = [
        block
        for block in re.findall(r"```sh\n(.*?)```", readme, re.S)
        if "application/x-ndjson" in block
    ]
    async with running_server() as server:
        script = example.replace("http://127.0.0.1:8000", server.url)
        process = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            script,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "KEY": TEST_KEY},
        )
        out, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, err
        results = answers(out)
        assert len(results) == 2 and all("id" in r for r in results), out
        assert server.hub.metrics.events_published == 2


async def test_a_duplicate_id_in_a_batch_is_answered_409_and_published_once() -> None:
    async with running_server() as server:
        body = lines(
            {"topic": "a", "data": "one", "id": "order-1"},
            {"topic": "a", "data": "again", "id": "order-1"},
            {"topic": "a", "data": "two"},
        )
        answer = await exchange(server.port, batch(body), method=b"POST")
        assert answer.status == 409  # the first line refused
        first, duplicate, last = answers(answer.body)
        assert first == {"id": "order-1"} and "id" in last
        assert duplicate["status"] == 409 and "already" in duplicate["error"]
        assert server.hub.metrics.events_published == 2


async def test_single_publishes_count_as_awaited_for_the_flush_pacing_and_lines_do_not() -> None:
    """A request an event is answered before its publisher sends the next: the adaptive
    flush delay must not read its full flushes as amortized (hub/pacing.py). A batch's
    lines stream on without waiting. No one subscribes, so no flush resets the count."""
    async with running_server() as server:
        pacing = server.hub.pacing
        single = "\r\n".join(["POST /publish?topic=a HTTP/1.1", "Host: t", AUTH,
                              "Content-Length: 1", "", "x"]).encode()  # fmt: skip
        for _ in range(3):
            assert (await exchange(server.port, single, method=b"POST")).status == 200
        assert pacing.awaited == 3
        body = lines(*({"topic": "a", "data": n} for n in range(5)))
        answer = await exchange(server.port, batch(body), method=b"POST")
        assert answer.status == 200 and len(answers(answer.body)) == 5
        assert pacing.awaited == 3 and server.hub.metrics.events_published == 8
        refused = single.replace(AUTH.encode(), b"Authorization: Bearer wrong")
        assert (await exchange(server.port, refused, method=b"POST")).status == 401
        assert pacing.awaited == 3  # nothing published, nothing counted
