"""The hub: topics, publish, per-iteration batching, fan-out and replay.

Publishing encodes an event once (all but its id, which the backend gives it), and the
backend hands the ordered record back to :meth:`Hub.dispatch`, which appends it to the
pending list of each of its topics that has subscribers; one flush is scheduled per loop
iteration. The flush works per *group*: subscribers that read exactly the same set of
topics share a group, so a group's payload (its topics' pending events, each once, in
order) is joined once and the same bytes are written to every member, in one
``transport.write`` per subscriber per iteration, with no ``await`` and no allocation per
subscriber. Grouping is also what delivers an event published to several topics only
once to a subscriber that reads more than one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import operator
import time
from collections.abc import Awaitable, Collection, Iterable, Iterator, Sequence
from typing import cast

from rawsse.backends.base import Backend, Record, Replay
from rawsse.backends.factory import backend_for
from rawsse.config import Config
from rawsse.errors import InvalidEvent, RequestError
from rawsse.events import HEARTBEAT, chunk, encode_checked
from rawsse.hub.loadgauge import ThreadLoad
from rawsse.hub.metrics import TOPIC_LABEL_LIMIT, HubGauges, Metrics, process_gauges
from rawsse.hub.pacing import FlushPacing
from rawsse.hub.subscriber import Subscriber, finish_with_retry
from rawsse.topics import parse_topics

__all__ = ["Hub", "Group", "Topic"]

logger = logging.getLogger("rawsse.hub")

_CHUNKED_HEARTBEAT = chunk(HEARTBEAT)


#: Events dispatched within this many seconds of each other count as published at the
#: same moment for the publish latency histogram (a batch's events, one observation).
SAME_MOMENT = 0.0001


class Topic:
    """A topic with subscribers: the groups reading it, how many subscribers they hold
    in all (kept as they come and go, for ``/metrics``), and its events pending flush."""

    __slots__ = ("name", "groups", "pending", "subscribers")

    def __init__(self, name: str) -> None:
        self.name = name
        self.groups: set[Group] = set()
        self.pending: list[Record] = []
        self.subscribers = 0


class Group:
    """Subscribers reading the same set of topics; they receive identical bytes."""

    __slots__ = ("key", "names", "topics", "plain", "chunked", "wrote_at_tick")

    def __init__(
        self, key: frozenset[str], names: tuple[str, ...], topics: tuple[Topic, ...]
    ) -> None:
        self.key = key
        #: The topic names, as the first subscriber gave them; every member shares this
        #: tuple instead of holding its own copy of the names.
        self.names = names
        self.topics = topics
        self.plain: set[Subscriber] = set()
        self.chunked: set[Subscriber] = set()
        self.wrote_at_tick = -1

    def __len__(self) -> int:
        return len(self.plain) + len(self.chunked)


class Hub:
    """Publish events and fan them out to subscribers.

    A hub belongs to one event loop: call :meth:`publish` from code running in it (use
    :class:`rawsse.ServerThread` to publish from other threads).

    Args:
        config: limits (``history``, ``max_buffer``, ``max_event_size``); defaults when
            omitted.
        backend: where ids and history come from; a :class:`MemoryBackend` by default.
    """

    def __init__(self, config: Config | None = None, *, backend: Backend | None = None) -> None:
        self.config = config if config is not None else Config()
        self.backend = backend if backend is not None else backend_for(self.config)
        self.backend.attach(self)
        #: The sequence number of the last event dispatched: replay ends there.
        self.last_seq = 0
        self.max_buffer = self.config.max_buffer
        self.metrics = Metrics()
        self.paused: set[Subscriber] = set()
        self._topics: dict[str, Topic] = {}
        self._groups: dict[frozenset[str], Group] = {}
        self._subscribers = 0  # in all the groups
        self._dirty: list[Topic] = []
        self._flush_scheduled = False
        self._flushing = False
        self._unsubscribe_later: list[Subscriber] = []
        self._tick = 0
        # When each event waiting for this iteration's flush was published.
        self._published_at: list[float] = []
        self._published_count: list[int] = []  # how many events at each of those
        # When the next flush may run (hub/pacing.py), and the loop thread's load that
        # the adaptive delay follows.
        self.pacing = FlushPacing(self.config.flush_delay)
        self._load = ThreadLoad()

    # -- publishing -------------------------------------------------------------

    def publish(
        self,
        topic: str | Sequence[str],
        data: str,
        *,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
    ) -> str:
        """Publish one event to one topic or several; return its id.

        The event is encoded once and stored in the history at once; subscribers
        receive it when the loop next runs its callbacks, batched with whatever else
        was published in this iteration. Never blocks, never awaits. With a backend that
        must await (a remote one), use :meth:`publish_async`.

        Args:
            topic: a topic name or a sequence of them; a subscriber reading several of
                them receives the event once.
            data: the event's data, any text (lines become ``data:`` fields).
            event: the event type; ``None`` (or blank) for the default ``message``.
                Names beginning with ``rawsse-`` are the hub's own notices, reserved.
            id: an id of the publisher's choosing, unique within the history; by
                default (``None`` or blank) the backend assigns ``EPOCH-SEQ``.
            retry: a reconnection time in milliseconds to send with the event.

        Returns:
            The event's id.

        Raises:
            InvalidEvent: a malformed topic, ``id`` or ``event`` (CR, LF or NUL), a
                duplicate or reserved ``id``, a reserved ``event``, or a ``retry``
                outside 0 to ``MAX_RETRY``.
            PayloadTooLarge: the encoded event is over ``max_event_size`` bytes.
            RuntimeError: the backend publishes asynchronously.
        """
        if not self.backend.synchronous:
            raise RuntimeError("this backend publishes asynchronously: use publish_async()")
        return cast(str, self.start_publish(topic, data, event=event, id=id, retry=retry))

    async def publish_async(
        self,
        topic: str | Sequence[str],
        data: str,
        *,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
    ) -> str:
        """:meth:`publish` for any backend: awaits the backend when it must."""
        result = self.start_publish(topic, data, event=event, id=id, retry=retry)
        return result if isinstance(result, str) else await result

    def start_publish(
        self,
        topic: str | Sequence[str],
        data: str,
        *,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
    ) -> str | Awaitable[str]:
        """Validate, encode and hand the event to the backend: its id at once from a
        synchronous backend, else something to await for it. (What the HTTP layer
        calls, so that only a remote backend costs a task.)"""
        return self.start_publish_to(
            self._topic_names(topic), data, event=event, id=id, retry=retry
        )

    def start_publish_to(
        self,
        topics: tuple[str, ...],
        data: str,
        *,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
    ) -> str | Awaitable[str]:
        """:meth:`start_publish` to topic names already checked by
        :func:`rawsse.h1.parse.parse_topics` (as the HTTP layer has): not checked again."""
        if id == "":
            id = None
        parts = encode_checked(
            data, event=event, id=id, retry=retry, max_size=self.config.max_event_size
        )
        result = self.backend.publish(topics, parts, id=id)
        if isinstance(result, Record):
            self.metrics.events_published += 1
            return result.id
        return self._published(result)

    async def _published(self, pending: Awaitable[Record]) -> str:
        record = await pending
        self.metrics.events_published += 1
        return record.id

    def _topic_names(self, topic: str | Sequence[str]) -> tuple[str, ...]:
        names = (topic,) if isinstance(topic, str) else tuple(topic)
        try:
            return parse_topics(names, self.config.max_topics)
        except RequestError as exc:
            raise InvalidEvent(exc.reason) from None

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
        if queued:
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
        started = time.monotonic()
        self.pacing.begin(started, self._load.sample)
        groups: set[Group] = set()
        for topic in dirty:
            groups.update(topic.groups)
        metrics = self.metrics
        tick = self._tick
        with self._deferring_unsubscribe():
            for group in groups:
                records = _pending_of(group)
                if len(records) == 1:
                    payload = records[0].frame
                else:
                    payload = b"".join([record.frame for record in records])
                group.wrote_at_tick = tick
                members = len(group)
                metrics.deliveries += len(records) * members
                metrics.bytes_sent += len(payload) * members
                if group.plain:
                    for subscriber in group.plain:
                        subscriber.send(payload)
                if group.chunked:
                    framed = chunk(payload)
                    for subscriber in group.chunked:
                        subscriber.send(framed)
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

    # -- subscribing ------------------------------------------------------------

    def ready(self, topics: Sequence[str], last_event_id: str | None) -> Awaitable[None] | None:
        """``None`` when a subscriber to ``topics`` may :meth:`subscribe` now; else
        something to await first (a remote backend starting to listen to a topic new to
        this process). Answer the stream only then: once its head is sent, a client may
        rely on receiving what is published next.

        Raises:
            BackendUnavailable: the backend cannot deliver now.
        """
        return self.backend.listen(topics, last_event_id)

    def subscribe(
        self, subscriber: Subscriber, last_event_id: str | None = None
    ) -> Replay | Awaitable[Replay]:
        """Add ``subscriber`` to its topics; return what it missed since
        ``last_event_id`` (a lost notice or ``None``, and the records to replay), or
        something to await for it from a remote backend.

        Call :meth:`Subscriber.begin` in the same step: live events are then held until
        the replay is written (:meth:`Subscriber.replay`). Events of this iteration not
        yet flushed are flushed first, and the replay ends at the last event dispatched,
        so the seam between replay and live stream has neither a duplicate nor a hole.
        """
        if self._dirty:
            self._flush()
        key = frozenset(subscriber.topics)
        group = self._groups.get(key)
        if group is None:
            topics = tuple(self._topic(name) for name in subscriber.topics)
            group = self._groups[key] = Group(key, subscriber.topics, topics)
            for topic in topics:
                topic.groups.add(group)
        (group.chunked if subscriber.chunked else group.plain).add(subscriber)
        self._subscribers += 1
        for topic in group.topics:
            topic.subscribers += 1
        subscriber.group = group
        subscriber.topics = group.names
        return self.backend.replay(subscriber.topics, last_event_id, upto=self.last_seq)

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
        (group.chunked if subscriber.chunked else group.plain).discard(subscriber)
        self._subscribers -= 1
        for topic in group.topics:
            topic.subscribers -= 1
        if len(group) == 0:
            del self._groups[group.key]
            for topic in group.topics:
                topic.groups.discard(group)
                if not topic.groups:
                    del self._topics[topic.name]
                    self.backend.unlisten(topic.name)
                    if topic.pending:
                        self._dirty.remove(topic)
                        topic.pending.clear()
                        if not self._dirty:
                            self._published_at.clear()
                            self._published_count.clear()

    def has_topic(self, topic: str) -> bool:
        """Whether ``topic`` has subscribers here."""
        return topic in self._topics

    def end_streams(self, topics: Collection[str] | None, reason: str) -> int:
        """End the streams reading any of ``topics`` (every stream when ``None``) with a
        ``retry:`` drawn within ``shutdown_retry_window``, so that their clients come back
        with their ``Last-Event-ID``, spread out; return how many."""
        window = self.config.shutdown_retry_window
        ended = 0
        with self._deferring_unsubscribe():
            for group in list(self._groups.values()):
                if topics is not None and group.key.isdisjoint(topics):
                    continue
                for subscriber in (*group.plain, *group.chunked):
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
        with self._deferring_unsubscribe():
            for group in self._groups.values():
                if group.wrote_at_tick >= tick:
                    continue
                for subscriber in group.plain:
                    subscriber.send(HEARTBEAT)
                for subscriber in group.chunked:
                    subscriber.send(_CHUNKED_HEARTBEAT)
                sent += len(group)
        return sent

    def drop_stalled(self, now: float) -> int:
        """Drop subscribers paused for longer than ``slow_timeout``; return how many."""
        deadline = now - self.config.slow_timeout
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
            result.extend(group.plain)
            result.extend(group.chunked)
        return result

    def gauges(self) -> HubGauges:
        """What ``/metrics`` reports of the hub besides counters, read now:
        O(subscribers + topics), with no sort of all topics (only the
        ``TOPIC_LABEL_LIMIT`` largest are picked)."""
        shown = _largest_topics(self._topics, TOPIC_LABEL_LIMIT)
        if len(self._topics) > TOPIC_LABEL_LIMIT:
            every = sum(map(_BY_SUBSCRIBERS, self._topics.values()))
            shown.append(("_other", every - sum(count for _, count in shown)))
        return HubGauges(
            clients=self.subscriber_count,
            paused=len(self.paused),
            topic_clients=shown,
            buffered=[s.transport.get_write_buffer_size() for s in self.subscribers()],
            history_events=self.backend.history_size(),
            backend_up=self.backend.healthy,
        )

    def exposition(self, *, draining: bool = False) -> bytes:
        """The Prometheus text exposition of this hub's metrics, and of the process it
        runs in (a server reports its own ``draining``)."""
        return self.metrics.exposition(self.gauges(), process_gauges(draining=draining))

    async def start(self) -> None:
        """Start the backend (the server calls it when it starts)."""
        if self.pacing.adaptive:
            self._load.sample()  # opens its file now, in the loop's thread, not mid-run
        await self.backend.start()

    async def close(self) -> None:
        """Close the backend (the server calls it when it has shut down)."""
        self._load.close()
        await self.backend.close()

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


def _pending_of(group: Group) -> list[Record]:
    """The group's events of this iteration, each once, in publish order."""
    if len(group.topics) == 1:
        return group.topics[0].pending
    seen: dict[int, Record] = {}
    for topic in group.topics:
        for record in topic.pending:
            seen[record.seq] = record
    return [seen[seq] for seq in sorted(seen)]
