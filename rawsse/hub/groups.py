"""What the fan-out holds: topics and patterns with their pending events, and the
groups of subscribers that read them (:mod:`rawsse.hub.fanout` moves events through
them; :mod:`rawsse.hub.patterns` finds the patterns a topic matches)."""

from __future__ import annotations

from collections.abc import Iterator

from rawsse.backends.base import Record
from rawsse.hub.compressed import Lane
from rawsse.hub.subscriber import Subscriber
from rawsse.hub.views import View
from rawsse.matching.selectors import Selector

__all__ = ["Group", "Pattern", "Topic"]


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
    """Subscribers reading the same set of topics (and, in Mercure mode, the same
    view); they receive identical bytes."""

    __slots__ = ("key", "names", "topics", "view", "plain", "chunked", "lane", "wrote_at_tick")

    def __init__(
        self,
        key: frozenset[str],
        names: tuple[str, ...],
        topics: tuple[Topic | Pattern, ...],
        view: View | None = None,
    ) -> None:
        self.key = key
        #: The topic names, as the first subscriber gave them; every member shares this
        #: tuple instead of holding its own copy of the names.
        self.names = names
        self.topics = topics
        #: What it reads beyond ``names`` and which private events it may see
        #: (``None``: a native group, which sees no private event).
        self.view = view
        self.plain: set[Subscriber] = set()
        self.chunked: set[Subscriber] = set()
        #: Its compressed streams and their shared compressor, while it has any.
        self.lane: Lane[Subscriber] | None = None
        self.wrote_at_tick = -1

    def __len__(self) -> int:
        lane = self.lane
        return len(self.plain) + len(self.chunked) + (len(lane) if lane is not None else 0)

    def members(self) -> Iterator[Subscriber]:
        """Every subscriber of the group."""
        yield from self.plain
        yield from self.chunked
        if self.lane is not None:
            yield from self.lane.members()

    def add(self, subscriber: Subscriber) -> None:
        """A subscriber joins: by its framing, or compressed, into the lane."""
        sink = subscriber.compressed
        if sink is not None:
            if self.lane is None:
                self.lane = Lane()
            self.lane.add(subscriber, sink)
        else:
            (self.chunked if subscriber.chunked else self.plain).add(subscriber)

    def discard(self, subscriber: Subscriber) -> None:
        """A subscriber leaves (its lane goes with the last compressed stream)."""
        lane = self.lane
        if lane is not None and subscriber.compressed is not None:
            lane.discard(subscriber)
            if not len(lane):
                self.lane = None
        else:
            (self.chunked if subscriber.chunked else self.plain).discard(subscriber)


class Pattern:
    """A selector other than an exact topic, read by subscribers here: like a topic,
    the groups reading it and its events pending flush (those of every topic it
    matches, each once)."""

    __slots__ = ("selector", "groups", "pending", "subscribers")

    def __init__(self, selector: Selector) -> None:
        self.selector = selector
        self.groups: set[Group] = set()
        self.pending: list[Record] = []
        self.subscribers = 0
