"""The order of what reaches one process from Redis, sans I/O: the epoch and the
watermark, what is held while the process is not live, the catch-up after a
(re)connection and going live.

Messages and marks arrive on the Pub/Sub connection (:mod:`.pubsub`). While live, an
event is handed to the hub once (a copy from another of its topics' channels is
dropped by its number) and a mark releases the streams that waited for it. After a
(re)connection nothing is live: messages and marks are held until the catch-up's
mark arrives; then what the local topics missed (read from the streams by the
backend, the only I/O in a catch-up) and the held messages before the mark are
delivered in order, once each, and the rest of what was held follows as it would
have live. An epoch other than the known one means Redis lost its history (or came
back from an older copy): every local stream is ended so that its client reconnects
and is told.

:class:`~rawsse.backends.redis.backend.RedisBackend` owns the connection, the reads and
the clock, and tells this unit what arrived; nothing here imports asyncio or touches
a socket.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from typing import Generic, Protocol, TypeVar

from rawsse.backends.base import HubLink, Record
from rawsse.backends.redis.listening import Listening, Waiting
from rawsse.backends.redis.wire import decode_message, record_of
from rawsse.ids import PLAIN, IdForm, parse_own

__all__ = ["Delivery", "Releasable"]

logger = logging.getLogger("rawsse.redis")


class Releasable(Waiting, Protocol):
    """A stream's wait that a mark ends."""

    def release(self) -> None:
        """The mark it waited for reached the process: the stream may join."""


R = TypeVar("R", bound=Releasable)


