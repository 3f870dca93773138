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
  delivering what it missed before anything newer. Streams of topics whose missed
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
    OWN_ID,
    Backend,
    Record,
    Replay,
    lost_notice,
    merge_records,
    nothing,
)
from rawsse.backends.redis.calls import ScriptCalls
from rawsse.backends.redis.listening import Listening
from rawsse.backends.redis.pubsub import PubSubConnection
from rawsse.backends.redis.scripts import MARK, PUBLISH, READ
from rawsse.backends.redis.wire import Keys, decode_message, encode_body, record_of
from rawsse.errors import BackendUnavailable, InvalidEvent
from rawsse.events import EventParts

__all__ = ["RedisBackend"]

logger = logging.getLogger("rawsse.redis")

#: Publisher-chosen ids remembered (to resolve a ``Last-Event-ID`` and refuse a
#: duplicate), in all: the oldest are forgotten first. A client resuming from a
#: forgotten one is told ``rawsse-lost`` (``unknown``).
DEFAULT_IDS_KEPT = 100_000

#: A topic whose last local subscriber left stays subscribed this long: a client that
#: reconnects (or a page reload) then finds its topic live at once.
DEFAULT_LINGER = 10.0

#: Topics per read of their streams when catching up after a reconnect.
TOPICS_PER_READ = 200


