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

import re

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

__all__ = ["AVAILABLE", "head_end", "is_plain", "read_head"]

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


def is_plain(method: bytes, names: set[bytes]) -> bool:
    """Whether a request kept alive over HTTP/1.1, with these header names (lower
    case), is read whole as its ``Content-Length`` says, with nothing for h11's
    connection to decide."""
    return method not in _NOT_PLAIN_METHODS and names.isdisjoint(_NEGOTIATING)
