"""Subscribers with a view (Mercure mode's routing, in the hub): selectors other than
exact topics, each evaluated once per topic however many subscribers read it; private
events only to views whose grants cover one of their topics, live and in replay, never
in a frame shared with anyone else; groups keyed by topics and view."""

from __future__ import annotations

import asyncio

import pytest

from rawsse.config import Config
from rawsse.hub.hub import Hub
from rawsse.hub.subscriber import Subscriber
from rawsse.hub.views import View
from rawsse.matching.selectors import Kind, Selector, selector
from tests.support.fakes import RecordingTransport
from tests.support.sse_parser import parse

BOOKS = selector(Kind.TEMPLATE, "https://example.com/books/{id}")
STAR = selector(Kind.TEMPLATE, "*")
BOOK_1 = "https://example.com/books/1"
BOOK_2 = "https://example.com/books/2"
AUTHOR = "https://example.com/authors/1"


def reading(*texts: str) -> frozenset[Selector]:
    return frozenset(selector(Kind.TEMPLATE if "{" in t else Kind.EXACT, t) for t in texts)


def join(hub: Hub, topics: tuple[str, ...] = (), view: View | None = None) -> RecordingTransport:
    transport = RecordingTransport()
    subscriber = Subscriber(transport, topics, chunked=False, max_buffer=1 << 20)
    replay = hub.subscribe(subscriber, view=view)
    assert not isinstance(replay, asyncio.Future)
    return transport


def received(transport: RecordingTransport) -> list[str]:
    return [event.data for event in parse(b"".join(transport.writes).decode()).events]


async def flushed() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def test_a_template_reads_every_topic_it_matches_and_each_event_once() -> None:
    hub = Hub(Config())
    books = join(hub, view=View(patterns=frozenset({BOOKS})))
    everything = join(hub, view=View(patterns=frozenset({STAR})))
    hub.publish(BOOK_1, "b1")
    hub.publish(AUTHOR, "author")
    hub.publish([BOOK_2, BOOK_1], "both")  # canonical and alternate: both match
    hub.publish([AUTHOR, BOOK_2], "alternate")  # the alternate matches
    await flushed()
    assert received(books) == ["b1", "both", "alternate"]
    assert received(everything) == ["b1", "author", "both", "alternate"]


async def test_exact_topics_and_patterns_together_deliver_an_event_once() -> None:
    hub = Hub(Config())
    both = join(hub, (BOOK_1,), View(patterns=frozenset({BOOKS})))
    hub.publish(BOOK_1, "one")
    hub.publish(BOOK_2, "two")
    await flushed()
    assert received(both) == ["one", "two"]
    assert len(both.writes) == 1


async def test_a_pattern_is_evaluated_once_per_topic_not_per_subscriber_or_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    evaluated: list[tuple[str, str]] = []
    original = Selector.matches

    def counting(self: Selector, topic: str) -> bool:
        evaluated.append((self.text, topic))
        return original(self, topic)

    monkeypatch.setattr(Selector, "matches", counting)
    hub = Hub(Config())
    readers = [join(hub, view=View(patterns=frozenset({BOOKS}))) for _ in range(50)]
    for i in range(100):
        hub.publish(BOOK_1, f"e{i}")
    await flushed()
    assert evaluated == [(BOOKS.text, BOOK_1)]
    assert all(len(received(reader)) == 100 for reader in readers)
    assert hub.group_count == 1  # one group, one frame for all fifty
    assert all(reader.writes[0] is readers[0].writes[0] for reader in readers)
    # A new pattern: topics are matched again when next seen, then kept again.
    evaluated.clear()
    join(hub, view=View(patterns=frozenset({STAR})))
    hub.publish(BOOK_1, "again")
    hub.publish(BOOK_1, "and again")
    await flushed()
    assert sorted(evaluated) == sorted([(BOOKS.text, BOOK_1), ("*", BOOK_1)])