class Delivery(Generic[R]):
    """What one process delivered from Redis, and what it holds (see the module
    docstring).

    Attributes:
        epoch: the epoch of the history this process delivers from (``00000000`` until
            the first mark).
        watermark: every event up to this number on a subscribed topic is delivered.
        candidate: the epoch this process proposes if Redis has none (a fresh one once
            it was used, so that the next new epoch differs).
        live: connected, subscribed and caught up; false, what arrives is held.
        connections: Pub/Sub connections made (a catch-up belongs to one).
    """

    __slots__ = ("ids", "epoch", "watermark", "candidate", "live", "connections",
                 "_held", "_epoch_known", "_hub", "_listening")  # fmt: skip

    def __init__(self, listening: Listening[R], ids: IdForm = PLAIN) -> None:
        #: How the hub's ids are written (:mod:`rawsse.ids`).
        self.ids = ids
        self.epoch = "00000000"
        self.watermark = 0
        self.candidate = secrets.token_hex(4)
        self.live = False
        self.connections = 0
        self._held: list[tuple[bool, bytes]] = []  # (is_mark, message) while not live
        self._epoch_known = False
        self._hub: HubLink | None = None
        self._listening = listening

    def attach(self, hub: HubLink) -> None:
        """Deliver to ``hub`` from now on."""
        self._hub = hub

    @property
    def hub(self) -> HubLink:
        if self._hub is None:
            raise RuntimeError("backend not attached to a hub")
        return self._hub

    def behind(self, last_event_id: str | None) -> bool:
        """Whether a client that last saw ``last_event_id`` may have seen events this
        process has not delivered yet (it comes from a server that is ahead): a mark
        first brings this process level."""
        if last_event_id is None:
            return False
        own = parse_own(last_event_id)
        if own is None:
            return True  # a publisher's id: its number is known only to Redis
        epoch, seq = own
        return epoch == self.epoch and seq > self.watermark

    def used(self, epoch: str) -> None:
        """Redis answered with ``epoch``: if it is the candidate, draw a new one."""
        if epoch == self.candidate:
            self.candidate = secrets.token_hex(4)

    # -- what the connection reports ------------------------------------------------------

    def connected(self) -> None:
        """A new connection: not live until its catch-up; nothing held from before."""
        self.connections += 1
        self.live = False
        self._held.clear()

    def message(self, message: bytes) -> None:
        """An event arrived on a topic's channel."""
        if self.live:
            self._deliver(message)
        else:
            self._held.append((False, message))

    def mark(self, message: bytes) -> int | None:
        """A mark arrived on the process's own channel. If it is the catch-up's, the
        number of messages held before it, for :meth:`catch_up_from` and
        :meth:`caught_up`; else ``None`` (handled or held)."""
        token = int(message.rsplit(b" ", 1)[1])
        if self._listening.catches_up(token):
            return len(self._held)
        if self.live:
            self._marked(message)
        else:
            self._held.append((True, message))
        return None

    # -- catching up -------------------------------------------------------------------------

    def catch_up_from(self, mark: bytes) -> int | None:
        """Where the catch-up for ``mark`` reads from: the watermark if events were
        published since, for the caller to read up to the mark (then
        :meth:`caught_up`); ``None`` if there is nothing to read (the first mark, or a
        new epoch)."""
        epoch, counter, _ = decode_message(mark)
        if not self._epoch_known:
            self._epoch_known = True
            self.epoch, self.watermark = epoch, counter
        elif epoch != self.epoch:
            self.new_epoch(epoch)
            self.watermark = counter
        elif counter > self.watermark:
            return self.watermark
        return None

    def caught_up(
        self,
        mark: bytes,
        before: int,
        missed: Mapping[int, Record],
        holes: Sequence[str],
    ) -> int:
        """Deliver what the local topics ``missed`` up to ``mark`` (read from the
        streams, by number), end the streams of the topics with ``holes``, and go
        live with what was held; return how many missed events were delivered.

        The first ``before`` messages held arrived before the mark: they are among what
        it covers, delivered here if missed, else left (of an epoch the mark has
        replaced, they must not be taken for a newer one)."""
        _, counter, token = decode_message(mark)
        if holes:
            ended = self.hub.end_streams(holes, "history_gap")
            logger.warning(
                "redis no longer holds events %d topics missed: %d streams ended so "
                "that their clients reconnect and are told",
                len(holes),
                ended,
            )
        ordered = dict(missed)
        for is_mark, message in self._held[:before]:
            if not is_mark:
                m_epoch, seq, body = decode_message(message)
                if m_epoch == self.epoch and self.watermark < seq <= counter:
                    ordered.setdefault(seq, record_of(m_epoch, seq, body, self.ids.make))
        deliver = self.hub.dispatch
        for seq in sorted(ordered):
            if seq > self.watermark:
                self.watermark = seq
                deliver(ordered[seq])
        self.watermark = max(self.watermark, counter)
        del self._held[:before]
        self._go_live(int(token))
        return len(ordered)

    def _go_live(self, token: int) -> None:
        self.live = True
        held, self._held = self._held, []
        for is_mark, message in held:
            if is_mark:
                self._marked(message)
            else:
                self._deliver(message)
        self._marked(b"%s %d %d" % (self.epoch.encode(), self.watermark, token))

    # -- live --------------------------------------------------------------------------------

    def _deliver(self, message: bytes) -> None:
        epoch, seq, body = decode_message(message)
        if epoch != self.epoch:
            self.new_epoch(epoch)
        elif seq <= self.watermark:
            return  # the same event from another of its topics' channels
        self.watermark = seq
        self.hub.dispatch(record_of(epoch, seq, body, self.ids.make))

    def _marked(self, message: bytes) -> None:
        """A mark reached this process: it has delivered everything up to the counter
        the mark carries; release the streams that waited for it."""
        epoch, counter, token = decode_message(message)
        if epoch != self.epoch:
            self.new_epoch(epoch)
        self.watermark = max(self.watermark, counter)
        for waiter in self._listening.released(int(token)):
            waiter.release()

    def new_epoch(self, epoch: str) -> None:
        """Redis's history is not the one this process delivered from: end every local
        stream (their clients reconnect and are told), and start over at ``epoch``."""
        self.used(epoch)
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
