"""The order of what reaches a process from Redis, without Redis: live messages
delivered once each, what is held while not live, the catch-up that merges what was
read with what was held and goes live, new epochs, holes, and the marks that release
waiting streams."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from rawsse.backends.base import Record
from rawsse.backends.redis.delivery import Delivery
from rawsse.backends.redis.listening import Listening
from rawsse.backends.redis.wire import encode_body, record_of
from rawsse.events import encode_parts

EPOCH = "0000abcd"


@dataclass
class Hub:
    """What the backend delivers to: every record and every ending, in order."""

    delivered: list[int] = field(default_factory=list)
    ended: list[tuple[Collection[str] | None, str]] = field(default_factory=list)

    def dispatch(self, record: Record) -> None:
        self.delivered.append(record.seq)

    def end_streams(self, topics: Collection[str] | None, reason: str) -> int:
        self.ended.append((topics, reason))
        return 1

    def has_topic(self, topic: str) -> bool:
        return True

    @property
    def subscriber_count(self) -> int:
        return 1


@dataclass
class Waiter:
    topics: Sequence[str]
    token: int | None = None
    released: bool = False

    def release(self) -> None:
        self.released = True


def body(data: str, topic: str = "t") -> bytes:
    return encode_body((topic,), encode_parts(data), None)


def message(seq: int, epoch: str = EPOCH) -> bytes:
    return b"%s %d %s" % (epoch.encode(), seq, body(f"event {seq}"))


def mark(counter: int, token: int, epoch: str = EPOCH) -> bytes:
    return b"%s %d %d" % (epoch.encode(), counter, token)


def record(seq: int) -> Record:
    return record_of(EPOCH, seq, body(f"event {seq}"))


class Process:
    """A delivery and its listening state, connected as the backend connects them."""

    def __init__(self) -> None:
        self.listening: Listening[Waiter] = Listening()
        self.delivery = Delivery(self.listening)
        self.hub = Hub()
        self.delivery.attach(self.hub)

    def connect(self) -> int:
        """A (re)connection whose marks channel is subscribed: the catch-up's token."""
        self.delivery.connected()
        for topic in self.listening.connected():
            self.listening.subscribed(topic)
        self.listening.marks_subscribed = True
        token = self.listening.mark_due()
        assert token is not None
        return token

    def go_live(self, counter: int) -> None:
        """Connect and catch up at ``counter`` with nothing to read."""
        catch_up = mark(counter, self.connect())
        before = self.delivery.mark(catch_up)
        assert before is not None
        assert self.delivery.catch_up_from(catch_up) is None
        self.delivery.caught_up(catch_up, before, {}, [])


def test_the_first_mark_gives_the_epoch_and_the_watermark_and_goes_live() -> None:
    process = Process()
    delivery = process.delivery
    assert not delivery.live and delivery.epoch == "00000000"
    process.go_live(counter=41)
    assert delivery.live and delivery.epoch == EPOCH and delivery.watermark == 41
    assert process.hub.delivered == [] and process.hub.ended == []


def test_live_events_are_delivered_once_in_the_order_they_arrive() -> None:
    process = Process()
    process.go_live(counter=0)
    for seq in (1, 2, 2, 3, 1):  # 2 and 1 again: the same events from other topics
        process.delivery.message(message(seq))
    assert process.hub.delivered == [1, 2, 3]
    assert process.delivery.watermark == 3


def test_while_not_live_events_are_held_and_delivered_after_the_catch_up() -> None:
    process = Process()
    process.go_live(counter=5)
    token = process.connect()  # the connection was lost and is back
    process.delivery.message(message(7))  # published before the catch-up's mark
    catch_up = mark(8, token)
    before = process.delivery.mark(catch_up)
    assert before == 1
    process.delivery.message(message(9))  # after the mark: held until live
    assert process.hub.delivered == []
    assert process.delivery.catch_up_from(catch_up) == 5  # read after 5, up to 8
    caught = process.delivery.caught_up(catch_up, before, {6: record(6), 7: record(7)}, [])
    assert caught == 2
    assert process.hub.delivered == [6, 7, 9]  # 7 once: read and held
    assert process.delivery.live and process.delivery.watermark == 9


def test_a_held_event_the_read_missed_is_delivered_in_its_place() -> None:
    """The read of the streams ran before event 7 was stored in every stream it went
    to; the copy that arrived on Pub/Sub before the mark fills the gap, in order."""
    process = Process()
    process.go_live(counter=5)
    token = process.connect()
    process.delivery.message(message(7))
    catch_up = mark(8, token)
    before = process.delivery.mark(catch_up)
    assert before is not None
    process.delivery.caught_up(catch_up, before, {6: record(6), 8: record(8)}, [])
    assert process.hub.delivered == [6, 7, 8]


