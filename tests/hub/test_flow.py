"""Batching and backpressure: one write per subscriber per loop iteration; slow readers
are dropped within their limits while fast ones keep receiving everything."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from rawsse.config import MAX_ADAPTIVE_FLUSH_DELAY, Config
from rawsse.hub.hub import Hub
from rawsse.server.connection import HttpConnection, ServerState
from tests.conftest import NO_CLIENT_LIMITS, make_config, running_server, scaled, wait_for
from tests.support.client import RawConnection, get
from tests.support.fakes import RecordingTransport, never_reading_stream
from tests.support.sse_parser import dechunk, parse


def open_stream(state: ServerState, path: str) -> tuple[HttpConnection, RecordingTransport]:
    connection = HttpConnection(state)
    transport = RecordingTransport()
    connection.connection_made(transport)
    connection.data_received(get(path))
    assert transport.writes and transport.writes[0].startswith(b"HTTP/1.1 200 OK")
    transport.writes.clear()
    return connection, transport


async def test_events_of_one_iteration_reach_a_subscriber_in_one_write() -> None:
    config = Config(publish_key="k")
    hub = Hub(config)
    state = ServerState(config, hub, None)
    _, one = open_stream(state, "/events?topic=a")
    _, other = open_stream(state, "/events?topic=a")
    _, both = open_stream(state, "/events?topic=a&topic=b")
    for i in range(3):
        hub.publish("a", f"a{i}")
    hub.publish(["a", "b"], "ab")
    hub.publish("b", "b")
    assert one.writes == [] and both.writes == []  # nothing until the loop runs
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert len(one.writes) == len(other.writes) == len(both.writes) == 1
    assert one.writes[0] is other.writes[0]  # the very same bytes object, shared
    payload, _ = dechunk(one.writes[0] + b"0\r\n\r\n")
    assert [e.data for e in parse(payload.decode()).events] == ["a0", "a1", "a2", "ab"]
    payload, _ = dechunk(both.writes[0] + b"0\r\n\r\n")
    assert [e.data for e in parse(payload.decode()).events] == ["a0", "a1", "a2", "ab", "b"]


async def test_flush_delay_batches_only_under_load() -> None:
    """With ``flush_delay``, an event after a quiet spell goes out at once; events that
    follow a flush closely wait for the rest of the delay and go out in one write."""
    config = Config(publish_key="k", flush_delay=0.2)
    hub = Hub(config)
    state = ServerState(config, hub, None)
    _, transport = open_stream(state, "/events?topic=a")
    hub.publish("a", "first")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert len(transport.writes) == 1  # no delay when idle
    flushed_at = time.monotonic()
    hub.publish("a", "second")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    hub.publish("a", "third")
    assert len(transport.writes) == 1  # held: within the delay of the last flush
    await wait_for(lambda: len(transport.writes) == 2)
    assert time.monotonic() - flushed_at >= 0.2 - 0.01
    payload, _ = dechunk(transport.writes[1] + b"0\r\n\r\n")
    assert [e.data for e in parse(payload.decode()).events] == ["second", "third"]


class CostlyTransport(RecordingTransport):
    """A transport whose every write takes ``cost`` seconds of CPU, as a fan-out to
    many subscribers does. It notes when each write ended."""

    def __init__(self, cost: float) -> None:
        super().__init__()
        self.cost = cost
        self.written_at: list[float] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        end = time.thread_time() + self.cost
        while time.thread_time() < end:  # busy, as a write is: not a wait
            pass
        super().write(data)
        self.written_at.append(time.monotonic())


def costly_stream(state: ServerState) -> CostlyTransport:
    """A stream on topic ``a`` whose writes cost what the test sets."""
    connection = HttpConnection(state)
    transport = CostlyTransport(0.0)
    connection.connection_made(transport)
    connection.data_received(get("/events?topic=a"))
    transport.writes.clear()
    transport.written_at.clear()
    return transport


def events_of(write: bytes) -> list[str]:
    payload, _ = dechunk(write + b"0\r\n\r\n")
    return [e.data for e in parse(payload.decode()).events]


async def test_the_default_flush_adds_no_wait_when_fan_out_is_quick() -> None:
    config = Config(publish_key="k")
    assert config.flush_delay is None  # adaptive
    hub = Hub(config)
    state = ServerState(config, hub, None)
    _, transport = open_stream(state, "/events?topic=a")
    for i in range(5):
        hub.publish("a", f"e{i}")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        # Each event in its own write, flushed in the iteration it was published in.
        assert len(transport.writes) == i + 1
    assert [events_of(w) for w in transport.writes] == [[f"e{i}"] for i in range(5)]


async def test_a_busy_loop_batches_its_flushes_and_a_quiet_one_stops() -> None:
    """The default delay: while fan-out keeps the loop busy, each flush waits a growing
    share of the last one's duration (at most 50 ms), gathering what arrives meanwhile
    into one write; once the loop has time to spare again, events go out at once. The
    events are published as requests that wait for their answers are (one an iteration,
    ``publish_awaited``): however many a flush gathers, they do not make it amortized."""
    config = Config(publish_key="k")
    hub = Hub(config)
    state = ServerState(config, hub, None)
    transport = costly_stream(state)
    published = 0

    async def publish_each_iteration(until: Callable[[], bool]) -> None:
        nonlocal published
        deadline = time.monotonic() + scaled(10)
        while not until():
            assert time.monotonic() < deadline, "timed out"
            hub.publish("a", f"e{published}")
            hub.publish_awaited()
            published += 1
            await asyncio.sleep(0)

    # Writes of 10 ms each, an event every iteration: the loop is never idle.
    transport.cost = 0.01
    await publish_each_iteration(
        lambda: bool(transport.writes) and len(events_of(transport.writes[-1])) > 1
    )
    batched_from = len(transport.writes)
    assert batched_from > 3  # not at once: only once busy over several flushes
    assert all(len(events_of(w)) == 1 for w in transport.writes[: batched_from - 1])
    # Flushes of 100 ms, the loop never idle: the gain rises until the wait reaches
    # its cap, MAX_ADAPTIVE_FLUSH_DELAY (50 ms), not twice the flush (the pacing's own
    # numbers: tests/hub/test_pacing.py).
    transport.cost = 0.1
    await publish_each_iteration(lambda: hub.pacing.delay == MAX_ADAPTIVE_FLUSH_DELAY)
    mark = len(transport.writes)
    await publish_each_iteration(lambda: len(transport.writes) >= mark + 2)
    assert hub.pacing.batching and hub.pacing.delay == MAX_ADAPTIVE_FLUSH_DELAY
    # 100 ms of writing and a wait of 50 ms: a timer never fires early, so the gap
    # between writes is at least 150 ms.
    gap = transport.written_at[-1] - transport.written_at[-2]
    assert gap >= 0.1 + MAX_ADAPTIVE_FLUSH_DELAY - 0.005, gap
    # Quiet spells between events: after a few, an event goes out in its iteration.
    transport.cost = 0.0
    await wait_for(lambda: sum(len(events_of(w)) for w in transport.writes) == published)
    for _ in range(5):
        await asyncio.sleep(0.05)  # the scenario's quiet spell, not a wait for a condition
        before = len(transport.writes)
        hub.publish("a", f"e{published}")
        published += 1
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        if len(transport.writes) == before + 1:
            break
        await wait_for(lambda n=before + 1: len(transport.writes) == n)
    else:
        raise AssertionError("still batching after five quiet spells")
    assert [e for w in transport.writes for e in events_of(w)] == [
        f"e{i}" for i in range(published)
    ]


async def test_a_paused_subscriber_over_max_buffer_is_aborted() -> None:
    config = Config(publish_key="k", max_buffer=100_000, write_high_water=10_000)
    hub = Hub(config)
    state = ServerState(config, hub, None)
    connection, transport = open_stream(state, "/events?topic=a")
    assert transport.limits == (10_000, 2_500)
    transport.buffered = 150_000  # over max_buffer, but not paused: the transport decides
    hub.publish("a", "x")
    await asyncio.sleep(0)
    assert not transport.aborted
    connection.pause_writing()
    assert hub.paused
    hub.publish("a", "y")
    await asyncio.sleep(0)
    assert transport.aborted
    assert connection.stream is not None and connection.stream.close_reason == "slow_buffer"
    hub.publish("a", "z")  # written to nothing until connection_lost removes it
    await asyncio.sleep(0)
    assert len(transport.writes) == 2
    connection.connection_lost(None)
    assert hub.subscriber_count == 0 and not hub.paused
    assert hub.metrics.disconnects["slow_buffer"] == 1


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


async def test_a_client_that_never_reads_is_dropped_and_the_others_get_everything() -> None:
    max_buffer, batch = 256 * 1024, 8 * 1024
    config = make_config(
        max_buffer=max_buffer, write_high_water=16 * 1024, slow_timeout=60, history=10
    )
    async with running_server(config) as server:
        hub = server.hub
        slow = await never_reading_stream(server.port, "/events?topic=t")
        fast = await RawConnection.open(server.port)
        await fast.send(get("/events?topic=t", version="1.0"))
        await wait_for(lambda: hub.subscriber_count == 2)
        (slow_sub,) = [s for s in hub.subscribers() if s.chunked]
        head = await fast.read_some()
        received = head.count(b"\n\n")  # events end with a blank line; the data has none
        last = head[-1:]
        most_buffered = 0
        payload = "x" * 1000
        sent = 0
        rss_before = 0
        # 8 events of ~1 KB per iteration, 8 MB in all: far more than the slow one's limit.
        for round in range(1000):
            if round == 100:
                rss_before = rss_bytes()  # after warming up allocator and history
            for _ in range(batch // 1024):
                hub.publish("t", payload)
                sent += 1
            await asyncio.sleep(0)
            if slow_sub.close_reason is None:
                most_buffered = max(most_buffered, slow_sub.transport.get_write_buffer_size())
            while received < sent:  # the fast client keeps up with every batch
                data = last + await fast.read_some()
                received += data.count(b"\n\n")
                last = data[-1:]
        assert received == sent
        assert slow_sub.close_reason == "slow_buffer"
        assert most_buffered <= max_buffer + batch + 1024
        await wait_for(lambda: hub.subscriber_count == 1)
        assert hub.metrics.disconnects["slow_buffer"] == 1
        # 8 MB went out; memory did not follow it (a queue per client would hold it).
        assert rss_bytes() - rss_before < 4 * 1024 * 1024
        slow.close()
        await fast.close()


async def test_a_client_paused_too_long_is_dropped_after_slow_timeout() -> None:
    config = make_config(max_buffer=64 * 1024 * 1024, write_high_water=16 * 1024, slow_timeout=0.4)
    async with running_server(config) as server:
        hub = server.hub
        slow = await never_reading_stream(server.port, "/events?topic=t")
        await wait_for(lambda: hub.subscriber_count == 1)
        (subscriber,) = hub.subscribers()
        loop = asyncio.get_running_loop()
        while subscriber.paused_since is None:
            hub.publish("t", "y" * 4000)
            await asyncio.sleep(0)
        paused_at = subscriber.paused_since
        await wait_for(lambda: hub.subscriber_count == 0, timeout=5)
        assert subscriber.close_reason == "slow_timeout"
        assert loop.time() - paused_at >= 0.4
        assert hub.metrics.disconnects["slow_timeout"] == 1
        slow.close()


async def test_streams_cost_no_task_and_drop_h11() -> None:
    """No task, coroutine or queue per subscriber: 200 streams add no task at all, and
    each stream's connection has let its h11 state machine go."""
    async with running_server(make_config(**NO_CLIENT_LIMITS)) as server:
        tasks_before = len(asyncio.all_tasks())
        conns = []
        for i in range(200):
            conn = await RawConnection.open(server.port)
            await conn.send(get(f"/events?topic=t{i % 5}"))
            conns.append(conn)
        await wait_for(lambda: server.hub.subscriber_count == 200)
        assert len(asyncio.all_tasks()) == tasks_before
        streaming = [c for c in server._state.connections if c.stream is not None]
        assert len(streaming) == 200
        assert all(c.cycle is None for c in streaming)
        assert server.hub.group_count == 5
        for conn in conns:
            await conn.close()


def test_publish_refuses_bad_topics_and_data() -> None:
    from rawsse.errors import InvalidEvent, PayloadTooLarge

    hub = Hub(Config(max_topics=2, max_event_size=100))
    for topics, reason in [("", "1 to 256"), (["a", "b", "c"], "at most 2"), ("a\nb", "control")]:
        try:
            hub.publish(topics, "x")
        except InvalidEvent as exc:
            assert reason in str(exc)
        else:
            raise AssertionError(f"{topics!r} was accepted")
    try:
        hub.publish("a", "\n" * 60)  # small data, over the limit once encoded
    except PayloadTooLarge:
        pass
    else:
        raise AssertionError("an event over max_event_size was accepted")
    assert hub.metrics.events_published == 0 and hub.backend.last_seq == 0
