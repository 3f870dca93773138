"""What every backend does, and what the hub may ask of it.

A backend gives each event its sequence number and wire id (so it orders events), keeps
the bounded history that replay reads, answers "what did a client with this
Last-Event-ID miss?", starts and closes with the server, and says whether it is healthy.
It hands every event it orders to the hub, once, through the ``deliver`` callback it is
attached to: the memory backend at once, a remote one when the event comes back from
the shared store (so a process does not also deliver what it published itself).

The hub encodes an event once, without its id (:class:`rawsse.events.EventParts`); the
backend adds the id and stores the record. ``publish`` and ``replay`` may return an
awaitable, so that a backend that needs a round trip fits; the memory backend returns
plain values, and the hub keeps its synchronous fast path for them.

Backends know nothing about HTTP or subscribers.
"""

from __future__ import annotations

import heapq
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Protocol

from rawsse.events import RESERVED_EVENT_PREFIX, EventParts, encode_event
from rawsse.ids import parse_own

__all__ = [
    "LOST_EVENT",
    "NOTHING",
    "EARLIEST",
    "EVERY_TOPIC",
    "OWN_ID",
    "Backend",
    "HubLink",
    "Record",
    "Replay",
    "Roster",
    "lost_notice",
    "merge_records",
    "nothing",
]

#: Name of the event that tells a client its reconnection skipped events we no longer
#: have (or cannot place). Its data is a JSON object: ``reason`` (``expired``: older than
#: the history; ``epoch``: the id is from before a restart; ``unknown``: not an id we
#: know), ``last_event_id`` (what the client sent) and ``resume_id`` (the id the client
#: is positioned at from now on, also the event's own ``id`` field).
LOST_EVENT = RESERVED_EVENT_PREFIX + "lost"


#: The shape of the plain ids backends assign (``EPOCH-SEQ``). Every form of the hub's
#: ids (:mod:`rawsse.ids`) is reserved for it: a publisher may choose none.
OWN_ID = re.compile(r"([0-9a-f]{8})-([0-9]{1,19})")

#: The last event id that asks for every event kept (Mercure's); no publisher may take it.
EARLIEST = "earliest"

#: What a process listens to, beside topic names, for subscribers reading selectors
#: (Mercure's ``*`` and URI templates): every topic. Empty, so never a topic's name.
EVERY_TOPIC = ""


def reserved_id(id: str) -> bool:
    """Whether a publisher may not give its event ``id``: the hub's own forms
    (:mod:`rawsse.ids`), or :data:`EARLIEST`."""
    return id == EARLIEST or parse_own(id) is not None


class Record:
    """One ordered event: its place in the order, wire id, topics and final bytes, and
    whether it is private (Mercure mode: only subscribers whose grants cover one of its
    topics may receive it)."""

    __slots__ = ("seq", "id", "topics", "frame", "at", "private")

    def __init__(
        self,
        seq: int,
        id: str,
        topics: tuple[str, ...],
        frame: bytes,
        at: float = 0.0,
        private: bool = False,
    ) -> None:
        self.seq = seq
        self.id = id
        self.topics = topics
        self.frame = frame
        #: ``time.monotonic()`` when it was published, where a backend keeps it by age.
        self.at = at
        self.private = private


@dataclass(frozen=True, slots=True)
class Replay:
    """What a reconnecting client is sent before the live stream: a lost notice (or
    ``None``) then ``records`` in order.

    ``records`` is an iterator, read as the client drains what it is sent: merging a
    long history of many topics costs tens of milliseconds, which are spread over the
    replay's pages instead of being spent at once.
    """

    lost: bytes | None
    records: Iterator[Record]


#: The records of a replay with nothing to send: one exhausted iterator, shared (it stays
#: exhausted), so that a stream with nothing to replay can skip the replay machinery.
NOTHING: Iterator[Record] = iter(())


def nothing() -> Iterator[Record]:
    """The records of a replay with nothing to send."""
    return NOTHING


def lost_notice(reason: str, last_event_id: str, resume_id: str) -> bytes:
    """The ``rawsse-lost`` event (see :data:`LOST_EVENT`)."""
    payload = json.dumps({"reason": reason, "last_event_id": last_event_id, "resume_id": resume_id})
    return encode_event(payload, event=LOST_EVENT, id=resume_id)


def merge_records(kept: Sequence[Sequence[Record]]) -> Iterator[Record]:
    """Records of several topics (each list in order) in one order, each once (an event
    on several topics is in several lists)."""
    if not kept:
        return nothing()
    if len(kept) == 1:
        return iter(kept[0])
    return _once_each(heapq.merge(*kept, key=_SEQ))


_SEQ = attrgetter("seq")


def _once_each(records: Iterable[Record]) -> Iterator[Record]:
    last = -1
    for record in records:
        if record.seq != last:
            last = record.seq
            yield record


class Roster(Protocol):
    """The documents of every server's active Mercure subscriptions, where a backend
    shares them between servers (:class:`rawsse.backends.redis.roster.RedisRoster`);
    those of a server that stopped without saying so are forgotten soon."""

    def add(self, key: str, document: str) -> None:
        """This process's subscription ``key`` is active, described by ``document``."""

    def remove(self, key: str) -> None:
        """It ended."""

    def listing(self) -> Awaitable[list[str]]:
        """Every server's active subscriptions' documents (JSON).

        Raises:
            BackendUnavailable: they cannot be read now.
        """


