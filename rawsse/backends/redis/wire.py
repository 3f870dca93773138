"""How the Redis backend lays events out in Redis: key names, and the bytes of an event
in a stream entry and in a Pub/Sub message. No I/O here.

An event is stored once per topic as a stream entry whose id is ``SEQ-0`` (``SEQ`` from
the one global counter) and whose one field ``e`` is the event's *body*:

    b"<len(uid)> <len(before)> <len(after)>[ p]\\n" uid before after topic\\ntopic...

``before`` and ``after`` are the event encoded but for its id
(:class:`rawsse.events.EventParts`), so a receiving process adds the id and has the
final bytes in one operation, without decoding or re-encoding the data. ``uid`` is the
publisher's id, or empty for the assigned ``EPOCH-SEQ``; `` p`` marks a private event
(Mercure mode), so that every server filters it as the publishing one would. The topics travel with the
event, so that a process that reads it from one topic's channel delivers it to the
subscribers of all of them, once.

A Pub/Sub message is ``EPOCH SEQ BODY``: a receiver learns from it both the event's
place in the order and whether Redis still has the history its ids refer to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rawsse.backends.base import Record
from rawsse.events import EventParts
from rawsse.ids import PLAIN

__all__ = ["Keys", "encode_body", "decode_body", "decode_message", "record_of"]


@dataclass(frozen=True, slots=True)
class Keys:
    """The names of what one hub keeps in Redis, all under ``prefix``.

    Several hubs can share a Redis under different prefixes; servers that should share
    events must use the same one.
    """

    prefix: str = "rawsse:"

    @property
    def counter(self) -> str:
        """The global sequence counter (``INCR`` once per event)."""
        return self.prefix + "seq"

    @property
    def epoch(self) -> str:
        """Eight hex digits, set once if absent: a new value means the history is lost."""
        return self.prefix + "epoch"

    @property
    def ids(self) -> str:
        """Sorted set of publisher-chosen ids, scored by their sequence numbers."""
        return self.prefix + "ids"

    @property
    def trimmed(self) -> str:
        """Hash: topic → the highest sequence number trimmed from its stream."""
        return self.prefix + "trimmed"

    @property
    def topics(self) -> str:
        """Sorted set: every topic published to, scored by its last event's number (the
        topics a subscriber reading selectors may replay, and those a process
        listening to every topic catches up on)."""
        return self.prefix + "topics"

    @property
    def every_channel(self) -> str:
        """The pattern (``PSUBSCRIBE``) of every topic's channel; the prefix's glob
        characters escaped."""
        return _glob_escaped(self.prefix) + "c:*"

    def stream(self, topic: str) -> str:
        """The stream holding ``topic``'s history."""
        return self.prefix + "s:" + topic

    def channel(self, topic: str) -> str:
        """The Pub/Sub channel carrying ``topic``'s live events."""
        return self.prefix + "c:" + topic

    def topic_of(self, channel: str) -> str:
        """The topic a channel carries (inverse of :meth:`channel`)."""
        return channel[len(self.prefix) + 2 :]

    def roster(self, token: str) -> str:
        """One process's active Mercure subscriptions (:mod:`.roster`)."""
        return self.prefix + "subs:" + token

    @property
    def rosters(self) -> str:
        """The ``SCAN`` pattern of every process's roster; the prefix's glob characters
        escaped."""
        return _glob_escaped(self.prefix) + "subs:*"

    def marks(self, token: str) -> str:
        """One process's own channel, for the marks that place it in the order."""
        return self.prefix + "m:" + token


def _glob_escaped(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def encode_body(
    topics: tuple[str, ...], parts: EventParts, uid: str | None, private: bool = False
) -> bytes:
    """The event's body, as stored and published (see the module's docstring)."""
    uid_bytes = b"" if uid is None else uid.encode("utf-8")
    before, after = parts.before_id, parts.after_id
    mark = b" p" if private else b""
    head = b"%d %d %d%s\n" % (len(uid_bytes), len(before), len(after), mark)
    return b"".join((head, uid_bytes, before, after, "\n".join(topics).encode("utf-8")))


def decode_body(body: bytes) -> tuple[str | None, tuple[str, ...], EventParts, bool]:
    """The publisher's id (or ``None``), the topics, the parts of a body, and whether
    it is private."""
    newline = body.index(b"\n")
    head = body[:newline].split()
    uid_length, before_length, after_length = map(int, head[:3])
    start = newline + 1
    uid_end = start + uid_length
    before_end = uid_end + before_length
    after_end = before_end + after_length
    uid = body[start:uid_end].decode("utf-8") if uid_length else None
    parts = EventParts(body[uid_end:before_end], body[before_end:after_end])
    topics = tuple(body[after_end:].decode("utf-8").split("\n"))
    return uid, topics, parts, head[3:] == [b"p"]


def record_of(
    epoch: str, seq: int, body: bytes, make_id: Callable[[str, int], str] = PLAIN.make
) -> Record:
    """The record of a stored or published event: its id (the publisher's, else
    ``make_id(epoch, seq)``) and final bytes."""
    uid, topics, parts, private = decode_body(body)
    wire_id = make_id(epoch, seq) if uid is None else uid
    return Record(seq, wire_id, topics, parts.frame(wire_id), 0.0, private)


def decode_message(message: bytes) -> tuple[str, int, bytes]:
    """``(epoch, seq, body)`` of a Pub/Sub message."""
    epoch, seq, body = message.split(b" ", 2)
    return epoch.decode("ascii"), int(seq), body
