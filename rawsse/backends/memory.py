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
import time
from bisect import bisect_right
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from operator import attrgetter

from rawsse.backends.base import (
    EARLIEST,
    LOST_EVENT,
    Backend,
    Record,
    Replay,
    lost_notice,
    merge_records,
    nothing,
    reserved_id,
)
from rawsse.errors import DuplicateId, InvalidEvent
from rawsse.events import EventParts
from rawsse.ids import PLAIN, IdForm, parse_own

__all__ = ["LOST_EVENT", "MemoryBackend", "Record", "Replay"]


#: What keeping one event on one topic costs besides its bytes (its record, the
#: references to it, its place in the order of eviction), measured with tracemalloc,
#: and what a topic with a history costs by itself (its deque and dictionary entries).
#: They make ``max_bytes`` a bound on memory, not on payload alone.
ENTRY_COST = 300
TOPIC_COST = 1000


class MemoryBackend(Backend):
    """Assigns ids and keeps the last ``history`` events of each topic, within
    ``max_bytes`` in all and for ``ttl`` seconds; delivers each event as it is
    published.

    When the history is over ``max_bytes`` (frames plus :data:`ENTRY_COST` per kept
    event and :data:`TOPIC_COST` per topic), the least recently published topic's
    oldest events go first; events older than ``ttl`` go too; a topic left with none is
    forgotten (in O(1) per publish: topics are kept in the order they were last
    published to). A client positioned before anything forgotten is told (``expired``), so
    per-user topics or a publisher inventing topics cannot grow the process without
    bound, and never make a silent hole.

    Args:
        history: events kept per topic for replay; 0 keeps none.
        epoch: eight lower-case hex digits; random by default.
        max_bytes: what the history may hold in all; 0 for no bound.
        ttl: seconds an event is kept at most; 0 for no age limit.
    """

    def __init__(
        self,
        history: int,
        *,
        epoch: str | None = None,
        max_bytes: int = 0,
        ttl: float = 0.0,
        ids: IdForm = PLAIN,
    ) -> None:
        super().__init__()
        #: How its ids are written (:mod:`rawsse.ids`): ``EPOCH-SEQ``, or a URN.
        self.ids = ids
        if epoch is None:
            epoch = secrets.token_hex(4)
        if not re.fullmatch(r"[0-9a-f]{8}", epoch):
            raise ValueError(f"epoch must be 8 lower-case hex digits, got {epoch!r}")
        self.epoch = epoch
        self.history = history
        self.last_seq = 0
        # Topics in the order they were last published to (when bounded).
        self._history: OrderedDict[str, deque[Record]] = OrderedDict()
        # Per topic, the highest sequence number dropped from its history: a client
        # positioned before it has missed events we can no longer send.
        self._evicted: dict[str, int] = {}
        # Publisher-chosen ids resolve to their records while those are in the history.
        self._by_user_id: dict[str, Record] = {}
        self.max_bytes = max_bytes
        self.ttl = ttl
        self._bounded = bool(max_bytes)
        #: What the history holds, as accounted against ``max_bytes``.
        self.bytes = 0
        # The highest sequence number of the topics forgotten whole: a topic made
        # again since may have lost events up to it.
        self._forgotten = 0

    def make_id(self, seq: int) -> str:
        """The wire id of sequence number ``seq`` in this epoch (in the backend's
        :mod:`id form <rawsse.ids>`)."""
        return self.ids.make(self.epoch, seq)

    def publish(
        self,
        topics: tuple[str, ...],
        parts: EventParts,
        *,
        id: str | None,
        private: bool = False,
        reuse_id: bool = False,
    ) -> Record:
        """Give the event the next id (or check the publisher's), keep it, deliver it.

        Raises:
            InvalidEvent: ``id`` is already in the history (unless ``reuse_id``: it
                then names this event from now on) or has the reserved ``EPOCH-SEQ``
                shape (nothing is stored).
        """
        seq = self.last_seq + 1
        if id is not None:
            if reserved_id(id):
                raise InvalidEvent(
                    f"ids shaped like {self.make_id(1)!r}, and {EARLIEST!r}, are reserved "
                    "for the hub"
                )
            if id in self._by_user_id and not reuse_id:
                raise DuplicateId(f"id {id!r} is already in the history")
        wire_id = self.make_id(seq) if id is None else id
        self.last_seq = seq
        record = Record(
            seq,
            wire_id,
            topics,
            parts.frame(wire_id),
            time.monotonic() if self.ttl else 0.0,
            private,
        )
        if id is not None:
            self._by_user_id[id] = record
        history = self._history
        for topic in topics:
            kept = history.get(topic)
            if kept is None:
                kept = self._new_topic(topic)
            elif self._bounded:
                history.move_to_end(topic)  # least recently published first
            kept.append(record)
            self.bytes += len(record.frame) + ENTRY_COST
            if len(kept) > self.history:
                self._pop_oldest(topic, kept)
            elif self.ttl and kept[0].at < record.at - self.ttl:
                self._trim(topic, kept, record.at - self.ttl)
        if self.max_bytes and self.bytes > self.max_bytes:
            self._shrink()
        self.deliver(record)
        return record

    def _new_topic(self, topic: str) -> deque[Record]:
        kept: deque[Record] = deque()
        self._history[topic] = kept
        self.bytes += TOPIC_COST
        if self._forgotten:
            # It may have been kept and forgotten before: anything up to the last
            # forgotten event may be missing from it.
            self._evicted[topic] = max(self._evicted.get(topic, 0), self._forgotten)
        return kept

    def _pop_oldest(self, topic: str, kept: deque[Record]) -> None:
        record = kept.popleft()
        self.bytes -= len(record.frame) + ENTRY_COST
        self._forget(topic, record)
        if not kept:
            del self._history[topic]
            self.bytes -= TOPIC_COST
            self._forgotten = max(self._forgotten, self._evicted.pop(topic, 0))

    def _shrink(self) -> None:
        """Over ``max_bytes``: the least recently published topic's oldest events go
        first, then the topic itself."""
        history = self._history
        while self.bytes > self.max_bytes and history:
            topic = next(iter(history))
            self._pop_oldest(topic, history[topic])

    def _trim(self, topic: str, kept: deque[Record], cutoff: float) -> None:
        while kept and kept[0].at < cutoff:
            self._pop_oldest(topic, kept)

    def expire(self, now: float | None = None) -> None:
        """Forget events older than ``ttl`` (the server calls it every few seconds;
        publishing trims the topics it touches)."""
        if not self.ttl:
            return
        cutoff = (time.monotonic() if now is None else now) - self.ttl
        for topic, kept in list(self._history.items()):
            self._trim(topic, kept, cutoff)

    def _forget(self, topic: str, record: Record) -> None:
        self._evicted[topic] = record.seq
        if self._by_user_id.get(record.id) is record and all(
            self._evicted_of(t) >= record.seq for t in record.topics if t != topic
        ):
            del self._by_user_id[record.id]

    def _evicted_of(self, topic: str) -> int:
        """The highest sequence number ``topic`` may have lost."""
        if topic in self._history:
            return self._evicted.get(topic, 0)
        return max(self._evicted.get(topic, 0), self._forgotten)

    def position_id(self, seq: int) -> str:
        """The hub's own id of number ``seq`` (resumed from in O(1) whatever id the event
        there had), or ``earliest`` before the first event."""
        return self.make_id(seq) if seq > 0 else EARLIEST

    def resume_anchor(
        self, topics: Sequence[str], last_event_id: str, visible: Callable[[Record], bool]
    ) -> str | None:
        """See :meth:`Backend.resume_anchor`: the event itself and the first kept after
        it are looked at (a scan limit of one), each on ``topics`` only."""
        if last_event_id == EARLIEST:
            return None
        after, reason = self._position(last_event_id, topics)
        if reason is not None or after > self.last_seq:
            return None
        found: Record | None = None
        following: Record | None = None
        for topic in topics:
            kept = self._history.get(topic)
            if not kept:
                continue
            records = list(kept)
            at = bisect_right(records, after - 1, key=_SEQ)
            if at < len(records) and records[at].seq == after:
                found = records[at]
                at += 1
            if at < len(records) and (following is None or records[at].seq < following.seq):
                following = records[at]
        if found is None or not visible(found):
            return None
        if following is not None and not visible(following):
            return None
        return last_event_id

    def kept_topics(self) -> list[str]:
        """The topics with events kept."""
        return list(self._history)

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
        notice, then all kept events. An id we cannot place: a lost notice only, whose
        resume id is where ``topics`` stand (their last event kept or lost).

        A publisher's id is known only while its event is kept on one of ``topics``,
        and an unknown id's notice tells nothing of other topics: with subscribe
        authorization, a client may not learn whether an id exists on a topic it may
        not read, nor how far the hub's counter has gone.
        """
        if last_event_id is None:
            return Replay(None, nothing())
        if last_event_id == EARLIEST:  # every event kept, and nothing to tell
            records = self._records_after(topics, 0)
            if upto is not None and upto < self.last_seq:
                records = itertools.takewhile(lambda record: record.seq <= upto, records)
            return Replay(None, records)
        if self.ttl:
            cutoff = time.monotonic() - self.ttl
            for topic in topics:
                kept = self._history.get(topic)
                if kept:
                    self._trim(topic, kept, cutoff)
        after, reason = self._position(last_event_id, topics)
        evicted = max((self._evicted_of(t) for t in topics), default=0)
        if reason is None and evicted > after:
            reason = "expired"
        if reason == "unknown":
            resume = min(self._where(topics, evicted), self.last_seq if upto is None else upto)
            return Replay(self._lost(reason, last_event_id, resume), nothing())
        records = self._records_after(topics, after)
        if upto is not None and upto < self.last_seq:
            records = itertools.takewhile(lambda record: record.seq <= upto, records)
        if reason is None:
            return Replay(None, records)
        return Replay(self._lost(reason, last_event_id, max(after, evicted)), records)

    def _position(self, last_event_id: str, topics: Sequence[str]) -> tuple[int, str | None]:
        record = self._by_user_id.get(last_event_id)
        if record is not None:
            if self._kept_on(record, topics):
                return record.seq, None
            return 0, "unknown"
        own = parse_own(last_event_id)
        if own is None:
            return self.last_seq, "unknown"
        epoch, seq = own
        if epoch != self.epoch:
            return 0, "epoch"
        if seq > self.last_seq:
            return self.last_seq, "unknown"
        return seq, None

    def _kept_on(self, record: Record, topics: Sequence[str]) -> bool:
        """Whether ``record`` is still kept on one of ``topics`` (histories lose their
        oldest events first, so it is if the oldest kept is not newer)."""
        for topic in record.topics:
            if topic in topics:
                kept = self._history.get(topic)
                if kept and kept[0].seq <= record.seq:
                    return True
        return False

    def _where(self, topics: Sequence[str], evicted: int) -> int:
        """The last number ``topics`` have seen: their newest event kept, or lost."""
        newest = (kept[-1].seq for t in topics if (kept := self._history.get(t)))
        return max(evicted, max(newest, default=0))

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
