"""The memory backend's ids, bounded history and replay decisions, without I/O."""

from __future__ import annotations

import json

import pytest

from rawsse.backends.base import Record
from rawsse.backends.memory import LOST_EVENT, MemoryBackend
from rawsse.config import Config
from rawsse.errors import InvalidEvent, PayloadTooLarge
from rawsse.events import encode_parts
from rawsse.hub import Hub
from tests.fakes import NullHub
from tests.sse_parser import parse


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
