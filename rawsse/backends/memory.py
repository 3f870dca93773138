"""The in-memory backend: one process, a bounded history per topic.

Ids are ``EPOCH-SEQ``: ``EPOCH`` is eight random hex digits drawn when the backend is
made, ``SEQ`` a counter shared by all topics, so ids are unique and ordered within the
process and a client that reconnects after a restart is recognised as coming from
another epoch rather than being replayed the wrong events.
"""

from __future__ import annotations

import heapq
import json
import re
import secrets
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter

from rawsse.errors import InvalidEvent, PayloadTooLarge
from rawsse.events import RESERVED_EVENT_PREFIX, encode_event

__all__ = ["LOST_EVENT", "MemoryBackend", "Record", "Replay"]

#: Name of the event that tells a client its reconnection skipped events we no longer
#: have (or cannot place). Its data is a JSON object: ``reason`` (``expired``: older than
#: the history; ``epoch``: the id is from before a restart; ``unknown``: not an id we
#: know), ``last_event_id`` (what the client sent) and ``resume_id`` (the id the client
#: is positioned at from now on, also the event's own ``id`` field).
LOST_EVENT = RESERVED_EVENT_PREFIX + "lost"

_OWN_ID = re.compile(r"([0-9a-f]{8})-([0-9]{1,19})")


class Record:
    """One published event: its order, wire id, topics and its encoded bytes."""

    __slots__ = ("seq", "id", "topics", "frame")

    def __init__(self, seq: int, id: str, topics: tuple[str, ...], frame: bytes) -> None:
        self.seq = seq
        self.id = id
        self.topics = topics
        self.frame = frame


@dataclass(frozen=True, slots=True)
class Replay:
    """What a reconnecting client is sent before the live stream: a lost notice (or
    ``None``) then ``records`` in publish order.

    ``records`` is an iterator, read as the client drains what it is sent: merging a
    long history of many topics costs tens of milliseconds, which are spread over the
    replay's pages instead of being spent at once.
    """

    lost: bytes | None
    records: Iterator[Record]


class MemoryBackend:
    """Assigns ids and keeps the last ``history`` events of each topic.

    Args:
        history: events kept per topic for replay; 0 keeps none.
        epoch: eight lower-case hex digits; random by default.
    """

    def __init__(self, history: int, *, epoch: str | None = None) -> None:
        if epoch is None:
            epoch = secrets.token_hex(4)
        if not re.fullmatch(r"[0-9a-f]{8}", epoch):
            raise ValueError(f"epoch must be 8 lower-case hex digits, got {epoch!r}")
        self.epoch = epoch
        self.history = history
        self.last_seq = 0
        self._history: dict[str, deque[Record]] = {}
        # Per topic, the highest sequence number dropped from its history: a client
        # positioned before it has missed events we can no longer send.
        self._evicted: dict[str, int] = {}
        # Publisher-chosen ids resolve to their records while those are in the history.
        self._by_user_id: dict[str, Record] = {}

    @property
    def healthy(self) -> bool:
        """Whether events can be published and delivered: always, in memory. (``/readyz``
        and ``rawsse_backend_up`` read it; a remote backend is down while unreachable.)"""
        return True

    def make_id(self, seq: int) -> str:
        """The wire id of sequence number ``seq`` in this epoch."""
        return f"{self.epoch}-{seq}"

    def append(
        self,
        topics: tuple[str, ...],
        data: str,
        *,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
        max_size: int | None = None,
    ) -> Record:
        """Encode and store one event; return its record.

        Raises:
            PayloadTooLarge: the encoded event is over ``max_size`` (nothing is stored).
            InvalidEvent: a field cannot be encoded, or ``id`` is already in the history
                or has the reserved ``EPOCH-SEQ`` shape.
        """
        seq = self.last_seq + 1
        if id is not None:
            if _OWN_ID.fullmatch(id):
                raise InvalidEvent(f"ids shaped like {self.make_id(1)!r} are reserved for the hub")
            if id in self._by_user_id:
                raise InvalidEvent(f"id {id!r} is already in the history")
        wire_id = self.make_id(seq) if id is None else id
        frame = encode_event(data, event=event, id=wire_id, retry=retry)
        if max_size is not None and len(frame) > max_size:
            raise PayloadTooLarge(f"event over the {max_size}-byte limit")
        self.last_seq = seq
        record = Record(seq, wire_id, topics, frame)
        if id is not None:
            self._by_user_id[id] = record
        for topic in topics:
            kept = self._history.get(topic)
            if kept is None:
                kept = self._history[topic] = deque()
            kept.append(record)
            if len(kept) > self.history:
                self._forget(topic, kept.popleft())
        return record

    def _forget(self, topic: str, record: Record) -> None:
        self._evicted[topic] = record.seq
        if record.id in self._by_user_id and all(
            self._evicted.get(t, 0) >= record.seq for t in record.topics
        ):
            del self._by_user_id[record.id]

    def history_size(self) -> int:
        """Events kept, counted once per topic that keeps them."""
        return sum(len(kept) for kept in self._history.values())

    def replay(self, topics: Sequence[str], last_event_id: str | None) -> Replay:
        """What a client that last saw ``last_event_id`` missed on ``topics``.

        No id: nothing. A known id: every kept event after it, in order, each once even
        when it was published to several of the topics; preceded by a lost notice when
        the history no longer reaches back to it. An id from another epoch: a lost
        notice, then all kept events. An id we cannot place: a lost notice only.
        """
        if last_event_id is None:
            return Replay(None, iter(()))
        after, reason = self._position(last_event_id)
        evicted = max((self._evicted.get(t, 0) for t in topics), default=0)
        if reason is None and evicted > after:
            reason = "expired"
        if reason == "unknown":
            return Replay(self._lost(reason, last_event_id, self.last_seq), iter(()))
        records = self._records_after(topics, after)
        if reason is None:
            return Replay(None, records)
        return Replay(self._lost(reason, last_event_id, max(after, evicted)), records)

    def _position(self, last_event_id: str) -> tuple[int, str | None]:
        record = self._by_user_id.get(last_event_id)
        if record is not None:
            return record.seq, None
        own = _OWN_ID.fullmatch(last_event_id)
        if own is None:
            return self.last_seq, "unknown"
        if own.group(1) != self.epoch:
            return 0, "epoch"
        seq = int(own.group(2))
        if seq > self.last_seq:
            return self.last_seq, "unknown"
        return seq, None

    def _records_after(self, topics: Sequence[str], after: int) -> Iterator[Record]:
        # A copy of each topic's kept events (references only: C-speed), since the
        # history moves on while a long replay is being written; then a lazy merge.
        kept: list[list[Record]] = []
        for topic in topics:
            history = self._history.get(topic)
            if history and history[-1].seq > after:
                records = list(history)
                kept.append(records[bisect_right(records, after, key=_SEQ) :])
        if not kept:
            return iter(())
        if len(kept) == 1:
            return iter(kept[0])
        return _once_each(heapq.merge(*kept, key=_SEQ))

    def _lost(self, reason: str, last_event_id: str, resume_seq: int) -> bytes:
        resume_id = self.make_id(resume_seq)
        payload = json.dumps(
            {"reason": reason, "last_event_id": last_event_id, "resume_id": resume_id}
        )
        return encode_event(payload, event=LOST_EVENT, id=resume_id)


_SEQ = attrgetter("seq")


def _once_each(records: Iterable[Record]) -> Iterator[Record]:
    """``records`` in order without repeats (an event on several topics is merged in
    once per topic)."""
    last = -1
    for record in records:
        if record.seq != last:
            last = record.seq
            yield record
