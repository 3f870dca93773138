"""The memory backend's ids, bounded history and replay decisions, without I/O."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from rawsse.backends.base import Record
from rawsse.backends.memory import LOST_EVENT, MemoryBackend
from rawsse.config import Config
from rawsse.errors import InvalidEvent, PayloadTooLarge
from rawsse.events import encode_parts
from rawsse.hub.hub import Hub
from tests.support.fakes import NullHub
from tests.support.sse_parser import parse


def append(
    backend: MemoryBackend, topics: tuple[str, ...], data: str, *, id: str | None = None
) -> Record:
    """Publish straight to the backend, as the hub does (delivering nowhere)."""
    backend.attach(NullHub())
    return backend.publish(topics, encode_parts(data), id=id)


def lost_of(frame: bytes | None) -> dict[str, str]:
    assert frame is not None
    (event,) = parse(frame.decode()).events
    assert event.type == LOST_EVENT
    payload: dict[str, str] = json.loads(event.data)
    assert event.last_event_id == payload["resume_id"]
    return payload


def test_ids_carry_the_epoch_and_increase() -> None:
    backend = MemoryBackend(10, epoch="0123abcd")
    ids = [append(backend, ("a",), str(i)).id for i in range(3)]
    assert ids == ["0123abcd-1", "0123abcd-2", "0123abcd-3"]
    assert len(MemoryBackend(1).epoch) == 8
    with pytest.raises(ValueError, match="epoch"):
        MemoryBackend(1, epoch="XYZ")


def test_replay_after_a_known_id_sends_the_rest_in_order() -> None:
    backend = MemoryBackend(10, epoch="0000000a")
    for i in range(5):
        append(backend, ("a",) if i % 2 == 0 else ("b",), f"e{i}")
    replay = backend.replay(("a", "b"), "0000000a-2")
    assert replay.lost is None
    assert [r.seq for r in replay.records] == [3, 4, 5]
    assert next(backend.replay(("a",), "0000000a-2").records).seq == 3
    assert list(backend.replay(("a", "b"), "0000000a-5").records) == []
    assert list(backend.replay(("a",), None).records) == []


def test_an_event_on_two_topics_is_replayed_once() -> None:
    backend = MemoryBackend(10, epoch="0000000a")
    append(backend, ("a", "b"), "both")
    append(backend, ("b",), "b only")
    records = backend.replay(("a", "b"), "0000000a-0").records
    assert [r.seq for r in records] == [1, 2]


def test_an_id_older_than_the_history_gets_a_lost_notice_then_what_is_kept() -> None:
    backend = MemoryBackend(2, epoch="0000000a")
    for i in range(5):
        append(backend, ("a",), f"e{i}")
    replay = backend.replay(("a",), "0000000a-1")
    assert lost_of(replay.lost) == {
        "reason": "expired",
        "last_event_id": "0000000a-1",
        "resume_id": "0000000a-3",
    }
    assert [r.seq for r in replay.records] == [4, 5]
    # Evictions on another topic do not concern a subscriber of "b".
    append(backend, ("b",), "b")
    assert backend.replay(("b",), "0000000a-1").lost is None


def test_another_epoch_gets_a_lost_notice_then_everything_kept() -> None:
    backend = MemoryBackend(10, epoch="0000000a")
    append(backend, ("a",), "x")
    replay = backend.replay(("a",), "ffffffff-99")
    assert lost_of(replay.lost)["reason"] == "epoch"
    assert [r.seq for r in replay.records] == [1]


@pytest.mark.parametrize("bad", ["garbage", "0000000a-999", "", "x\ny"])
def test_an_id_we_cannot_place_gets_a_lost_notice_and_no_replay(bad: str) -> None:
    backend = MemoryBackend(10, epoch="0000000a")
    append(backend, ("a",), "x")
    replay = backend.replay(("a",), bad)
    lost = lost_of(replay.lost)
    assert lost["reason"] == "unknown" and lost["last_event_id"] == bad
    assert lost["resume_id"] == "0000000a-1"
    assert list(replay.records) == []


def test_publisher_ids_resolve_while_kept_and_must_be_unique() -> None:
    backend = MemoryBackend(2, epoch="0000000a")
    append(backend, ("a",), "x", id="order-1")
    append(backend, ("a",), "y")
    assert [r.id for r in backend.replay(("a",), "order-1").records] == ["0000000a-2"]
    with pytest.raises(InvalidEvent, match="already"):
        append(backend, ("a",), "z", id="order-1")
    with pytest.raises(InvalidEvent, match="reserved"):
        append(backend, ("a",), "z", id="0000beef-3")
    append(backend, ("a",), "z")
    append(backend, ("a",), "w")
    assert lost_of(backend.replay(("a",), "order-1").lost)["reason"] == "unknown"
    append(backend, ("a",), "again", id="order-1")  # evicted, so free again


def test_too_large_events_are_not_stored() -> None:
    backend = MemoryBackend(10, epoch="0000000a")
    hub = Hub(Config(max_event_size=50), backend=backend)
    with pytest.raises(PayloadTooLarge):
        hub.publish("a", "x" * 100)
    assert backend.last_seq == 0
    assert list(backend.replay(("a",), "0000000a-0").records) == []


def test_history_zero_keeps_nothing_but_knows_what_was_lost() -> None:
    backend = MemoryBackend(0, epoch="0000000a")
    append(backend, ("a",), "x")
    replay = backend.replay(("a",), "0000000a-0")
    assert lost_of(replay.lost)["reason"] == "expired" and list(replay.records) == []


def bounded(max_bytes: int = 0, ttl: float = 0.0, history: int = 10) -> MemoryBackend:
    backend = MemoryBackend(history, max_bytes=max_bytes, ttl=ttl)
    backend.attach(NullHub())
    return backend


def test_the_history_in_all_stays_within_its_bytes_and_forgotten_topics_are_told() -> None:
    backend = bounded(max_bytes=20_000)
    parts = encode_parts("x" * 100)
    kept_from_start = backend.publish(("old",), parts, id=None)
    for i in range(1000):  # per-user topics, one event each
        backend.publish((f"user-{i}",), parts, id=None)
        assert backend.bytes <= 20_000
    assert len(backend._history) < 20
    assert "old" not in backend._history and "user-999" in backend._history
    # A client of a forgotten topic is told; so is one of a topic made again since.
    replay = backend.replay(["old"], kept_from_start.id)
    assert lost_of(replay.lost)["reason"] == "expired" and list(replay.records) == []
    again = backend.publish(("user-0",), parts, id=None)
    replay = backend.replay(["user-0"], kept_from_start.id)
    assert lost_of(replay.lost)["reason"] == "expired"
    assert [r.id for r in replay.records] == [again.id]


def test_a_topic_never_forgotten_gets_no_false_notice() -> None:
    backend = bounded(max_bytes=20_000)
    parts = encode_parts("x" * 100)
    first = backend.publish(("steady",), parts, id=None)
    for i in range(100):
        backend.publish((f"user-{i}",), parts, id=None)
        backend.publish(("steady",), parts, id=None)
    # "steady" lost events to the bound (expired), but what it keeps replays in order,
    # and a client positioned after its oldest kept event is told nothing.
    replay = backend.replay(["steady"], first.id)
    assert lost_of(replay.lost)["reason"] == "expired"
    kept = list(backend._history["steady"])
    replay = backend.replay(["steady"], kept[0].id)
    assert replay.lost is None and [r.id for r in replay.records] == [r.id for r in kept[1:]]


def test_events_older_than_the_ttl_are_forgotten() -> None:
    backend = bounded(ttl=60)
    first = backend.publish(("t",), encode_parts("a"), id="mine")
    second = backend.publish(("t", "u"), encode_parts("b"), id=None)
    backend.expire(time.monotonic() + 30)
    assert backend.history_size() == 3
    backend.expire(time.monotonic() + 61)
    assert backend.history_size() == 0 and backend._history == {} and backend.bytes == 0
    replay = backend.replay(["t"], first.id)
    assert lost_of(replay.lost) == {
        "reason": "unknown",  # the publisher's id is forgotten with its event
        "last_event_id": "mine",
        "resume_id": backend.make_id(second.seq),
    }
    replay = backend.replay(["u"], backend.make_id(first.seq))
    assert lost_of(replay.lost)["reason"] == "expired"


def test_no_history_keeps_no_topic() -> None:
    none_kept = bounded(max_bytes=1 << 20, history=0)
    for i in range(1000):
        none_kept.publish((f"t{i}",), encode_parts("x"), id=None)
    assert none_kept._history == {} and none_kept._evicted == {}
    unbounded = MemoryBackend(5)
    unbounded.attach(NullHub())
    for _ in range(1000):
        unbounded.publish(("t",), encode_parts("x"), id=None)
    assert unbounded.history_size() == 5 and len(unbounded._history) == 1


def test_per_user_topics_stay_within_the_documented_memory() -> None:
    """One event to each of 200 000 distinct topics (unbounded, about 280 MiB), with
    the default bounds: the process grows by at most 1.5 x ``history_bytes``
    (docs/configuration.md). The full million: ``perf/README.md``."""
    script = """
import sys
from rawsse.config import Config
from rawsse.backends.memory import MemoryBackend
from rawsse.events import encode_parts
from tests.support.fakes import NullHub
def rss(): return int(open("/proc/self/statm").read().split()[1]) * 4096
config = Config()
backend = MemoryBackend(config.history, max_bytes=config.history_bytes, ttl=config.history_ttl)
backend.attach(NullHub())
parts = encode_parts('{"user": 12345, "message": "you have mail"}')
base = rss()
for i in range(200_000):
    backend.publish((f"user-{i}",), parts, id=None)
print(rss() - base, config.history_bytes, backend.bytes)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    grown, bound, accounted = map(int, result.stdout.split())
    assert accounted <= bound
    assert grown < 1.5 * bound, (grown, bound)
