"""The fan-out: a hub's subscribers by topic and group, and the per-iteration flush.

Subscribers that read exactly the same set of topics share a *group*; a flush joins
each touched group's pending events (each once, in order) once and writes the same bytes
to every member, one ``transport.write`` per subscriber per iteration, with no
``await`` and no allocation per subscriber. Grouping is also what delivers an event
published to several topics only once to a subscriber that reads more than one of them.

Subscribers in Mercure mode also read selectors (``*``, URI templates): each distinct
selector read here is a :class:`Pattern`, which collects the events of every topic it
matches as a topic collects its own. Which patterns a topic matches is evaluated once
and kept (until the set of patterns changes), so an event costs one lookup per topic,
not one evaluation per subscriber. Their groups are keyed by topics and view
(:class:`~rawsse.hub.views.View`); an iteration with a private event filters each
group's events by its view once, before the frame is joined.

It is what a backend delivers to (:class:`~rawsse.backends.base.HubLink`): events in
their order come to :meth:`Fanout.dispatch`, and a backend may end streams or ask which
topics are read here. The :class:`~rawsse.hub.hub.Hub` owns it and adds publishing and
subscribing with replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import operator
import time
from collections.abc import Collection, Iterable, Iterator
from typing import cast

from rawsse.backends.base import EVERY_TOPIC, Backend, Record
from rawsse.config import Config
from rawsse.events import HEARTBEAT, chunk
from rawsse.hub.groups import Group, Pattern, Topic
from rawsse.hub.loadgauge import ThreadLoad
from rawsse.hub.metrics import Metrics
from rawsse.hub.pacing import FlushPacing
from rawsse.hub.patterns import Patterns
from rawsse.hub.subscriber import Subscriber, finish_with_retry
from rawsse.hub.views import View, visible

__all__ = ["Fanout", "Group", "Topic"]

_CHUNKED_HEARTBEAT = chunk(HEARTBEAT)

#: Events dispatched within this many seconds of each other count as published at the
#: same moment for the publish latency histogram (a batch's events, one observation).
SAME_MOMENT = 0.0001


class Fanout:
    """The subscribers of one hub and the flush that writes to them.

    Args:
        config: ``flush_delay``, ``slow_timeout``, ``shutdown_retry_window``.
        backend: told when a topic has no subscriber left here (``unlisten``).
        metrics: where deliveries, bytes and publish latency are counted.
    """

    def __init__(self, config: Config, backend: Backend, metrics: Metrics) -> None:
        self._config = config
        self._backend = backend
        self.metrics = metrics
        #: The sequence number of the last event dispatched: replay ends there.
        self.last_seq = 0
        #: Subscribers whose transport is over its high-water mark.
        self.paused: set[Subscriber] = set()
        self._topics: dict[str, Topic] = {}
        self._groups: dict[tuple[frozenset[str], View | None], Group] = {}
        # The selectors read here that are not exact topics (hub/patterns.py).
        self._patterns = Patterns()
        self._private = False  # a private event is pending flush
        self._subscribers = 0  # in all the groups
        self._dirty: list[Topic | Pattern] = []
        self._flush_scheduled = False
        self._flushing = False
        self._unsubscribe_later: list[Subscriber] = []
        self._tick = 0
        # When each event waiting for this iteration's flush was published.
        self._published_at: list[float] = []
        self._published_count: list[int] = []  # how many events at each of those
        #: When the next flush may run (hub/pacing.py); the loop thread's load that the
        #: adaptive delay follows.
        self.pacing = FlushPacing(config.flush_delay)
        self.load = ThreadLoad()

    def dispatch(self, record: Record) -> None:
        """Queue ``record`` (ordered by the backend) for the subscribers of its topics,
        flushed once per iteration."""
        self.last_seq = record.seq
        queued = False
        for name in record.topics:
            topic = self._topics.get(name)
            if topic is None:
                continue
            if not topic.pending:
                self._dirty.append(topic)
            topic.pending.append(record)
            queued = True
        if self._patterns and self._patterns.queue(record, self._dirty.append):
            queued = True
        if queued:
            if record.private:
                self._private = True
            now = time.monotonic()
            published_at = self._published_at
            if published_at and now - published_at[-1] < SAME_MOMENT:
                self._published_count[-1] += 1  # a batch's events: one observation
            else:
                published_at.append(now)
                self._published_count.append(1)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                # Within the delay of the last flush (under load), wait for the rest of
                # it, batching what arrives meanwhile into the same writes; otherwise
                # flush at the end of this iteration, adding nothing.
                wait = self.pacing.wait(now)
                if wait > 0:
                    asyncio.get_running_loop().call_later(wait, self._flush)
                else:
                    asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, []
        if not dirty:
            return
        private, self._private = self._private, False
        started = time.monotonic()
        self.pacing.begin(started, self.load.sample, sum(self._published_count))
        groups: set[Group] = set()
        for topic in dirty:
            groups.update(topic.groups)
        metrics = self.metrics
        tick = self._tick
        with self._deferring_unsubscribe():
            for group in groups:
                records = _pending_of(group)
                if private:
                    records = list(visible(records, group.view))
                    if not records:
                        continue
                if len(records) == 1:
                    payload = records[0].frame
                else:
                    payload = b"".join([record.frame for record in records])
                group.wrote_at_tick = tick
                metrics.deliveries += len(records) * len(group)
                if group.plain:
                    for subscriber in group.plain:
                        subscriber.send(payload)
                    metrics.bytes_sent += len(payload) * len(group.plain)
                if group.chunked:
                    framed = chunk(payload)
                    for subscriber in group.chunked:
                        subscriber.send(framed)
                    metrics.bytes_sent += len(payload) * len(group.chunked)
                if group.lane is not None:
                    metrics.bytes_sent += group.lane.write(payload, started)
            for topic in dirty:
                topic.pending.clear()
        now = time.monotonic()
        self.pacing.end(now)
        observe = metrics.publish_latency.observe
        for published_at, count in zip(self._published_at, self._published_count, strict=True):
            observe(now - published_at, count)
        self._published_at.clear()
        self._published_count.clear()

    @contextlib.contextmanager
    def _deferring_unsubscribe(self) -> Iterator[None]:
        # While iterating over groups, a write may end a connection; its removal from
        # the group must wait until the iteration is over.
        self._flushing = True
        try:
            yield
        finally:
            self._flushing = False
            if self._unsubscribe_later:
                later, self._unsubscribe_later = self._unsubscribe_later, []
                for subscriber in later:
                    self.unsubscribe(subscriber)

    def join(self, subscriber: Subscriber, view: View | None = None) -> None:
        """Add ``subscriber`` to the group of its exact topics and ``view`` (made if
        new), after flushing what this iteration has pending, so that what it is sent
        from now on comes after the last event dispatched (``last_seq``)."""
        if self._dirty:
            self._flush()
        key = frozenset(subscriber.topics)
        group = self._groups.get((key, view))
        if group is None:
            topics: tuple[Topic | Pattern, ...] = tuple(
                self._topic(name) for name in subscriber.topics
            )
            if view is not None and view.patterns:
                topics += tuple(self._patterns.of(s) for s in sorted(view.patterns, key=_TEXT))
            group = self._groups[key, view] = Group(key, subscriber.topics, topics, view)
            for topic in topics:
                topic.groups.add(group)
        group.add(subscriber)
        self._subscribers += 1
        for topic in group.topics:
            topic.subscribers += 1
        subscriber.group = group
        subscriber.topics = group.names

    def pause(self, subscriber: Subscriber, now: float) -> None:
        """Its transport is over the high-water mark: the stall sweep watches it."""
        subscriber.pause(now)
        self.paused.add(subscriber)

    def resume(self, subscriber: Subscriber) -> None:
        """Its transport drained: no longer stalled."""
        self.paused.discard(subscriber)
        subscriber.resume()

    def _topic(self, name: str) -> Topic:
        topic = self._topics.get(name)
        if topic is None:
            topic = self._topics[name] = Topic(name)
        return topic

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Remove ``subscriber`` from its group; idempotent. Safe to call at any time,
        even from a write made during a flush (the removal then waits for its end)."""
        group = cast("Group | None", subscriber.group)
        if group is None:
            return
        if self._flushing:
            self._unsubscribe_later.append(subscriber)
            return
        subscriber.group = None
        self.paused.discard(subscriber)
        group.discard(subscriber)
        self._subscribers -= 1
        for topic in group.topics:
            topic.subscribers -= 1
        if len(group) == 0:
            del self._groups[group.key, group.view]
            for topic in group.topics:
                topic.groups.discard(group)
                if not topic.groups:
                    if isinstance(topic, Pattern):
                        self._patterns.remove(topic)
                        if not self._patterns:
                            self._backend.unlisten(EVERY_TOPIC)
                    else:
                        del self._topics[topic.name]
                        self._backend.unlisten(topic.name)
                    if topic.pending:
                        self._dirty.remove(topic)
                        topic.pending.clear()
                        if not self._dirty:
                            self._published_at.clear()
                            self._published_count.clear()

    def read_by(self, view: View, names: Iterable[str]) -> list[str]:
        """Of topic ``names``, those ``view``'s selectors match (its patterns must be
        read here: each topic is matched against all of them once, then kept)."""
        wanted = {self._patterns.of(s) for s in view.patterns}
        matching = self._patterns.matching
        return [name for name in names if not wanted.isdisjoint(matching(name))]

    def has_topic(self, topic: str) -> bool:
        """Whether ``topic`` has subscribers here (:data:`EVERY_TOPIC`: whether any
        reads selectors)."""
        if topic == EVERY_TOPIC:
            return bool(self._patterns)
        return topic in self._topics

    def end_streams(self, topics: Collection[str] | None, reason: str) -> int:
        """End the streams reading any of ``topics`` (every stream when ``None``) with a
        ``retry:`` drawn within ``shutdown_retry_window``, so that their clients come back
        with their ``Last-Event-ID``, spread out; return how many."""
        window = self._config.shutdown_retry_window
        ended = 0
        with self._deferring_unsubscribe():
            for group in list(self._groups.values()):
                if topics is not None and not _reads_any(group, topics):
                    continue
                for subscriber in list(group.members()):
                    finish_with_retry(subscriber, window, reason)
                    ended += 1
        return ended

    def count_disconnect(self, reason: str) -> None:
        """Count one ended stream under ``reason``."""
        self.metrics.disconnects[reason] = self.metrics.disconnects.get(reason, 0) + 1

    # -- housekeeping, driven by the server's timers ----------------------------

    def heartbeat(self) -> int:
        """Write a heartbeat comment to every stream that received nothing since the
        previous call; return how many streams got one."""
        tick = self._tick
        self._tick = tick + 1
        sent = 0
        now = time.monotonic()
        with self._deferring_unsubscribe():
            for group in self._groups.values():
                if group.wrote_at_tick >= tick:
                    continue
                for subscriber in group.plain:
                    subscriber.send(HEARTBEAT)
                for subscriber in group.chunked:
                    subscriber.send(_CHUNKED_HEARTBEAT)
                if group.lane is not None:
                    group.lane.write(HEARTBEAT, now)
                sent += len(group)
        return sent

    def drop_stalled(self, now: float) -> int:
        """Drop subscribers paused for longer than ``slow_timeout``; return how many."""
        deadline = now - self._config.slow_timeout
        stalled = [
            s for s in self.paused if s.paused_since is not None and s.paused_since <= deadline
        ]
        with self._deferring_unsubscribe():
            for subscriber in stalled:
                subscriber.drop("slow_timeout")
        return len(stalled)

    def subscribers(self) -> Iterable[Subscriber]:
        """Every subscribed stream (a snapshot, safe to iterate while dropping)."""
        result: list[Subscriber] = []
        for group in self._groups.values():
            result.extend(group.members())
        return result

    def topic_clients(self, limit: int) -> list[tuple[str, int]]:
        """Subscribers per topic, for ``/metrics``: the ``limit`` largest topics and
        ``_other`` for the rest (O(topics), no sort of them all)."""
        shown = _largest_topics(self._topics, limit)
        if len(self._topics) > limit:
            every = sum(map(_BY_SUBSCRIBERS, self._topics.values()))
            shown.append(("_other", every - sum(count for _, count in shown)))
        return shown

    @property
    def group_count(self) -> int:
        """How many distinct sets of topics are read (subscribers share a group each)."""
        return len(self._groups)

    @property
    def subscriber_count(self) -> int:
        """How many streams are subscribed (kept, not counted: every stream admission
        asks)."""
        return self._subscribers

    @property
    def topic_count(self) -> int:
        """How many topics have subscribers."""
        return len(self._topics)