async def test_a_private_event_reaches_only_views_whose_grants_cover_one_of_its_topics() -> None:
    hub = Hub(Config())
    native = join(hub, (BOOK_1,))
    anonymous = join(hub, (BOOK_1,), View())
    granted = join(hub, (BOOK_1,), View(reading=reading(BOOK_1)))
    by_template = join(hub, view=View(patterns=frozenset({BOOKS}), reading=reading(BOOKS.text)))
    other_book = join(hub, (BOOK_1,), View(reading=reading(BOOK_2)))
    by_alternate = join(hub, (BOOK_1,), View(reading=reading(AUTHOR)))
    hub.publish(BOOK_1, "public")
    hub.publish(BOOK_1, "private", private=True)
    hub.publish([BOOK_1, AUTHOR], "private, with an alternate", private=True)
    await flushed()
    assert received(native) == ["public"]
    assert received(anonymous) == ["public"]
    assert received(granted) == ["public", "private", "private, with an alternate"]
    assert received(by_template) == ["public", "private", "private, with an alternate"]
    assert received(other_book) == ["public"]
    assert received(by_alternate) == ["public", "private, with an alternate"]


async def test_a_private_event_never_rides_in_a_frame_shared_with_someone_not_granted() -> None:
    """Same topics, different grants: two groups, two frames; the frame of the group
    not granted holds no byte of the private event."""
    hub = Hub(Config())
    granted = [join(hub, (BOOK_1,), View(reading=reading(BOOK_1))) for _ in range(3)]
    public = [join(hub, (BOOK_1,), View()) for _ in range(3)]
    hub.publish(BOOK_1, "public one")
    hub.publish(BOOK_1, "SECRET", private=True)
    hub.publish(BOOK_1, "public two")
    await flushed()
    assert hub.group_count == 2
    assert all(t.writes == granted[0].writes for t in granted)
    assert all(t.writes[0] is public[0].writes[0] for t in public)
    assert granted[0].writes[0] is not public[0].writes[0]
    assert b"SECRET" in granted[0].writes[0]
    assert all(b"SECRET" not in b"".join(t.writes) for t in public)
    assert received(public[0]) == ["public one", "public two"]


async def test_replay_follows_the_rule_of_the_live_stream() -> None:
    hub = Hub(Config(history=100))
    first = hub.publish(BOOK_1, "before")
    hub.publish(BOOK_1, "SECRET", private=True)
    hub.publish(BOOK_1, "after")

    def replayed(view: View | None) -> list[str]:
        subscriber = Subscriber(RecordingTransport(), (BOOK_1,), chunked=False, max_buffer=1 << 20)
        replay = hub.subscribe(subscriber, first, view=view)
        assert not isinstance(replay, asyncio.Future)
        frames = b"".join(record.frame for record in replay.records)  # type: ignore[union-attr]
        return [event.data for event in parse(frames.decode()).events]

    assert replayed(None) == ["after"]
    assert replayed(View()) == ["after"]
    assert replayed(View(reading=reading(BOOK_2))) == ["after"]
    assert replayed(View(reading=reading(BOOKS.text))) == ["SECRET", "after"]


async def test_patterns_leave_with_their_last_group_and_end_streams_reaches_them() -> None:
    hub = Hub(Config())
    transport = RecordingTransport()
    subscriber = Subscriber(transport, (), chunked=False, max_buffer=1 << 20)
    hub.subscribe(subscriber, view=View(patterns=frozenset({BOOKS})))
    assert len(hub.fanout._patterns) == 1
    assert hub.end_streams([AUTHOR], "history_gap") == 0
    assert hub.end_streams([BOOK_2], "history_gap") == 1
    hub.unsubscribe(subscriber)
    assert len(hub.fanout._patterns) == 0 and hub.group_count == 0
    hub.publish(BOOK_1, "nobody")
    await flushed()
    assert received(transport) == []
