"""The hub: publish, subscribe with replay, and its life cycle, over a backend (ids,
order, history) and the fan-out (:mod:`rawsse.hub.fanout`).

Publishing encodes an event once (all but its id, which the backend gives it), and the
backend hands the ordered record back to the fan-out, which writes each group of
subscribers' events once per loop iteration. Subscribing joins the fan-out and asks the
backend for what the client missed, up to the last event dispatched, so that replay and
live stream meet with neither a duplicate nor a hole.
"""

from __future__ import annotations

from collections.abc import Awaitable, Collection, Iterable, Sequence
from inspect import isawaitable
from typing import cast

from rawsse.backends.base import NOTHING, Backend, Record, Replay
from rawsse.backends.factory import backend_for
from rawsse.config import Config
from rawsse.errors import InvalidEvent, RequestError
from rawsse.events import encode_checked
from rawsse.hub.fanout import Fanout, Group, Topic
from rawsse.hub.metrics import TOPIC_LABEL_LIMIT, HubGauges, Metrics, process_gauges
from rawsse.hub.pacing import FlushPacing
from rawsse.hub.subscriber import Subscriber
from rawsse.hub.views import View, sees, visible
from rawsse.topics import parse_topics

__all__ = ["Group", "Hub", "Topic", "View"]


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
        self.max_buffer = self.config.max_buffer
        self.metrics = Metrics()
        #: The subscribers by topic and group, and the flush; what the backend delivers
        #: to, directly (no call through the hub per event).
        self.fanout = Fanout(self.config, self.backend, self.metrics)
        self.backend.attach(self.fanout)

    # -- publishing -------------------------------------------------------------

    def publish(
        self,
        topic: str | Sequence[str],
        data: str,
        *,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
        private: bool = False,
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
            private: send it only to subscribers whose view's grants cover one of
                its topics (Mercure mode), in replay too; a native subscriber never
                receives it.

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
        return cast(
            str, self.start_publish(topic, data, event=event, id=id, retry=retry, private=private)
        )

    async def publish_async(
        self,
        topic: str | Sequence[str],
        data: str,
        *,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
        private: bool = False,
    ) -> str:
        """:meth:`publish` for any backend: awaits the backend when it must."""
        result = self.start_publish(topic, data, event=event, id=id, retry=retry, private=private)
        return result if isinstance(result, str) else await result

    def start_publish(
        self,
        topic: str | Sequence[str],
        data: str,
        *,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
        private: bool = False,
    ) -> str | Awaitable[str]:
        """Validate, encode and hand the event to the backend: its id at once from a
        synchronous backend, else something to await for it. (What the HTTP layer
        calls, so that only a remote backend costs a task.)"""
        return self.start_publish_to(
            self._topic_names(topic), data, event=event, id=id, retry=retry, private=private
        )

    def start_publish_to(
        self,
        topics: tuple[str, ...],
        data: str,
        *,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
        private: bool = False,
        reuse_id: bool = False,
    ) -> str | Awaitable[str]:
        """:meth:`start_publish` to topic names already checked by
        :func:`rawsse.h1.parse.parse_topics` (as the HTTP layer has): not checked again.
        With ``reuse_id``, a publisher's ``id`` already kept is given to this event too
        (Mercure allows it; a resume from it starts after this event) instead of being
        refused as a duplicate."""
        if id == "":
            id = None
        parts = encode_checked(
            data, event=event, id=id, retry=retry, max_size=self.config.max_event_size
        )
        if private or reuse_id:
            result = self.backend.publish(topics, parts, id=id, private=private, reuse_id=reuse_id)
        else:  # as a backend written before private events is called
            result = self.backend.publish(topics, parts, id=id)
        if isinstance(result, Record):
            self.metrics.events_published += 1
            return result.id
        return self._published(result)

    def publish_awaited(self) -> None:
        """Note that an event was published by a request whose client waits for the
        answer before it sends the next (rawsse's publish routes call it; so may an
        embedding program's own front): the adaptive flush delay leaves such events out
        of what makes flushes amortized (:mod:`rawsse.hub.pacing`)."""
        self.pacing.awaited += 1

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

    # -- subscribing ------------------------------------------------------------

    def ready(
        self, topics: Sequence[str], last_event_id: str | None, *, every: bool = False
    ) -> Awaitable[None] | None:
        """``None`` when a subscriber to ``topics`` (and to selectors, which may match
        any topic, if ``every``) may :meth:`subscribe` now; else something to await
        first (a remote backend starting to listen to a topic new to this process).
        Answer the stream only then: once its head is sent, a client may rely on
        receiving what is published next.

        Raises:
            BackendUnavailable: the backend cannot deliver now.
        """
        if every:
            return self.backend.listen(topics, last_event_id, every=True)
        return self.backend.listen(topics, last_event_id)

    def subscribe(
        self, subscriber: Subscriber, last_event_id: str | None = None, *, view: View | None = None
    ) -> Replay | Awaitable[Replay]:
        """Add ``subscriber`` to its topics (and, in Mercure mode, ``view``'s
        selectors); return what it missed since ``last_event_id`` (a lost notice or
        ``None``, and the records to replay), or something to await for it from a
        remote backend. Private events are replayed only as they are sent live: to a
        view whose grants cover one of their topics.

        Call :meth:`Subscriber.begin` in the same step: live events are then held until
        the replay is written (:meth:`Subscriber.replay`). Events of this iteration not
        yet flushed are flushed first, and the replay ends at the last event dispatched,
        so the seam between replay and live stream has neither a duplicate nor a hole.
        """
        fanout = self.fanout
        fanout.join(subscriber, view)
        topics = subscriber.topics
        if view is not None and view.patterns and last_event_id is not None:
            kept = self.backend.kept_topics()
            if isawaitable(kept):
                return self._replay_matching(topics, view, kept, last_event_id, fanout.last_seq)
            topics = self._replayed_topics(topics, view, kept)
        replay = self.backend.replay(topics, last_event_id, upto=fanout.last_seq)
        if isinstance(replay, Replay):
            return _visible_replay(replay, view)
        return _visible_later(replay, view)

    async def _replay_matching(
        self,
        topics: tuple[str, ...],
        view: View,
        kept: Awaitable[Iterable[str]],
        last_event_id: str,
        upto: int,
    ) -> Replay:
        """The replay of a view with selectors from a backend that lists its kept
        topics remotely: its selectors are tried on each (the subscriber may have left
        meanwhile, and the fan-out must not be asked to keep its patterns)."""
        topics = self._replayed_topics(topics, view, await kept, joined=False)
        replay = self.backend.replay(topics, last_event_id, upto=upto)
        return _visible_replay(replay if isinstance(replay, Replay) else await replay, view)

    def resume_anchor(
        self, topics: tuple[str, ...], last_event_id: str, view: View | None
    ) -> str | None:
        """``last_event_id`` if a subscriber to ``topics`` (and ``view``'s selectors)
        resuming from it will be sent what follows it directly, as far as the backend
        can tell before it joins; else ``None`` (see :meth:`Backend.resume_anchor`)."""
        if view is not None and view.patterns:
            kept = self.backend.kept_topics()
            if isawaitable(kept):
                return None  # a remote backend: not known before the head goes out
            topics = self._replayed_topics(topics, view, kept, joined=False)
        return self.backend.resume_anchor(topics, last_event_id, lambda record: sees(record, view))

    def _replayed_topics(
        self,
        topics: tuple[str, ...],
        view: View,
        kept: Iterable[str] | None,
        *,
        joined: bool = True,
    ) -> tuple[str, ...]:
        """A view's exact topics and the ``kept`` topics its selectors match: whose
        histories its replay merges. Once its subscriber has ``joined``, the fan-out's
        cache of matches answers; before, each selector is tried (the fan-out learns
        of a view's selectors only when a subscriber reads them)."""
        if kept is None:
            return topics
        exact = set(topics)
        others = [t for t in kept if t not in exact]
        if joined:
            return topics + tuple(self.fanout.read_by(view, others))
        patterns = view.patterns
        return topics + tuple(t for t in others if any(p.matches(t) for p in patterns))

    # -- the fan-out's, for the server and embedders ------------------------------

    def dispatch(self, record: Record) -> None:
        """Queue ``record`` (ordered by the backend) for its topics' subscribers."""
        self.fanout.dispatch(record)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Remove ``subscriber``; idempotent, safe at any time (see :class:`Fanout`)."""
        self.fanout.unsubscribe(subscriber)

    def pause(self, subscriber: Subscriber, now: float) -> None:
        """Its transport is over the high-water mark: the stall sweep watches it."""
        self.fanout.pause(subscriber, now)

    def resume(self, subscriber: Subscriber) -> None:
        """Its transport drained: no longer stalled."""
        self.fanout.resume(subscriber)

    def has_topic(self, topic: str) -> bool:
        """Whether ``topic`` has subscribers here."""
        return self.fanout.has_topic(topic)

    def end_streams(self, topics: Collection[str] | None, reason: str) -> int:
        """End the streams reading any of ``topics`` (all when ``None``), each told to
        come back within ``shutdown_retry_window``; how many."""
        return self.fanout.end_streams(topics, reason)

    def count_disconnect(self, reason: str) -> None:
        """Count one ended stream under ``reason``."""
        self.fanout.count_disconnect(reason)

    def heartbeat(self) -> int:
        """A heartbeat to every stream that received nothing since the last; how many."""
        return self.fanout.heartbeat()

    def drop_stalled(self, now: float) -> int:
        """Drop subscribers paused longer than ``slow_timeout``; how many."""
        return self.fanout.drop_stalled(now)

    def subscribers(self) -> Iterable[Subscriber]:
        """Every subscribed stream (a snapshot, safe to iterate while dropping)."""
        return self.fanout.subscribers()

    @property
    def paused(self) -> set[Subscriber]:
        """Subscribers whose transport is over its high-water mark."""
        return self.fanout.paused

    @property
    def last_seq(self) -> int:
        """The sequence number of the last event dispatched: replay ends there."""
        return self.fanout.last_seq

    @property
    def pacing(self) -> FlushPacing:
        """When the next flush may run."""
        return self.fanout.pacing

    @property
    def group_count(self) -> int:
        """How many distinct sets of topics are read (subscribers share a group each)."""
        return self.fanout.group_count

    @property
    def subscriber_count(self) -> int:
        """How many streams are subscribed."""
        return self.fanout.subscriber_count

    @property
    def topic_count(self) -> int:
        """How many topics have subscribers."""
        return self.fanout.topic_count

    # -- metrics and life cycle ---------------------------------------------------

    def gauges(self) -> HubGauges:
        """What ``/metrics`` reports of the hub besides counters, read now:
        O(subscribers + topics), with no sort of all topics."""
        fanout = self.fanout
        return HubGauges(
            clients=fanout.subscriber_count,
            paused=len(fanout.paused),
            topic_clients=fanout.topic_clients(TOPIC_LABEL_LIMIT),
            buffered=[s.transport.get_write_buffer_size() for s in fanout.subscribers()],
            history_events=self.backend.history_size(),
            backend_up=self.backend.healthy,
        )

    def exposition(self, *, draining: bool = False) -> bytes:
        """The Prometheus text exposition of this hub's metrics, and of the process it
        runs in (a server reports its own ``draining``)."""
        return self.metrics.exposition(self.gauges(), process_gauges(draining=draining))

    async def start(self) -> None:
        """Start the backend (the server calls it when it starts)."""
        if self.fanout.pacing.adaptive:
            self.fanout.load.sample()  # opens its file now, in the loop's thread
        await self.backend.start()

    async def close(self) -> None:
        """Close the backend (the server calls it when it has shut down)."""
        self.fanout.load.close()
        await self.backend.close()


def _visible_replay(replay: Replay, view: View | None) -> Replay:
    """``replay`` without the private events ``view`` may not receive (all of them
    without a view): replay follows the rule of the live stream."""
    records = replay.records
    if records is NOTHING:
        return replay
    return Replay(replay.lost, visible(records, view))


async def _visible_later(pending: Awaitable[Replay], view: View | None) -> Replay:
    return _visible_replay(await pending, view)
