"""/metrics after a scripted scenario, parsed with prometheus_client's own parser and
checked against exact counts; /readyz; the metrics key."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from rawsse import __version__
from rawsse.backends.memory import MemoryBackend, Record
from rawsse.events import chunk, encode_event
from rawsse.hub.hub import Group, Hub
from rawsse.hub.metrics import TOPIC_LABEL_LIMIT
from tests.conftest import NO_CLIENT_LIMITS, make_config, running_server, scaled, wait_for
from tests.support.client import RawConnection, exchange, get, raw_stream
from tests.support.fakes import never_reading_stream

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def read_events(conn: RawConnection, count: int) -> None:
    data = b""
    while data.count(b"\n\n") < count:
        data += await conn.read_some()


def frame_bytes(records: list[Record], topics: set[str]) -> int:
    return sum(len(r.frame) for r in records if topics & set(r.topics))


async def test_metrics_after_a_scripted_scenario() -> None:
    config = make_config(max_buffer=128 * 1024, write_high_water=16 * 1024, history=1000)
    async with running_server(config) as server:
        hub = server.hub
        a = await RawConnection.open(server.port)
        await a.send(get("/events?topic=a", version="1.0"))
        b = await RawConnection.open(server.port)
        await b.send(get("/events?topic=a&topic=b", version="1.0"))
        await wait_for(lambda: hub.subscriber_count == 2)
        for i in range(5):
            hub.publish("a", f"a{i}")
        hub.publish("b", "b0")
        hub.publish("b", "b1")
        hub.publish(["a", "b"], "both")
        await read_events(a, 6)
        await read_events(b, 8)
        records = [hub.backend._history["a"][i] for i in range(6)] + list(
            hub.backend._history["b"]
        )[:2]
        bytes_phase_1 = frame_bytes(records, {"a"}) + frame_bytes(records, {"a", "b"})

        # A client that never reads is dropped for its buffer.
        slow = await never_reading_stream(server.port, "/events?topic=s")
        await wait_for(lambda: hub.subscriber_count == 3)
        (slow_sub,) = [s for s in hub.subscribers() if s.topics == ("s",)]
        published_to_s = 0
        while slow_sub.close_reason is None:
            hub.publish("s", "s" * 10000)
            published_to_s += 1
            await asyncio.sleep(0)
        await wait_for(lambda: hub.subscriber_count == 2)
        bytes_to_s = sum(len(r.frame) for r in hub.backend._history["s"])
        assert published_to_s <= 1000  # all still in the history, so bytes_to_s is exact

        # One client leaves; some ordinary requests, one refused stream.
        await a.close()
        await wait_for(lambda: hub.subscriber_count == 1)
        assert (await exchange(server.port, get("/healthz"))).status == 200
        assert (await exchange(server.port, get("/nope"))).status == 404
        assert (await exchange(server.port, get("/events?topic="))).status == 400
        answer = await exchange(server.port, get("/metrics"))
        live = parse(answer.body.decode())

        await server.shutdown(timeout=scaled(5))
        slow.close()
        await b.close()
        final = parse(hub.exposition(draining=True).decode())

    events = 8 + published_to_s
    assert value(live, "rawsse_connected_clients") == 1
    assert value(live, "rawsse_topic_clients", topic="a") == 1
    assert value(live, "rawsse_topic_clients", topic="b") == 1
    assert value(live, "rawsse_paused_clients") == 0
    assert value(live, "rawsse_write_buffer_bytes_count") == 1
    assert value(live, "rawsse_write_buffer_bytes_bucket", le="+Inf") == 1
    assert value(live, "rawsse_events_published_total") == events
    assert value(live, "rawsse_deliveries_total") == 6 + 8 + published_to_s
    assert value(live, "rawsse_bytes_sent_total") == bytes_phase_1 + bytes_to_s
    assert value(live, "rawsse_disconnects_total", reason="slow_buffer") == 1
    assert value(live, "rawsse_disconnects_total", reason="client_closed") == 1
    assert value(live, "rawsse_disconnects_total", reason="shutdown") == 0
    assert value(live, "rawsse_rejected_total", reason="bad_request") == 1
    assert value(live, "rawsse_requests_total", endpoint="/healthz", status="200") == 1
    assert value(live, "rawsse_requests_total", endpoint="other", status="404") == 1
    assert value(live, "rawsse_requests_total", endpoint="/events", status="400") == 1
    assert value(live, "rawsse_requests_total", endpoint="/events", status="200") == 3
    assert value(live, "rawsse_publish_latency_seconds_count") == events
    assert value(live, "rawsse_publish_latency_seconds_bucket", le="+Inf") == events
    assert value(live, "rawsse_history_events") == 6 + 3 + published_to_s
    assert value(live, "rawsse_backend_up") == 1
    assert value(live, "rawsse_draining") == 0
    info = {"version": __version__, "loop": value_loop(live), "pid": str(os.getpid())}
    assert value(live, "rawsse_info", **info) == 1
    assert abs(value(live, "process_start_time_seconds") - time.time()) < 3600
    assert value(live, "process_resident_memory_bytes") > 1024 * 1024

    assert value(final, "rawsse_connected_clients") == 0
    assert value(final, "rawsse_disconnects_total", reason="shutdown") == 1
    assert value(final, "rawsse_draining") == 1


def value_loop(samples: Samples) -> str:
    ((_, labels),) = [key for key in samples if key[0] == "rawsse_info"]
    loop = dict(labels)["loop"]
    assert loop in ("asyncio", "uvloop")
    return loop


async def test_topic_labels_are_capped() -> None:
    async with running_server(make_config(max_topics=64, **NO_CLIENT_LIMITS)) as server:
        conns = []
        for i in range(55):
            conn = await RawConnection.open(server.port)
            await conn.send(get(f"/events?topic=t{i:02d}" + ("&topic=big" if i < 3 else "")))
            conns.append(conn)
        await wait_for(lambda: server.hub.subscriber_count == 55)
        samples = parse(server.hub.exposition().decode())
        topics = {
            dict(k[1])["topic"]: v for k, v in samples.items() if k[0] == "rawsse_topic_clients"
        }
        # 56 topics: "big" (3 clients) and t00..t54 (1 each). The 50 largest are shown,
        # ties by name: big and t00..t48; t49..t54 (6 clients) are summed as _other.
        assert len(topics) == 51 and topics["big"] == 3 and "t48" in topics and "t49" not in topics
        assert topics["_other"] == 6
        assert sum(topics.values()) == 55 + 3
        for conn in conns:
            await conn.close()


async def test_subscriber_counts_follow_streams_and_cost_no_walk_over_groups(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Streams of 64 topics each come and go (some dropped during a flush): the counts
    per topic and in all stay exact, and admitting a stream asks for the count without
    visiting every group (it did, once per stream: 10 000 streams of distinct topics
    took 36 s of CPU to admit)."""
    config = make_config(max_topics=64, **NO_CLIENT_LIMITS)
    async with running_server(config) as server:
        hub = server.hub
        conns = []
        for i in range(40):
            query = "&".join(f"topic=s{i}-{t}" for t in range(63)) + f"&topic=shared{i % 2}"
            conn = await RawConnection.open(server.port)
            await conn.send(get(f"/events?{query}"))
            conns.append(conn)
        await wait_for(lambda: hub.subscriber_count == 40)
        visits = 0
        group_len = Group.__len__

        def counting_len(group: Group) -> int:
            nonlocal visits
            visits += 1
            return group_len(group)

        monkeypatch.setattr(Group, "__len__", counting_len)
        last, _ = await raw_stream(server.port, "/events?topic=last")
        await wait_for(lambda: hub.subscriber_count == 41)
        assert visits == 0
        monkeypatch.undo()
        samples = parse(hub.exposition().decode())
        assert value(samples, "rawsse_connected_clients") == 41
        assert value(samples, "rawsse_topic_clients", topic="shared0") == 20
        assert value(samples, "rawsse_topic_clients", topic="shared1") == 20
        # Shown: the two shared topics and, of the 2 521 read by one stream each, the
        # first by name; every other membership is summed under _other.
        shown = 20 + 20 + (TOPIC_LABEL_LIMIT - 2)
        assert value(samples, "rawsse_topic_clients", topic="_other") == 40 * 64 + 1 - shown
        assert value(samples, "rawsse_topic_clients", topic="last") == 1  # "l" < "s"
        for conn in conns[:30]:
            await conn.close()
        await last.close()
        await wait_for(lambda: hub.subscriber_count == 10)
        samples = parse(hub.exposition().decode())
        assert value(samples, "rawsse_topic_clients", topic="shared0") == 5
        for conn in conns[30:]:
            await conn.close()
        await wait_for(lambda: hub.subscriber_count == 0)
        assert hub.topic_count == 0