_BY_SUBSCRIBERS = operator.attrgetter("subscribers")


def _largest_topics(topics: dict[str, Topic], limit: int) -> list[tuple[str, int]]:
    """The ``limit`` topics with the most subscribers, ties by name, largest first: in
    a few passes over the topics and no sort of them all (a hub with 640 000 topics
    took 1.2-1.6 s a scrape to sort them)."""
    if len(topics) <= limit:
        chosen = list(topics.values())
    else:
        threshold = heapq.nlargest(limit, map(_BY_SUBSCRIBERS, topics.values()))[-1]
        chosen = [topic for topic in topics.values() if topic.subscribers > threshold]
        tied = (topic.name for topic in topics.values() if topic.subscribers == threshold)
        chosen += [topics[name] for name in heapq.nsmallest(limit - len(chosen), tied)]
    chosen.sort(key=lambda topic: (-topic.subscribers, topic.name))
    return [(topic.name, topic.subscribers) for topic in chosen]


_TEXT = operator.attrgetter("text")


def _reads_any(group: Group, topics: Collection[str]) -> bool:
    """Whether ``group`` reads one of ``topics``, by name or by pattern."""
    if not group.key.isdisjoint(topics):
        return True
    view = group.view
    return view is not None and any(s.matches(t) for s in view.patterns for t in topics)


def _pending_of(group: Group) -> list[Record]:
    """The group's events of this iteration, each once, in publish order."""
    if len(group.topics) == 1:
        return group.topics[0].pending
    seen: dict[int, Record] = {}
    for topic in group.topics:
        for record in topic.pending:
            seen[record.seq] = record
    return [seen[seq] for seq in sorted(seen)]
