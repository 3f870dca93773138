"""What the fan-out holds: topics and patterns with their pending events, and the
groups of subscribers that read them (:mod:`rawsse.hub.fanout` moves events through
them; :mod:`rawsse.hub.patterns` finds the patterns a topic matches)."""

from __future__ import annotations

from rawsse.backends.base import Record
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

    __slots__ = ("key", "names", "topics", "view", "plain", "chunked", "wrote_at_tick")

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
        self.wrote_at_tick = -1

    def __len__(self) -> int:
        return len(self.plain) + len(self.chunked)


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