class _Waiter:
    """A new subscriber's wait for its topics' subscriptions and the mark after them."""

    __slots__ = ("topics", "future", "token")

    def __init__(self, topics: Sequence[str], future: asyncio.Future[None]) -> None:
        self.topics = topics
        self.future = future
        self.token: int | None = None  # the mark that releases it, once sent


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
    ) -> None:
        super().__init__()
        self.url = url
        self.history = history
        self.keys = Keys(prefix)
        #: Known once connected; ``00000000`` until then.
        self.epoch = "00000000"
        #: Every event up to this number on a subscribed topic has been delivered.
        self.watermark = 0
        self._timeout = timeout
        self._ids_kept = ids_kept
        self._linger = linger
        self._live = False
        self._epoch_known = False
        self._candidate = secrets.token_hex(4)
        self._client = Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            protocol=2,
        )
        self._calls = ScriptCalls(
            self._client, {"publish": PUBLISH, "read": READ, "mark": MARK}, timeout=timeout
        )
        token = secrets.token_hex(8)
        self._marks_channel = self.keys.marks(token)
        self._marks_channel_bytes = self._marks_channel.encode()
        #: The name of this process's Pub/Sub connection in ``CLIENT LIST``.
        self.listener_name = "rawsse-" + token
        self._pubsub = PubSubConnection(
            url,
            name=self.listener_name,
            timeout=timeout,
            on_connected=self._on_connected,
            on_subscribed=self._on_subscribed,
            on_message=self._on_message,
            on_lost=self._on_lost,
        )
        # What this process listens to and when it may mark (sans I/O: listening.py).
        self._listening: Listening[_Waiter] = Listening()
        self._check_scheduled = False
        self._buffer: list[tuple[bool, bytes]] = []  # (is_mark, message) while not live
        self._lost_at: float | None = None
        self._connections = 0  # Pub/Sub connections made: a catch-up belongs to one
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._became_live: asyncio.Event | None = None

    # -- life cycle ---------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        """Connected, subscribed and caught up."""
        return self._live

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
        self._live = False
        if self._sweeper is not None:
            self._sweeper.cancel()
        error = BackendUnavailable("closing")
        self._calls.fail_pending(error)
        for waiter in self._listening.waiters:
            if not waiter.future.done():
                waiter.future.set_exception(error)
                waiter.future.exception()  # retrieved: whoever waits sees it, or no one
        self._listening.waiters.clear()
        await self._pubsub.close()
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
        self, topics: tuple[str, ...], parts: EventParts, *, id: str | None
    ) -> Awaitable[Record]:
        """Send the event to Redis (pipelined with other publishes); the record, with
        the id Redis gave it, once Redis has answered.

        Raises:
            InvalidEvent: ``id`` has the reserved ``EPOCH-SEQ`` shape (at once), or is
                already kept (from the awaitable).
            BackendUnavailable: Redis cannot be reached now, or did not answer within
                ``timeout`` (nothing was published).
        """
        if id is not None and OWN_ID.fullmatch(id):
            raise InvalidEvent("ids shaped like '0123abcd-1' are reserved for the hub")
        if not self._live:
            raise BackendUnavailable("redis unavailable")
        keys = self.keys
        body = encode_body(topics, parts, id)
        args: list[Any] = [
            self._candidate,
            self.history,
            self._ids_kept,
            id or "",
            body,
            self.epoch,
            self.watermark,
        ]
        for topic in topics:
            args += (topic, keys.channel(topic))
        streams = [keys.stream(topic) for topic in topics]
        answer = self._calls.call(
            "publish", [keys.counter, keys.epoch, keys.ids, keys.trimmed, *streams], args
        )
        return self._published(answer, topics, parts, id)

    async def _published(
        self, answer: Awaitable[Any], topics: tuple[str, ...], parts: EventParts, id: str | None
    ) -> Record:
        raw_epoch, seq = await answer
        epoch = raw_epoch.decode("ascii")
        if epoch == self._candidate:
            self._candidate = secrets.token_hex(4)  # used: the next new epoch differs
        if seq == 0:
            raise InvalidEvent(f"id {id!r} is already in the history")
        wire_id = f"{epoch}-{seq}" if id is None else id
        return Record(seq, wire_id, topics, parts.frame(wire_id))

    def history_size(self) -> int:
        """0: the history is in Redis, not in this process (see Redis's own figures)."""
        return 0

    # -- subscribing ---------------------------------------------------------------------

    def listen(self, topics: Sequence[str], last_event_id: str | None) -> Awaitable[None] | None:
        """``None`` when every topic is live here already (and the client is not ahead of
        this process); else subscribe to what is new and wait for a mark after it."""
        if not self._live:
            raise BackendUnavailable("redis unavailable")
        loop = asyncio.get_running_loop()
        listening = self._listening
        new = listening.want(topics, loop.time())  # swept unless a subscriber joins them
        if new:
            self._pubsub.subscribe(self.keys.channel(topic) for topic in new)
        elif listening.live(topics) and not self._ahead(last_event_id):
            return None
        waiter = _Waiter(topics, loop.create_future())
        listening.waiters.append(waiter)
        self._schedule_check()
        return self._wait(waiter)

    def _ahead(self, last_event_id: str | None) -> bool:
        """Whether the client may have seen events this process has not delivered yet
        (it comes from a server that is ahead): a mark first brings this process level."""
        if last_event_id is None:
            return False
        own = OWN_ID.fullmatch(last_event_id)
        if own is None:
            return True  # a publisher's id: its number is known only to Redis
        return own.group(1) == self.epoch and int(own.group(2)) > self.watermark

    async def _wait(self, waiter: _Waiter) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(waiter.future), self._timeout * 2)
        except asyncio.TimeoutError:
            raise BackendUnavailable("redis did not answer in time") from None
        finally:
            if waiter in self._listening.waiters:
                self._listening.waiters.remove(waiter)

    def unlisten(self, topic: str) -> None:
        """The topic lost its local subscribers: unsubscribe after ``linger``."""
        self._listening.idle(topic, asyncio.get_running_loop().time())

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        dropped = self._listening.sweep(loop.time(), self._linger, self.hub.has_topic)
        if dropped:
            self._pubsub.unsubscribe([self.keys.channel(topic) for topic in dropped])
        self._sweeper = loop.call_later(self._linger / 2, self._sweep)

    # -- the Pub/Sub connection's events ------------------------------------------------------

    def _on_connected(self) -> None:
        """A new connection: subscribe to everything again, then catch up."""
        self._connections += 1
        self._live = False
        self._buffer.clear()
        topics = self._listening.connected()  # a catch-up mark is needed once subscribed
        self._pubsub.subscribe([self._marks_channel, *map(self.keys.channel, topics)])

    def _on_lost(self, exc: BaseException) -> None:
        if self._live or self._lost_at is None:
            self._lost_at = asyncio.get_running_loop().time()
            logger.warning(
                "lost redis at %s (%s); %d streams on %d topics kept, publishes refused "
                "until it is back",
                self._where(),
                str(exc) or type(exc).__name__,
                self.hub.subscriber_count,
                sum(1 for t in self._listening.wanted if self.hub.has_topic(t)),
            )
        self._live = False

    def _on_subscribed(self, channel: bytes) -> None:
        if channel == self._marks_channel_bytes:
            self._listening.marks_subscribed = True
        else:
            self._listening.subscribed(self.keys.topic_of(channel.decode("utf-8")))
        self._schedule_check()

    def _schedule_check(self) -> None:
        if not self._check_scheduled:
            self._check_scheduled = True
            asyncio.get_running_loop().call_soon(self._check)

    def _check(self) -> None:
        """Send a mark if a catch-up or a waiter has all it needs subscribed."""
        self._check_scheduled = False
        if not self._pubsub.connected:
            return
        token = self._listening.mark_due()
        if token is not None:
            self._send_mark(token)

    def _send_mark(self, token: int) -> None:
        keys = self.keys
        args = [self._candidate, self._marks_channel, token, self.epoch, self.watermark]
        answer = self._calls.call("mark", [keys.counter, keys.epoch], args)
        answer.add_done_callback(lambda done: self._mark_sent(done, token))

    def _mark_sent(self, answer: asyncio.Future[Any], token: int) -> None:
        if answer.cancelled() or answer.exception() is None:
            return
        logger.debug("mark %d failed: %r", token, answer.exception())
        # Ask again later: whatever waited on this mark waits on a new one.
        self._listening.mark_failed(token)
        asyncio.get_running_loop().call_later(self._timeout / 4, self._schedule_check)

    def _on_message(self, channel: bytes, message: bytes) -> None:
        if channel == self._marks_channel_bytes:
            self._on_mark(message)
        elif self._live:
            self._deliver(message)
        else:
            self._buffer.append((False, message))

    def _deliver(self, message: bytes) -> None:
        epoch, seq, body = decode_message(message)
        if epoch != self.epoch:
            self._new_epoch(epoch)
        elif seq <= self.watermark:
            return  # the same event from another of its topics' channels
        self.watermark = seq
        self.deliver(record_of(epoch, seq, body))

    def _on_mark(self, message: bytes) -> None:
        token = int(message.rsplit(b" ", 1)[1])
        if self._listening.catches_up(token):
            self._spawn(self._catch_up(message, token, len(self._buffer)))
            return
        if not self._live:
            self._buffer.append((True, message))
            return
        self._marked(message)

    def _marked(self, message: bytes) -> None:
        """A mark reached this process: it has delivered everything up to the counter
        the mark carries; release the subscribers that waited for it."""
        epoch, counter, token_bytes = decode_message(message)
        if epoch != self.epoch:
            self._new_epoch(epoch)
        self.watermark = max(self.watermark, counter)
        for waiter in self._listening.released(int(token_bytes)):
            if not waiter.future.done():
                waiter.future.set_result(None)

    def _new_epoch(self, epoch: str) -> None:
        if epoch == self._candidate:
            self._candidate = secrets.token_hex(4)  # used: the next new epoch differs
        ended = self.hub.end_streams(None, "history_gap")
        logger.warning(
            "redis lost its history (epoch %s, was %s): %d streams ended so that their "
            "clients reconnect and are told",
            epoch,
            self.epoch,
            ended,
        )
        self.epoch = epoch
        self.watermark = 0

    # -- catching up ------------------------------------------------------------------------

    async def _catch_up(self, mark: bytes, token: int, before: int) -> None:
        """Deliver what the local topics missed while disconnected, up to the mark; then
        go live with what arrived meanwhile.

        The first ``before`` messages held arrived before the mark: they are among what
        it covers, delivered here if missed, else left (of an epoch the mark has
        replaced, they must not be taken for a newer one)."""
        epoch, counter, _ = decode_message(mark)
        connection = self._connections
        missed: dict[int, Record] = {}
        if not self._epoch_known:
            self._epoch_known = True
            self.epoch, self.watermark = epoch, counter
        elif epoch != self.epoch:
            self._new_epoch(epoch)
            self.watermark = counter
        elif counter > self.watermark:
            try:
                holes = await self._read_missed(counter, missed)
            except BackendUnavailable as exc:
                logger.warning("catching up from redis failed (%s); reconnecting", exc)
                self._pubsub.drop()
                return
            if connection != self._connections:
                return  # the connection was lost meanwhile: the next one catches up
            if holes:
                ended = self.hub.end_streams(holes, "history_gap")
                logger.warning(
                    "redis no longer holds events %d topics missed: %d streams ended so "
                    "that their clients reconnect and are told",
                    len(holes),
                    ended,
                )
        for is_mark, message in self._buffer[:before]:
            if not is_mark:
                m_epoch, seq, body = decode_message(message)
                if m_epoch == self.epoch and self.watermark < seq <= counter:
                    missed.setdefault(seq, record_of(m_epoch, seq, body))
        for seq in sorted(missed):
            if seq > self.watermark:
                self.watermark = seq
                self.deliver(missed[seq])
        self.watermark = max(self.watermark, counter)
        del self._buffer[:before]
        self._go_live(len(missed), token)

    async def _read_missed(self, upto: int, into: dict[int, Record]) -> list[str]:
        """Read every wanted topic's events after the watermark up to ``upto`` into
        ``into``; return the topics with a hole (events trimmed that were not delivered)."""
        topics = sorted(self._listening.wanted)
        chunks = [topics[i : i + TOPICS_PER_READ] for i in range(0, len(topics), TOPICS_PER_READ)]
        answers = [self._read(chunk, "", self.watermark, upto) for chunk in chunks]
        holes: list[str] = []
        for chunk, answer in zip(chunks, answers, strict=True):
            _, trimmed, entries, _where = await answer
            for topic, trimmed_seq, topic_entries in zip(chunk, trimmed, entries, strict=True):
                if trimmed_seq > self.watermark:
                    holes.append(topic)
                for record in self._records(topic_entries):
                    into.setdefault(record.seq, record)
        return holes

    def _go_live(self, caught_up: int, token: int) -> None:
        self._live = True
        if self._lost_at is not None:
            logger.info(
                "redis back after %.1fs; %d missed events delivered",
                asyncio.get_running_loop().time() - self._lost_at,
                caught_up,
            )
            self._lost_at = None
        buffered, self._buffer = self._buffer, []
        for is_mark, message in buffered:
            if is_mark:
                self._marked(message)
            else:
                self._deliver(message)
        self._marked(b"%s %d %d" % (self.epoch.encode(), self.watermark, token))
        if self._became_live is not None:
            self._became_live.set()

    # -- replay ---------------------------------------------------------------------------------

    def _read(self, topics: Sequence[str], uid: str, after: int, upto: int) -> Awaitable[Any]:
        keys = self.keys
        return self._calls.call(
            "read",
            [keys.trimmed, keys.ids, *map(keys.stream, topics)],
            [uid, after, upto, *topics],
        )

    def _records(self, entries: list[Any]) -> list[Record]:
        epoch = self.epoch
        return [
            record_of(epoch, int(entry_id.split(b"-", 1)[0]), fields[1])
            for entry_id, fields in entries
        ]

    def replay(
        self, topics: Sequence[str], last_event_id: str | None, *, upto: int
    ) -> Replay | Awaitable[Replay]:
        """What a client that last saw ``last_event_id`` missed on ``topics``, read from
        the streams, up to what this process has delivered; decided as the memory
        backend decides (see :meth:`MemoryBackend.replay`)."""
        if last_event_id is None:
            return Replay(None, nothing())
        upto = max(upto, self.watermark)
        own = OWN_ID.fullmatch(last_event_id)
        if own is None:
            return self._read_replay(topics, last_event_id, last_event_id, 0, upto, None)
        if own.group(1) != self.epoch:
            return self._read_replay(topics, last_event_id, "", 0, upto, "epoch")
        after = int(own.group(2))
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
        evicted = max(trimmed, default=0)
        if reason is None and evicted > after:
            reason = "expired"
        if reason is None:
            return Replay(None, records)
        return Replay(self._lost(reason, last_event_id, max(after, evicted)), records)

    def _lost(self, reason: str, last_event_id: str, resume_seq: int) -> bytes:
        return lost_notice(reason, last_event_id, f"{self.epoch}-{resume_seq}")
