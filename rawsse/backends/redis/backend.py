"""The Redis backend: one order, one history and live delivery shared by every worker
and server using the same Redis (and key prefix).

- **Publish**: one Lua script (:data:`~rawsse.backends.redis.scripts.PUBLISH`) takes the
  next number of one global counter, appends the event to each topic's stream under
  that number, trims the stream and ``PUBLISH``es the event on each topic's channel,
  atomically. The id is ``EPOCH-SEQ``; the epoch lives in Redis, so a Redis that lost its
  data is noticed by every server. Calls are pipelined (:mod:`.calls`).
- **Live delivery**: one Pub/Sub connection per process (:mod:`.pubsub`),
  subscribed to the channels of the topics that have local subscribers, added and
  dropped as they come and go. What arrives is handed to the hub once, as a locally
  published event would be; the publishing process does not deliver on its own.
- **The seam.** A process places itself in the order with a *mark*: a script that
  publishes the counter's value on the process's own channel. Everything published
  before the mark reached the process before the mark does. A subscriber to a topic new
  to the process waits for the channel's subscription to take effect and for a mark
  after it; from then on every event on its topics reaches the process, and its replay
  (read from the streams up to the mark) meets its live stream without a hole or a
  duplicate. Which topics are wanted and confirmed, and when a mark is due, is the
  listening state (:mod:`.listening`, sans I/O).
- **Faults**: while the Pub/Sub connection is down, the backend is unhealthy (publishes
  and new streams are refused at once). On reconnecting it subscribes again, marks,
  and reads every local topic's stream from the last number it delivered up to the mark,
  delivering what it missed before anything newer (the order of what arrives, what is
  held meanwhile and the catch-up are :mod:`.delivery`, sans I/O; the reads of the
  streams, for a catch-up and for a client's replay, :mod:`.history`). Streams of topics whose missed
  events Redis no longer holds, or all streams if Redis lost its history (a new epoch),
  are ended with a ``retry:``: their clients reconnect with their ``Last-Event-ID`` and
  are told (``rawsse-lost``). A Redis back from a copy older than what this process
  delivered (a counter behind its watermark) starts a new epoch the same way
  (:mod:`.scripts`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from rawsse.backends.base import (
    EARLIEST,
    EVERY_TOPIC,
    Backend,
    HubLink,
    Record,
    Replay,
    reserved_id,
)
from rawsse.backends.redis.calls import ScriptCalls
from rawsse.backends.redis.delivery import Delivery
from rawsse.backends.redis.history import HistoryReads
from rawsse.backends.redis.listening import Listening
from rawsse.backends.redis.marking import Marking, Waiter
from rawsse.backends.redis.pubsub import PubSubConnection
from rawsse.backends.redis.roster import RedisRoster
from rawsse.backends.redis.scripts import MARK, PUBLISH, READ, TOPICS
from rawsse.backends.redis.wire import Keys, decode_message, encode_body
from rawsse.errors import BackendUnavailable, DuplicateId, InvalidEvent
from rawsse.events import EventParts
from rawsse.ids import PLAIN, IdForm

__all__ = ["RedisBackend"]

logger = logging.getLogger("rawsse.redis")

#: Publisher-chosen ids remembered (to resolve a ``Last-Event-ID`` and refuse a
#: duplicate), in all: the oldest are forgotten first. A client resuming from a
#: forgotten one is told ``rawsse-lost`` (``unknown``).
DEFAULT_IDS_KEPT = 100_000

#: A topic whose last local subscriber left stays subscribed this long: a client that
#: reconnects (or a page reload) then finds its topic live at once.
DEFAULT_LINGER = 10.0


class RedisBackend(Backend):
    """Events ordered, kept and delivered through Redis.

    Args:
        url: ``redis://[:password@]host:port/db`` (or ``rediss://``, ``unix://``).
        history: events kept per topic (the stream is trimmed exactly to it).
        prefix: the prefix of every key and channel; servers sharing events share it.
        timeout: seconds a call to Redis may take before a publish or a new stream is
            refused (503), and the interval of the Pub/Sub connection's pings.
        ids_kept: publisher-chosen ids remembered, in all.
        linger: seconds a topic stays subscribed after its last local subscriber left.
        ids: how the hub's ids are written (:mod:`rawsse.ids`): ``EPOCH-SEQ`` by
            default; every server sharing a Redis must write them alike.
    """

    synchronous = False

    def __init__(
        self,
        url: str,
        *,
        history: int = 1000,
        prefix: str = "rawsse:",
        timeout: float = 1.0,
        ids_kept: int = DEFAULT_IDS_KEPT,
        linger: float = DEFAULT_LINGER,
        ids: IdForm = PLAIN,
    ) -> None:
        super().__init__()
        self.url = url
        self.history = history
        self.keys = Keys(prefix)
        self._timeout = timeout
        self._ids_kept = ids_kept
        self._linger = linger
        self._client = Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            protocol=2,
        )
        self._calls = ScriptCalls(
            self._client,
            {"publish": PUBLISH, "read": READ, "mark": MARK, "topics": TOPICS},
            timeout=timeout,
        )
        token = secrets.token_hex(8)
        self._marks_channel = self.keys.marks(token)
        self._marks_channel_bytes = self._marks_channel.encode()
        self._every_channel_bytes = self.keys.every_channel.encode()
        #: The name of this process's Pub/Sub connection in ``CLIENT LIST``.
        self.listener_name = "rawsse-" + token
        #: Every server's active Mercure subscriptions.
        self._roster = RedisRoster(self._client, self.keys.roster(token), self.keys.rosters)
        self.roster = self._roster
        self._pubsub = PubSubConnection(
            url,
            name=self.listener_name,
            timeout=timeout,
            on_connected=self._on_connected,
            on_subscribed=self._on_subscribed,
            on_message=self._on_message,
            on_lost=self._on_lost,
        )
        # What this process listens to and when it may mark, and the order of what it
        # delivers (sans I/O: listening.py, delivery.py).
        self._listening: Listening[Waiter] = Listening()
        self._delivery = Delivery(self._listening, ids)
        self._reads = HistoryReads(self._calls, self.keys, self._delivery)
        self._marking = Marking(
            self._calls,
            self.keys,
            self._marks_channel,
            self._pubsub,
            self._listening,
            self._delivery,
            timeout,
        )
        self._lost_at: float | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._became_live: asyncio.Event | None = None

    # -- life cycle ---------------------------------------------------------------------

    @property
    def epoch(self) -> str:  # type: ignore[override]  # read-only here
        """Known once connected; ``00000000`` until then."""
        return self._delivery.epoch

    @property
    def watermark(self) -> int:
        """Every event up to this number on a subscribed topic has been delivered."""
        return self._delivery.watermark

    @property
    def healthy(self) -> bool:
        """Connected, subscribed and caught up."""
        return self._delivery.live

    def attach(self, hub: HubLink) -> None:
        """Deliver what Redis orders to ``hub``."""
        super().attach(hub)
        self._delivery.attach(hub)

    async def start(self) -> None:
        """Connect and start delivering. Waits up to ``timeout`` for Redis; if it does not
        answer, the server starts anyway (unready) and the backend keeps trying."""
        loop = asyncio.get_running_loop()
        self._became_live = asyncio.Event()
        self._spawn(self._pubsub.run())
        self._sweeper = loop.call_later(self._linger / 2, self._sweep)
        try:
            await asyncio.wait_for(self._became_live.wait(), self._timeout)
        except asyncio.TimeoutError:
            logger.warning(
                "redis at %s does not answer yet; retrying in the background", self._where()
            )
        else:
            logger.info("redis backend at %s, epoch %s", self._where(), self.epoch)

    async def close(self) -> None:
        """Stop delivering; fail what waits on Redis; close the connections."""
        self._delivery.live = False
        if self._sweeper is not None:
            self._sweeper.cancel()
        error = BackendUnavailable("closing")
        self._calls.fail_pending(error)
        self._marking.fail(error)
        await self._pubsub.close()
        await self._roster.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        await self._client.aclose()

    def _where(self) -> str:
        kwargs = self._client.connection_pool.connection_kwargs
        return f"{kwargs.get('host', kwargs.get('path', '?'))}:{kwargs.get('port', '')}"

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- publishing ---------------------------------------------------------------------

    def publish(
        self,
        topics: tuple[str, ...],
        parts: EventParts,
        *,
        id: str | None,
        private: bool = False,
        reuse_id: bool = False,
    ) -> Awaitable[Record]:
        """Send the event to Redis (pipelined with other publishes); the record, with
        the id Redis gave it, once Redis has answered.

        Raises:
            InvalidEvent: ``id`` has the reserved ``EPOCH-SEQ`` shape (at once), or is
                already kept and not ``reuse_id`` (from the awaitable).
            BackendUnavailable: Redis cannot be reached now, or did not answer within
                ``timeout`` (nothing was published).
        """
        if id is not None and reserved_id(id):
            raise InvalidEvent(
                "ids shaped like '0123abcd-1', and 'earliest', are reserved for the hub"
            )
        if not self._delivery.live:
            raise BackendUnavailable("redis unavailable")
        keys = self.keys
        body = encode_body(topics, parts, id, private)
        args: list[Any] = [
            self._delivery.candidate,
            self.history,
            self._ids_kept,
            id or "",
            body,
            self.epoch,
            self.watermark,
            "1" if reuse_id else "",
        ]
        for topic in topics:
            args += (topic, keys.channel(topic))
        streams = [keys.stream(topic) for topic in topics]
        answer = self._calls.call(
            "publish",
            [keys.counter, keys.epoch, keys.ids, keys.trimmed, keys.topics, *streams],
            args,
        )
        return self._published(answer, topics, parts, id, private)

    async def _published(
        self,
        answer: Awaitable[Any],
        topics: tuple[str, ...],
        parts: EventParts,
        id: str | None,
        private: bool,
    ) -> Record:
        raw_epoch, seq = await answer
        epoch = raw_epoch.decode("ascii")
        self._delivery.used(epoch)  # the next new epoch differs from one Redis took
        if seq == 0:
            raise DuplicateId(f"id {id!r} is already in the history")
        wire_id = self._delivery.ids.make(epoch, seq) if id is None else id
        return Record(seq, wire_id, topics, parts.frame(wire_id), 0.0, private)

    def history_size(self) -> int:
        """0: the history is in Redis, not in this process (see Redis's own figures)."""
        return 0

    # -- subscribing ---------------------------------------------------------------------

    def listen(
        self, topics: Sequence[str], last_event_id: str | None, *, every: bool = False
    ) -> Awaitable[None] | None:
        """``None`` when every topic is live here already (and the client is not ahead of
        this process); else subscribe to what is new and wait for a mark after it.
        ``every`` topic is listened to with one pattern subscription of every channel
        (an event arriving on both is delivered once, by its number)."""
        if not self._delivery.live:
            raise BackendUnavailable("redis unavailable")
        loop = asyncio.get_running_loop()
        listening = self._listening
        if every:
            topics = [*topics, EVERY_TOPIC]
        new = listening.want(topics, loop.time())  # swept unless a subscriber joins them
        if new:
            self._subscribe(new)
        elif listening.live(topics) and not self._delivery.behind(last_event_id):
            return None
        return self._marking.wait(topics)

    def unlisten(self, topic: str) -> None:
        """The topic lost its local subscribers: unsubscribe after ``linger``."""
        self._listening.idle(topic, asyncio.get_running_loop().time())

    def position_id(self, seq: int) -> str:
        """The hub's own id of number ``seq`` or of this process's watermark, whichever
        is later (``earliest`` before either)."""
        delivery = self._delivery
        seq = max(seq, delivery.watermark)
        return delivery.ids.make(delivery.epoch, seq) if seq > 0 else EARLIEST

    def kept_topics(self) -> Awaitable[list[str]]:
        """Every topic published to (listed in Redis), for a replay by selectors."""
        return self._reads.topics_after(-1)

    def _subscribe(self, topics: Sequence[str]) -> None:
        self._pubsub.subscribe(self.keys.channel(topic) for topic in topics if topic)
        if EVERY_TOPIC in topics:
            self._pubsub.subscribe([self.keys.every_channel], pattern=True)

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        dropped = self._listening.sweep(loop.time(), self._linger, self.hub.has_topic)
        if dropped:
            self._pubsub.unsubscribe([self.keys.channel(topic) for topic in dropped if topic])
            if EVERY_TOPIC in dropped:
                self._pubsub.unsubscribe([self.keys.every_channel], pattern=True)
        self._sweeper = loop.call_later(self._linger / 2, self._sweep)

    # -- the Pub/Sub connection's events ------------------------------------------------------

    def _on_connected(self) -> None:
        """A new connection: subscribe to everything again, then catch up."""
        self._delivery.connected()
        topics = self._listening.connected()  # a catch-up mark is needed once subscribed
        self._pubsub.subscribe([self._marks_channel])
        self._subscribe(topics)

    def _on_lost(self, exc: BaseException) -> None:
        if self._delivery.live or self._lost_at is None:
            self._lost_at = asyncio.get_running_loop().time()
            logger.warning(
                "lost redis at %s (%s); %d streams on %d topics kept, publishes refused "
                "until it is back",
                self._where(),
                str(exc) or type(exc).__name__,
                self.hub.subscriber_count,
                sum(1 for t in self._listening.wanted if self.hub.has_topic(t)),
            )
        self._delivery.live = False

    def _on_subscribed(self, channel: bytes) -> None:
        if channel == self._marks_channel_bytes:
            self._listening.marks_subscribed = True
        elif channel == self._every_channel_bytes:
            self._listening.subscribed(EVERY_TOPIC)
        else:
            self._listening.subscribed(self.keys.topic_of(channel.decode("utf-8")))
        self._marking.check_soon()

    def _on_message(self, channel: bytes, message: bytes) -> None:
        if channel != self._marks_channel_bytes:
            self._delivery.message(message)
            return
        before = self._delivery.mark(message)
        if before is not None:
            self._spawn(self._catch_up(message, before))

    async def _catch_up(self, mark: bytes, before: int) -> None:
        """Read what the local topics missed while disconnected, up to the mark; then
        go live with what arrived meanwhile (:meth:`Delivery.caught_up`)."""
        delivery = self._delivery
        connection = delivery.connections
        missed: dict[int, Record] = {}
        holes: list[str] = []
        after = delivery.catch_up_from(mark)
        if after is not None:
            _, upto, _ = decode_message(mark)
            try:
                missed, holes = await self._reads.missed(self._listening.wanted, after, upto)
            except BackendUnavailable as exc:
                logger.warning("catching up from redis failed (%s); reconnecting", exc)
                self._pubsub.drop()
                return
            if connection != delivery.connections:
                return  # the connection was lost meanwhile: the next one catches up
        caught_up = delivery.caught_up(mark, before, missed, holes)
        if self._lost_at is not None:
            logger.info(
                "redis back after %.1fs; %d missed events delivered",
                asyncio.get_running_loop().time() - self._lost_at,
                caught_up,
            )
            self._lost_at = None
        if self._became_live is not None:
            self._became_live.set()

    # -- replay ---------------------------------------------------------------------------------

    def replay(
        self, topics: Sequence[str], last_event_id: str | None, *, upto: int
    ) -> Replay | Awaitable[Replay]:
        """What a client that last saw ``last_event_id`` missed on ``topics``, read from
        the streams, up to what this process has delivered; decided as the memory
        backend decides (see :meth:`MemoryBackend.replay`)."""
        return self._reads.replay(topics, last_event_id, upto=upto)
