"""What a process listens to on its Pub/Sub connection, and when it may place a mark:
the listening state of the Redis backend, sans I/O.

Topics are *wanted* (a local subscriber needs them), then *confirmed* once Redis says
the subscription took effect (a topic wanted again while its earlier subscription is
still being confirmed expects one confirmation per request). A mark is placed when
what waits for it has every topic it needs confirmed and the process's own marks
channel is subscribed: the catch-up after a (re)connection, once everything wanted is
confirmed, and each new stream's wait, once its topics are. Topics whose last local
subscriber left linger before they are dropped.

It is told what happened (by :class:`~rawsse.backends.redis.backend.RedisBackend`,
which owns the connection, the futures and the clock) and answers what to do: which
channels to subscribe or drop, which mark token to send, which waiters a mark
releases. Nothing here imports asyncio or touches a socket.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, Protocol, TypeVar

__all__ = ["CatchUp", "Listening", "Waiting"]


class Waiting(Protocol):
    """A new stream's wait for its topics' subscriptions and the mark after them."""

    topics: Sequence[str]
    #: The mark that releases it, once one was sent for it.
    token: int | None


W = TypeVar("W", bound=Waiting)


class CatchUp(enum.Enum):
    """Where the catch-up after a (re)connection stands."""

    DONE = "done"  #: none due: caught up (or never connected)
    NEEDED = "needed"  #: a mark is due once everything wanted is confirmed
    MARKED = "marked"  #: its mark was sent (``Listening.catch_up_token``)


class Listening(Generic[W]):
    """The listening state of one process (see the module docstring)."""

    __slots__ = ("wanted", "confirmed", "waiters", "catch_up", "catch_up_token",
                 "marks_subscribed", "_expected", "_unconfirmed", "_idle", "_next_token")  # fmt: skip

    def __init__(self) -> None:
        #: Topics whose channels are wanted, and those whose subscription took effect.
        self.wanted: set[str] = set()
        self.confirmed: set[str] = set()
        #: Streams waiting for a mark.
        self.waiters: list[W] = []
        self.catch_up = CatchUp.DONE
        self.catch_up_token = 0  # the catch-up's mark, while MARKED
        self.marks_subscribed = False
        self._expected: dict[str, int] = {}  # confirmations still to come, per topic
        self._unconfirmed = 0  # wanted topics not confirmed
        self._idle: dict[str, float] = {}  # topic → when it lost its local subscribers
        self._next_token = 1

    # -- wanting and dropping topics ---------------------------------------------------

    def want(self, topics: Iterable[str], now: float) -> list[str]:
        """A stream needs ``topics``: those newly wanted (subscribe their channels),
        which linger from ``now`` unless a subscriber joins them."""
        new = [topic for topic in topics if topic not in self.wanted]
        for topic in new:
            self.wanted.add(topic)
            self._unconfirmed += 1
            self._expected[topic] = self._expected.get(topic, 0) + 1
            self._idle[topic] = now
        return new

    def live(self, topics: Iterable[str]) -> bool:
        """Whether every one of ``topics`` is confirmed."""
        return all(topic in self.confirmed for topic in topics)

    def idle(self, topic: str, now: float) -> None:
        """``topic`` lost its local subscribers at ``now``."""
        self._idle[topic] = now

    def sweep(self, now: float, linger: float, in_use: Callable[[str], bool]) -> list[str]:
        """Topics idle for ``linger`` and not ``in_use`` again: no longer wanted (drop
        their channels)."""
        gone = [topic for topic, since in self._idle.items() if now - since >= linger]
        dropped = []
        for topic in gone:
            del self._idle[topic]
            if in_use(topic) or topic not in self.wanted:
                continue
            self.wanted.discard(topic)
            if topic in self.confirmed:
                self.confirmed.discard(topic)
            else:
                self._unconfirmed -= 1
            dropped.append(topic)
        return dropped

    # -- the connection ------------------------------------------------------------------

    def connected(self) -> list[str]:
        """A new connection: nothing is subscribed on it yet, every waiter's mark is
        lost, and a catch-up is needed. The topics to subscribe again."""
        self.confirmed.clear()
        self._expected = dict.fromkeys(self.wanted, 1)
        self._unconfirmed = len(self.wanted)
        self.marks_subscribed = False
        for waiter in self.waiters:
            waiter.token = None
        self.catch_up = CatchUp.NEEDED
        return list(self.wanted)

    def subscribed(self, topic: str) -> None:
        """Redis confirmed a subscription to ``topic``'s channel."""
        left = self._expected.get(topic, 0) - 1
        if left > 0:
            self._expected[topic] = left
            return
        self._expected.pop(topic, None)
        if topic in self.wanted and topic not in self.confirmed:
            self.confirmed.add(topic)
            self._unconfirmed -= 1

    # -- marks -------------------------------------------------------------------------------

    def mark_due(self) -> int | None:
        """The token of a mark to send now, or ``None``: the catch-up, once everything
        wanted is confirmed, and each waiter without one whose topics are, share it.
        (The caller asks only while its connection is up.)"""
        if not self.marks_subscribed:
            return None
        token = self._next_token
        needed = False
        if self.catch_up is CatchUp.NEEDED and self._unconfirmed == 0:
            self.catch_up, self.catch_up_token = CatchUp.MARKED, token
            needed = True
        for waiter in self.waiters:
            if waiter.token is None and self.live(waiter.topics):
                waiter.token = token
                needed = True
        if not needed:
            return None
        self._next_token += 1
        return token

    def mark_failed(self, token: int) -> None:
        """The mark ``token`` could not be placed: what waited on it waits for another."""
        if self.catch_up is CatchUp.MARKED and self.catch_up_token == token:
            self.catch_up = CatchUp.NEEDED
        for waiter in self.waiters:
            if waiter.token == token:
                waiter.token = None

    def catches_up(self, token: int) -> bool:
        """Whether the mark ``token`` that arrived is the catch-up's (or a later one):
        then the catch-up is done, and the caller reads what it missed."""
        if self.catch_up is CatchUp.MARKED and token >= self.catch_up_token:
            self.catch_up = CatchUp.DONE
            return True
        return False

    def released(self, token: int) -> list[W]:
        """The waiters the mark ``token`` releases (a mark covers every earlier one)."""
        return [w for w in self.waiters if w.token is not None and w.token <= token]