class HubLink(Protocol):
    """What a backend may ask of the hub it is attached to."""

    def dispatch(self, record: Record) -> None:
        """Deliver ``record`` to the local subscribers of its topics."""

    def end_streams(self, topics: Collection[str] | None, reason: str) -> int:
        """End the local streams reading any of ``topics`` (all when ``None``), telling
        each client to reconnect soon; return how many. A backend does this when it
        cannot fill a hole in what it delivered: the client's reconnection with its
        ``Last-Event-ID`` then gets the ``rawsse-lost`` notice and what is kept."""

    def has_topic(self, topic: str) -> bool:
        """Whether ``topic`` has local subscribers."""

    @property
    def subscriber_count(self) -> int:
        """How many local streams are subscribed (for logs)."""


def _not_attached(record: Record) -> None:
    raise RuntimeError("backend not attached to a hub")


class Backend(ABC):
    """The interface between the hub and where events are ordered and kept.

    Attributes:
        epoch: eight hex digits that change when the history is lost, so that ids from
            before are recognised (``rawsse-lost`` with ``epoch``).
    """

    epoch: str

    #: Whether ``publish`` and ``replay`` return plain values (never awaitables), so
    #: that :meth:`Hub.publish` can be called without awaiting.
    synchronous = True

    #: Where every server's active Mercure subscriptions are listed, when servers share
    #: the backend (``None``: each lists its own).
    roster: Roster | None = None

    def __init__(self) -> None:
        self.deliver: Callable[[Record], None] = _not_attached

    def attach(self, hub: HubLink) -> None:
        """Hand every ordered event to ``hub.dispatch`` from now on."""
        self.hub = hub
        self.deliver = hub.dispatch

    def listen(
        self, topics: Sequence[str], last_event_id: str | None, *, every: bool = False
    ) -> Awaitable[None] | None:
        """Get ready to deliver ``topics`` (and every topic if ``every``: the
        subscriber reads selectors) to a new local subscriber that last saw
        ``last_event_id``: ``None`` when it may join now, else something to await
        first (a remote backend subscribing to the topics and placing itself in the
        order, so that the subscriber's replay and live stream meet without a hole).

        Raises:
            BackendUnavailable: the backend cannot deliver now.
        """
        return None

    def expire(self, now: float | None = None) -> None:  # noqa: B027 - optional hook
        """Forget what has aged past the backend's limits (the server calls it every few
        seconds)."""

    def unlisten(self, topic: str) -> None:  # noqa: B027 - optional hook
        """``topic`` has no local subscribers any more (:data:`EVERY_TOPIC`: no local
        subscriber reads selectors any more)."""

    @property
    def healthy(self) -> bool:
        """Whether events can be published and delivered now (``/readyz``,
        ``rawsse_backend_up``)."""
        return True

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect and begin delivering; called when the server starts."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Stop delivering and let go of connections; called when the server stops."""

    @abstractmethod
    def publish(
        self,
        topics: tuple[str, ...],
        parts: EventParts,
        *,
        id: str | None,
        private: bool = False,
        reuse_id: bool = False,
    ) -> Record | Awaitable[Record]:
        """Order, store and deliver one event; return its record.

        Args:
            topics: valid topic names.
            parts: the event encoded but for its id.
            id: the publisher's id (already checked as a field), or ``None`` for one
                the backend assigns.
            private: whether only subscribers granted one of ``topics`` may receive it
                (kept with it, for replay too).
            reuse_id: take ``id`` even if an event kept has it (Mercure's rule); a
                resume from it then starts after this event.

        Raises:
            InvalidEvent: ``id`` is reserved, or already in the history (unless
                ``reuse_id``).
        """

    @abstractmethod
    def replay(
        self, topics: Sequence[str], last_event_id: str | None, *, upto: int
    ) -> Replay | Awaitable[Replay]:
        """What a client that last saw ``last_event_id`` missed on ``topics``, up to
        and including sequence number ``upto`` (what the hub had delivered when the
        client joined; later events reach it live)."""

    def resume_anchor(
        self, topics: Sequence[str], last_event_id: str, visible: Callable[[Record], bool]
    ) -> str | None:
        """``last_event_id`` if a client resuming from it on ``topics`` will be sent
        what follows it directly: the event is kept there and ``visible``, and so is
        the first kept after it (or none is); else ``None`` (the client may have lost
        events, or may not learn of one it cannot read). What Mercure's ``Last-Event-ID``
        response header tells; a backend that cannot tell cheaply says ``None``."""
        return None

    def position_id(self, seq: int) -> str:
        """An id a client may resume from to be sent every event after number ``seq``
        (what this process has delivered, if it knows more), or :data:`EARLIEST` when
        nothing was delivered yet: the ``lastEventID`` of Mercure's subscription API."""
        return EARLIEST

    def kept_topics(self) -> Iterable[str] | Awaitable[Iterable[str]] | None:
        """The topics with events kept, for the replay of a subscriber reading
        selectors (or something to await for them, from a remote backend); ``None``
        when the backend cannot list them."""
        return None

    @abstractmethod
    def history_size(self) -> int:
        """Events kept, counted once per topic that keeps them."""