def test_a_new_epoch_at_the_catch_up_ends_every_stream_and_drops_what_was_held() -> None:
    """Events held from the old epoch must not be taken for the new one's."""
    process = Process()
    process.go_live(counter=5)
    token = process.connect()
    process.delivery.message(message(6))  # of the old epoch, before the mark
    catch_up = mark(2, token, epoch="1234abcd")
    before = process.delivery.mark(catch_up)
    assert before is not None
    assert process.delivery.catch_up_from(catch_up) is None  # nothing to read
    process.delivery.caught_up(catch_up, before, {}, [])
    assert process.hub.ended == [(None, "history_gap")]
    assert process.hub.delivered == []
    assert process.delivery.epoch == "1234abcd" and process.delivery.watermark == 2


def test_a_new_epoch_while_live_ends_every_stream_then_delivers() -> None:
    process = Process()
    process.go_live(counter=5)
    process.delivery.message(message(1, epoch="1234abcd"))
    assert process.hub.ended == [(None, "history_gap")]
    assert process.hub.delivered == [1]
    assert process.delivery.epoch == "1234abcd" and process.delivery.watermark == 1


def test_topics_with_a_hole_have_their_streams_ended() -> None:
    process = Process()
    process.go_live(counter=5)
    token = process.connect()
    catch_up = mark(9, token)
    before = process.delivery.mark(catch_up)
    assert before is not None
    process.delivery.caught_up(catch_up, before, {9: record(9)}, ["old"])
    assert process.hub.ended == [(["old"], "history_gap")]
    assert process.hub.delivered == [9]


def test_a_mark_releases_the_waiters_up_to_its_token_live_or_held() -> None:
    process = Process()
    process.go_live(counter=0)
    listening = process.listening
    first, second = Waiter(["t"]), Waiter(["t"])
    listening.want(["t"], now=0.0)
    listening.subscribed("t")
    listening.waiters += [first, second]
    first_token = listening.mark_due()
    assert first_token is not None and first.token == second.token == first_token
    later = Waiter(["t"])
    listening.waiters.append(later)
    later_token = listening.mark_due()
    assert later_token is not None and later_token > first_token
    assert process.delivery.mark(mark(3, first_token)) is None
    assert first.released and second.released and not later.released
    assert process.delivery.watermark == 3
    # Reconnected: the waiter's mark is lost, and it shares the catch-up's. A mark of
    # the old connection that arrives meanwhile is held, and releases nothing new.
    token = process.connect()
    assert later.token == token
    assert process.delivery.mark(mark(3, first_token)) is None
    assert not later.released
    catch_up = mark(4, token)
    before = process.delivery.mark(catch_up)
    assert before == 1
    process.delivery.caught_up(catch_up, before, {}, [])
    assert later.released


def test_a_client_is_ahead_when_its_id_is_past_the_watermark_or_a_publishers() -> None:
    process = Process()
    process.go_live(counter=10)
    behind = process.delivery.behind
    assert not behind(None)
    assert not behind(f"{EPOCH}-10")
    assert behind(f"{EPOCH}-11")
    assert behind("order-17")  # its number is known only to Redis
    assert not behind("1234abcd-99")  # another epoch: replay tells it, no mark needed


def test_a_candidate_epoch_is_drawn_again_once_used() -> None:
    delivery = Process().delivery
    candidate = delivery.candidate
    delivery.used("ffffffff")
    assert delivery.candidate == candidate
    delivery.used(candidate)
    assert delivery.candidate != candidate and len(delivery.candidate) == 8


def test_a_private_event_crosses_redis_marked_so() -> None:
    """The body carries the mark, so every server filters a private event as the
    publishing one does; a body without it is public."""
    private = encode_body(("t", "u"), encode_parts("secret"), "own-1", True)
    public = encode_body(("t",), encode_parts("open"), None)
    assert record_of(EPOCH, 7, private).private
    assert record_of(EPOCH, 7, private).topics == ("t", "u")
    assert record_of(EPOCH, 7, private).id == "own-1"
    assert not record_of(EPOCH, 8, public).private
    process = Process()
    process.go_live(counter=0)
    seen: list[bool] = []
    process.hub.dispatch = lambda record: seen.append(record.private)  # type: ignore[method-assign]
    process.delivery.message(b"%s 1 %s" % (EPOCH.encode(), private))
    process.delivery.message(b"%s 2 %s" % (EPOCH.encode(), public))
    assert seen == [True, False]
