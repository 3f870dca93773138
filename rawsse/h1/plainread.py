"""Reading a plain request with h11's own parser, without its connection state machine.

A publish over HTTP is mostly h11: its ``Connection`` costs about as much again as
parsing the request, in bookkeeping a plain request does not need (it runs its state
machine three times, and looks through the headers five times for the framing,
keep-alive, upgrade and ``Expect`` rules). So :class:`rawsse.h1.exchange.Exchange` reads
a *plain* request, the shape nearly every publish has, with h11's head parser alone:
the same regular expressions, the same validation, the same ``h11.Request``. Its body
is the ``Content-Length`` bytes that follow, which is all h11's framing rules make of
a request with no ``Transfer-Encoding``.

Plain: HTTP/1.1, kept alive, neither ``HEAD`` nor ``CONNECT``, and no header that asks
for anything (``Transfer-Encoding``, ``Upgrade``, ``Expect``). Any other request, any
head h11 refuses or has yet to see whole, and any answer other than the common one go
to an ``h11.Connection`` given the same bytes, so they are handled exactly as before.

The parser lives in h11's private modules. If they move, ``AVAILABLE`` is false and
every request goes through ``h11.Connection``, as before this module: slower, not
wrong (``tests/h1/test_exchange.py`` checks both ways give the same answers).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Set as AbstractSet

import h11

try:
    from h11._readers import maybe_read_from_IDLE_client
    from h11._receivebuffer import ReceiveBuffer, blank_line_regex
except ImportError:  # pragma: no cover - another h11 layout: h11.Connection reads all
    AVAILABLE = False
    _BLANK_LINE = re.compile(b"\n\r?\n")
else:
    AVAILABLE = True
    _BLANK_LINE = blank_line_regex

__all__ = ["AVAILABLE", "NOT_PLAIN", "PlainReader", "Stage", "head_end", "is_plain", "read_head"]

#: Headers that make a request something other than plain: another framing, a
#: protocol switch, an interim answer. (Their absence leaves h11 nothing to decide.)
_NEGOTIATING = frozenset({b"transfer-encoding", b"upgrade", b"expect"})
_NOT_PLAIN_METHODS = frozenset({b"HEAD", b"CONNECT"})


def head_end(raw: bytes | bytearray, offset: int, max_size: int) -> int | None:
    """Where the head that starts at ``offset`` ends (past its blank line), as h11
    finds it; ``None`` while it may still come; ``-1`` when h11's connection must see
    it: over ``max_size`` unfinished, or not starting like a request line."""
    match = _BLANK_LINE.search(raw, offset)
    if match is not None:
        return match.end()
    if raw[offset] < 0x21 or len(raw) - offset > max_size:
        return -1
    return None


def read_head(raw: bytes | bytearray, offset: int, end: int) -> h11.Request | None:
    """h11's parse of the head in ``raw[offset:end]``, or ``None`` if h11 refuses it
    (its connection then reads it again, and says why)."""
    buffer = ReceiveBuffer()
    buffer += raw[offset:end]
    try:
        return maybe_read_from_IDLE_client(buffer)
    except h11.LocalProtocolError:
        return None


def is_plain(method: bytes, names: AbstractSet[bytes]) -> bool:
    """Whether a request kept alive over HTTP/1.1, with these header names (lower
    case), is read whole as its ``Content-Length`` says, with nothing for h11's
    connection to decide."""
    return method not in _NOT_PLAIN_METHODS and names.isdisjoint(_NEGOTIATING)


class Stage(enum.Enum):
    """Where a request read without h11's connection stands."""

    HEAD = "head"  #: its head is still to come
    BODY = "body"  #: its head is read, its body still to come
    ANSWERING = "answering"  #: it is complete, and waits for its answer


# Module names for the members: the hot path compares with ``is`` against a global, as
# cheap as the strings these once were.
_HEAD = Stage.HEAD
_BODY = Stage.BODY
_ANSWERING = Stage.ANSWERING

#: What :meth:`PlainReader.head` returns for a head h11's connection must read.
NOT_PLAIN = object()


class PlainReader:
    """What a client sent, read without h11's connection: ``raw[offset:]`` is what no
    answer has consumed, and ``stage`` says where the request it starts with stands.
    :class:`rawsse.h1.exchange.Exchange` decides what is plain; this holds the bytes
    and the positions."""

    __slots__ = ("raw", "offset", "stage", "body_at", "closed")

    def __init__(self, raw: bytes = b"", *, closed: bool = False) -> None:
        self.raw: bytes | bytearray = raw
        self.offset = 0
        self.stage = _HEAD
        self.body_at = 0  # where the body starts in raw, once the head is read
        self.closed = closed  # the client has ended its side

    def receive(self, data: bytes) -> None:
        """Bytes from the client (``b""`` for end of input)."""
        if not data:
            self.closed = True
        elif self.stage is not _HEAD:
            # The current request's positions hold. A body arriving in many reads is
            # added to one buffer in place, not copied whole at each read.
            raw = self.raw
            if type(raw) is bytes:
                self.raw = raw = bytearray(raw)
            raw += data
        elif self.offset == len(self.raw):
            self.raw, self.offset = data, 0
        else:
            self.raw, self.offset = self.raw[self.offset :] + data, 0

    @property
    def idle(self) -> bool:
        """Between requests, with nothing of the next one received."""
        return self.stage is _HEAD and self.offset == len(self.raw)

    def head(self, max_size: int) -> h11.Request | object | None:
        """The next request's head once it is whole (its body comes next); ``None``
        while it may still come; :data:`NOT_PLAIN` when h11's connection must read it."""
        raw, offset = self.raw, self.offset
        if offset == len(raw):
            return None
        found = head_end(raw, offset, max_size)
        if found is None:
            return None
        head = read_head(raw, offset, found) if found > 0 else None
        if head is None:
            return NOT_PLAIN  # h11 reads it again, and refuses it
        self.stage = _BODY  # so that a head refused by the caller is answered as such
        self.body_at = found
        return head

    def body(self, length: int) -> bytes | None:
        """The body of ``length`` bytes after the head, once it is all here (the request
        then waits for its answer), else ``None``."""
        raw, body_at = self.raw, self.body_at
        end = body_at + length
        if len(raw) < end:
            return None
        self.stage = _ANSWERING
        return raw[body_at:end] if type(raw) is bytes else bytes(raw[body_at:end])

    def answered(self, length: int) -> None:
        """The request (with a body of ``length``) is answered: the next one is read."""
        self.offset = end = self.body_at + length
        if end == len(self.raw):
            self.raw, self.offset = b"", 0  # held no longer than needed
        self.stage = _HEAD

    def take(self) -> bytes:
        """What no answer has consumed, for h11's connection to read from the start of
        the current request; this reader holds nothing after."""
        raw = self.raw[self.offset :]
        self.raw, self.offset, self.stage = b"", 0, _HEAD
        return bytes(raw)