async def test_metrics_key_and_readiness() -> None:
    async with running_server(make_config(metrics_key="m-key")) as server:
        assert (await exchange(server.port, get("/metrics"))).status == 401
        answer = await exchange(server.port, get("/metrics", "Authorization: Bearer m-key"))
        assert answer.status == 200 and b"rawsse_connected_clients" in answer.body
        ready = await exchange(server.port, get("/readyz"))
        assert (ready.status, ready.body) == (200, b"ready\n")
        conn = await RawConnection.open(server.port)
        await conn.send(b"GET /readyz HTTP/1.1\r\nHost: t\r\n")
        await wait_for(lambda: server.connection_count == 1)
        shutdown = asyncio.create_task(server.shutdown(timeout=scaled(5)))
        await wait_for(lambda: server.draining)
        await conn.send(b"\r\n")
        answer = await conn.answer()
        assert (answer.status, answer.body) == (503, b"draining\n")
        await shutdown
        await conn.close()


async def test_metrics_on_a_listener_of_their_own() -> None:
    async with running_server(make_config(metrics_port=0)) as server:
        metrics_port = server.metrics_port
        assert metrics_port is not None and metrics_port != server.port
        assert (await exchange(server.port, get("/metrics"))).status == 404
        assert (await exchange(server.port, get("/healthz"))).status == 200
        answer = await exchange(metrics_port, get("/metrics"))
        assert answer.status == 200 and b"rawsse_connected_clients 0" in answer.body
        assert (await exchange(metrics_port, get("/readyz"))).status == 200
        assert (await exchange(metrics_port, get("/events?topic=a"))).status == 404
        assert (await exchange(metrics_port, get("/"))).status == 404
        assert server.hub.subscriber_count == 0
    assert server.metrics_port is None


