"""The in-memory backend: one process, a bounded history per topic.

Ids are ``EPOCH-SEQ``: ``EPOCH`` is eight random hex digits drawn when the backend is
made, ``SEQ`` a counter shared by all topics, so ids are unique and ordered within the
process and a client that reconnects after a restart is recognised as coming from
another epoch rather than being replayed the wrong events.
"""

from __future__ import annotations

import itertools
import re
import secrets
from bisect import bisect_right
from collections import deque
from collections.abc import Iterator, Sequence
from operator import attrgetter

from rawsse.backends.base import (
    LOST_EVENT,
    OWN_ID,
    Backend,
    Record,
    Replay,
    lost_notice,
    merge_records,
    nothing,
)
from rawsse.errors import InvalidEvent
from rawsse.events import EventParts

__all__ = ["LOST_EVENT", "MemoryBackend", "Record", "Replay"]


class MemoryBackend(Backend):
    """Assigns ids and keeps the last ``history`` events of each topic; delivers each
    event as it is published.

    Args:
        history: events kept per topic for replay; 0 keeps none.
        epoch: eight lower-case hex digits; random by default.
    """

    def __init__(self, history: int, *, epoch: str | None = None) -> None:
        super().__init__()
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

    def make_id(self, seq: int) -> str:
        """The wire id of sequence number ``seq`` in this epoch."""
        return f"{self.epoch}-{seq}"

    def publish(self, topics: tuple[str, ...], parts: EventParts, *, id: str | None) -> Record:
        """Give the event the next id (or check the publisher's), keep it, deliver it.

        Raises:
            InvalidEvent: ``id`` is already in the history or has the reserved
                ``EPOCH-SEQ`` shape (nothing is stored).
        """
        seq = self.last_seq + 1
        if id is not None:
            if OWN_ID.fullmatch(id):
                raise InvalidEvent(f"ids shaped like {self.make_id(1)!r} are reserved for the hub")
            if id in self._by_user_id:
                raise InvalidEvent(f"id {id!r} is already in the history")
        wire_id = self.make_id(seq) if id is None else id
        self.last_seq = seq
        record = Record(seq, wire_id, topics, parts.frame(wire_id))
        if id is not None:
            self._by_user_id[id] = record
        for topic in topics:
            kept = self._history.get(topic)
            if kept is None:
                kept = self._history[topic] = deque()
            kept.append(record)
            if len(kept) > self.history:
                self._forget(topic, kept.popleft())
        self.deliver(record)
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

    def replay(
        self, topics: Sequence[str], last_event_id: str | None, *, upto: int | None = None
    ) -> Replay:
        """What a client that last saw ``last_event_id`` missed on ``topics``, up to
        sequence number ``upto`` (by default, the last).

        No id: nothing. A known id: every kept event after it, in order, each once even
        when it was published to several of the topics; preceded by a lost notice when
        the history no longer reaches back to it. An id from another epoch: a lost
        notice, then all kept events. An id we cannot place: a lost notice only.
        """
        if last_event_id is None:
            return Replay(None, nothing())
        after, reason = self._position(last_event_id)
        evicted = max((self._evicted.get(t, 0) for t in topics), default=0)
        if reason is None and evicted > after:
            reason = "expired"
        if reason == "unknown":
            return Replay(self._lost(reason, last_event_id, self.last_seq), nothing())
        records = self._records_after(topics, after)
        if upto is not None and upto < self.last_seq:
            records = itertools.takewhile(lambda record: record.seq <= upto, records)
        if reason is None:
            return Replay(None, records)
        return Replay(self._lost(reason, last_event_id, max(after, evicted)), records)

    def _position(self, last_event_id: str) -> tuple[int, str | None]:
        record = self._by_user_id.get(last_event_id)
        if record is not None:
            return record.seq, None
        own = OWN_ID.fullmatch(last_event_id)
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
        return merge_records(kept)

    def _lost(self, reason: str, last_event_id: str, resume_seq: int) -> bytes:
        return lost_notice(reason, last_event_id, self.make_id(resume_seq))


_SEQ = attrgetter("seq")
