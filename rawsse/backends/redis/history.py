"""Reading the history the Redis backend keeps: a client's replay, and what the local
topics missed while the process was disconnected.

Both are the ``READ`` script (:data:`~rawsse.backends.redis.scripts.READ`) over the
topics' streams: every entry after one number up to another, with the highest number
trimmed from each stream (a hole if it is past what the reader had) and, for a
publisher's id, the number it was given. A replay is decided as the memory backend
decides (:meth:`rawsse.backends.memory.MemoryBackend.replay`), so both give the same
answer for the same history.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Sequence
from typing import Any

from rawsse.backends.base import (
    EARLIEST,
    EVERY_TOPIC,
    Record,
    Replay,
    lost_notice,
    merge_records,
    nothing,
)
from rawsse.backends.redis.calls import ScriptCalls
from rawsse.backends.redis.delivery import Delivery
from rawsse.backends.redis.wire import Keys, record_of
from rawsse.ids import parse_own

__all__ = ["HistoryReads", "TOPICS_PER_READ"]

#: Topics per read of their streams when catching up after a reconnect.
TOPICS_PER_READ = 200


class HistoryReads:
    """The reads of the streams, by the epoch and watermark ``delivery`` holds."""

    __slots__ = ("_calls", "_keys", "_delivery")

    def __init__(self, calls: ScriptCalls, keys: Keys, delivery: Delivery[Any]) -> None:
        self._calls = calls
        self._keys = keys
        self._delivery = delivery

    def _read(self, topics: Sequence[str], uid: str, after: int, upto: int) -> Awaitable[Any]:
        keys = self._keys
        return self._calls.call(
            "read",
            [keys.trimmed, keys.ids, *map(keys.stream, topics)],
            [uid, after, upto, *topics],
        )

    def _records(self, entries: list[Any]) -> list[Record]:
        epoch, make = self._delivery.epoch, self._delivery.ids.make
        return [
            record_of(epoch, int(entry_id.split(b"-", 1)[0]), fields[1], make)
            for entry_id, fields in entries
        ]

    # -- catching up ----------------------------------------------------------------------

    async def missed(
        self, topics: Iterable[str], after: int, upto: int
    ) -> tuple[dict[int, Record], list[str]]:
        """Every event of ``topics`` (and of every topic with events since, with
        :data:`EVERY_TOPIC`) after ``after`` up to ``upto``, by number; and the topics
        with a hole (events trimmed past ``after``, never to be delivered).

        Raises:
            BackendUnavailable: Redis did not answer.
        """
        names = set(topics)
        if EVERY_TOPIC in names:  # every topic with an event since
            names.discard(EVERY_TOPIC)
            names.update(await self.topics_after(after))
        ordered = sorted(names)
        chunks = [ordered[i : i + TOPICS_PER_READ] for i in range(0, len(ordered), TOPICS_PER_READ)]
        answers = [self._read(chunk, "", after, upto) for chunk in chunks]
        missed: dict[int, Record] = {}
        holes: list[str] = []
        for chunk, answer in zip(chunks, answers, strict=True):
            _, trimmed, entries, _where = await answer
            for topic, trimmed_seq, topic_entries in zip(chunk, trimmed, entries, strict=True):
                if trimmed_seq > after:
                    holes.append(topic)
                for record in self._records(topic_entries):
                    missed.setdefault(record.seq, record)
        return missed, holes

    async def topics_after(self, after: int) -> list[str]:
        """The topics whose last event's number is above ``after`` (every topic
        published to from -1).

        Raises:
            BackendUnavailable: Redis did not answer.
        """
        names = await self._calls.call("topics", [self._keys.topics], [after])
        return [name.decode("utf-8") for name in names]

    # -- replay -----------------------------------------------------------------------------

    def replay(
        self, topics: Sequence[str], last_event_id: str | None, *, upto: int
    ) -> Replay | Awaitable[Replay]:
        """What a client that last saw ``last_event_id`` missed on ``topics``, up to
        ``upto`` or what this process has delivered, whichever is later."""
        if last_event_id is None:
            return Replay(None, nothing())
        delivery = self._delivery
        upto = max(upto, delivery.watermark)
        if last_event_id == EARLIEST:  # every event kept, and nothing to tell
            return self._read_replay(topics, last_event_id, "", 0, upto, EARLIEST)
        own = parse_own(last_event_id)
        if own is None:
            return self._read_replay(topics, last_event_id, last_event_id, 0, upto, None)
        epoch, after = own
        if epoch != delivery.epoch:
            return self._read_replay(topics, last_event_id, "", 0, upto, "epoch")
        if after > upto:  # read only for where the topics stand, the notice's resume id
            return self._read_replay(topics, last_event_id, "", upto, upto, "unknown")
        return self._read_replay(topics, last_event_id, "", after, upto, None)

    async def _read_replay(
        self,
        topics: Sequence[str],
        last_event_id: str,
        uid: str,
        after: int,
        upto: int,
        reason: str | None,
    ) -> Replay:
        after, trimmed, entries, where = await self._read(topics, uid, after, upto)
        if after < 0 or reason == "unknown":
            return Replay(self._lost("unknown", last_event_id, where), nothing())
        records = merge_records([self._records(e) for e in entries if e])
        if reason == EARLIEST:
            return Replay(None, records)
        evicted = max(trimmed, default=0)
        if reason is None and evicted > after:
            reason = "expired"
        if reason is None:
            return Replay(None, records)
        return Replay(self._lost(reason, last_event_id, max(after, evicted)), records)

    def _lost(self, reason: str, last_event_id: str, resume_seq: int) -> bytes:
        delivery = self._delivery
        return lost_notice(reason, last_event_id, delivery.ids.make(delivery.epoch, resume_seq))