class _UnreachableBackend(MemoryBackend):
    """A backend that reports itself down, as a remote one does while unreachable."""

    up = True

    @property
    def healthy(self) -> bool:
        return self.up


async def test_readiness_and_backend_up_follow_the_backend() -> None:
    config = make_config()
    backend = _UnreachableBackend(config.history)
    async with running_server(config, hub=Hub(config, backend=backend)) as server:
        for up, status, body in [(True, 200, b"ready\n"), (False, 503, b"backend unavailable\n")]:
            backend.up = up
            ready = await exchange(server.port, get("/readyz"))
            assert (ready.status, ready.body) == (status, body)
            metrics = parse((await exchange(server.port, get("/metrics"))).body.decode())
            assert value(metrics, "rawsse_backend_up") == int(up)
        assert (await exchange(server.port, get("/healthz"))).status == 200  # still alive


async def test_the_stream_close_log_line_has_duration_and_bytes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="rawsse.access")
    async with running_server() as server:
        conn, _ = await raw_stream(server.port, "/events?topic=t")
        await wait_for(lambda: server.hub.subscriber_count == 1)
        server.hub.publish("t", "x" * 100)
        await read_events(conn, 1)
        await conn.close()
        await wait_for(lambda: server.hub.subscriber_count == 0)
    (line,) = [r.getMessage() for r in caplog.records if "stream closed" in r.getMessage()]
    match = re.search(r"reason=client_closed duration=([0-9.]+)s bytes=([0-9]+)$", line)
    assert match is not None, line
    expected = len(chunk(encode_event("x" * 100, id=f"{server.hub.backend.epoch}-1")))
    assert float(match.group(1)) >= 0 and int(match.group(2)) == expected
