"""The Redis backend's listening state, without Redis: which channels to subscribe and
drop, when a mark is due and for whom, what a mark releases, and the catch-up's states
(done, needed, marked) across connections and failed marks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rawsse.backends.redis.listening import CatchUp, Listening


@dataclass
class Waiter:
    topics: Sequence[str]
    token: int | None = None


def connected(listening: Listening[Waiter]) -> list[str]:
    """A connection whose marks channel is subscribed."""
    topics = listening.connected()
    listening.marks_subscribed = True
    return topics


def test_topics_are_wanted_once_and_live_once_confirmed() -> None:
    listening: Listening[Waiter] = Listening()
    assert listening.want(["a", "b"], now=0.0) == ["a", "b"]
    assert listening.want(["a", "c"], now=0.0) == ["c"]  # only what is new
    assert not listening.live(["a"])
    listening.subscribed("a")
    assert listening.live(["a"]) and not listening.live(["a", "b"])


def test_a_new_connection_subscribes_everything_again_and_needs_a_catch_up() -> None:
    listening: Listening[Waiter] = Listening()
    listening.want(["a", "b"], now=0.0)
    for topic in ("a", "b"):
        listening.subscribed(topic)
    waiter = Waiter(["a"], token=3)
    listening.waiters.append(waiter)
    assert sorted(listening.connected()) == ["a", "b"]
    assert listening.catch_up is CatchUp.NEEDED and waiter.token is None
    assert not listening.live(["a"])  # nothing is subscribed on the new connection
    assert listening.mark_due() is None  # its marks channel is not subscribed yet


def test_the_catch_up_marks_once_everything_wanted_is_confirmed() -> None:
    listening: Listening[Waiter] = Listening()
    listening.want(["a", "b"], now=0.0)
    connected(listening)
    listening.subscribed("a")
    assert listening.mark_due() is None  # b is not confirmed yet
    listening.subscribed("b")
    token = listening.mark_due()
    assert token == 1 and listening.catch_up is CatchUp.MARKED
    assert listening.mark_due() is None  # nothing more is due
    assert not listening.catches_up(0)  # an older mark is not the catch-up's
    assert listening.catches_up(1) and listening.catch_up is CatchUp.DONE
    assert not listening.catches_up(2)


def test_waiters_share_a_mark_and_a_mark_releases_every_earlier_one() -> None:
    listening: Listening[Waiter] = Listening()
    listening.want(["a", "b"], now=0.0)
    connected(listening)
    listening.catch_up = CatchUp.DONE
    first, second, third = Waiter(["a"]), Waiter(["a"]), Waiter(["b"])
    listening.waiters += [first, second, third]
    listening.subscribed("a")
    assert listening.mark_due() == 1
    assert (first.token, second.token, third.token) == (1, 1, None)
    listening.subscribed("b")
    assert listening.mark_due() == 2 and third.token == 2
    assert listening.released(1) == [first, second]
    assert listening.released(2) == [first, second, third]


def test_a_failed_mark_leaves_what_waited_on_it_waiting_for_another() -> None:
    listening: Listening[Waiter] = Listening()
    listening.want(["a"], now=0.0)
    connected(listening)
    waiter = Waiter(["a"])
    listening.waiters.append(waiter)
    listening.subscribed("a")
    token = listening.mark_due()
    assert token is not None and listening.catch_up is CatchUp.MARKED
    listening.mark_failed(token)
    assert listening.catch_up is CatchUp.NEEDED and waiter.token is None
    assert listening.mark_due() == token + 1 and waiter.token == token + 1


def test_idle_topics_linger_then_are_dropped_unless_used_again() -> None:
    listening: Listening[Waiter] = Listening()
    listening.want(["a", "b", "c"], now=0.0)
    listening.subscribed("a")
    for topic in ("a", "b", "c"):
        listening.idle(topic, now=10.0)
    assert listening.sweep(now=15.0, linger=10.0, in_use=lambda t: False) == []
    dropped = listening.sweep(now=20.0, linger=10.0, in_use=lambda t: t == "c")
    assert sorted(dropped) == ["a", "b"] and listening.wanted == {"c"}
    assert listening.want(["a"], now=21.0) == ["a"]  # wanted again: subscribe again
    # b was never confirmed: dropping it left nothing unconfirmed behind.
    listening.subscribed("a")
    listening.subscribed("c")
    connected(listening)
    listening.subscribed("a")
    listening.subscribed("c")
    assert listening.mark_due() is not None  # the catch-up is not held by a ghost
