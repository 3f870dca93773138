"""Sans-IO encoding of Server-Sent Events: bytes in, bytes out, no asyncio, no sockets.

The format follows the WHATWG HTML Living Standard, section "Server-sent events"
(9.2.6, "Interpreting an event stream"). Every function here returns final ``bytes``
so that the hub can encode an event once and write the very same object to every
subscriber.

Field injection is impossible by construction: ``data`` is split into one ``data:`` line
per line of text (on CR, LF and CRLF, the three line endings the parser recognises), and
``id`` / ``event`` values containing CR, LF or NUL are refused with :class:`InvalidEvent`,
because the parser would read them as the start of a new field (CR, LF) or ignore the id
(NUL).
"""

from __future__ import annotations

from rawsse.errors import InvalidEvent, PayloadTooLarge

__all__ = [
    "HEARTBEAT",
    "CHUNKED_END",
    "encode_event",
    "encode_parts",
    "encode_checked",
    "MAX_ASSIGNED_ID_LENGTH",
    "EventParts",
    "encode_comment",
    "encode_retry",
    "chunk",
    "check_field",
    "check_event_name",
    "check_id",
    "MAX_ID_LENGTH",
    "MAX_RETRY",
    "RESERVED_EVENT_PREFIX",
]

#: A comment line and a blank line. Comments are ignored by every parser; they keep
#: idle connections from being closed by proxies and let us notice dead peers.
HEARTBEAT = b":\n\n"

#: The terminating chunk of a chunked HTTP/1.1 body (RFC 9112, section 7.1).
CHUNKED_END = b"0\r\n\r\n"

#: The largest ``retry:`` accepted, in milliseconds: a browser waits with ``setTimeout``,
#: which fires at once for any delay above 2**31 - 1 ms (about 24.8 days), so a larger
#: value would mean "reconnect now", the opposite of what was asked.
MAX_RETRY = 2**31 - 1

#: Event names the hub uses for its own notices (``rawsse-lost``,
#: ``rawsse-auth-expiring``); publishers may not use them, so a client can trust them.
RESERVED_EVENT_PREFIX = "rawsse-"

_FORBIDDEN_IN_FIELD = ("\r", "\n", "\0")


def check_field(name: str, value: str) -> str:
    """Return ``value`` if it can be sent as the ``id`` or ``event`` field.

    Raises:
        InvalidEvent: ``value`` contains CR, LF or NUL.
    """
    for char in _FORBIDDEN_IN_FIELD:
        if char in value:
            raise InvalidEvent(f"{name} must not contain CR, LF or NUL: {value!r}")
    return value


#: The longest id a publisher may choose, in bytes: it comes back as a
#: ``Last-Event-ID`` header, well within any server's header limit.
MAX_ID_LENGTH = 256


def check_id(id: str) -> int:
    """Check a publisher's ``id``: it must come back unchanged as the ``Last-Event-ID``
    header a client sends on reconnecting, or the event it names is lost. So: printable
    ASCII, spaces only between other characters (a header value's edges are trimmed),
    at most :data:`MAX_ID_LENGTH` bytes. Clients refuse or alter anything else (control
    characters, DEL, non-ASCII text). Return its length.

    Raises:
        InvalidEvent: it breaks any of these rules.
    """
    if len(id) > MAX_ID_LENGTH:
        raise InvalidEvent(f"id must be at most {MAX_ID_LENGTH} characters")
    if not (id.isascii() and id.isprintable()) or id != id.strip(" "):
        raise InvalidEvent(
            "id must be printable ASCII without leading or trailing spaces, so that it "
            "comes back as a Last-Event-ID header"
        )
    return len(id)


def check_event_name(event: str) -> str:
    """Return ``event`` if a publisher may use it as an event type.

    Raises:
        InvalidEvent: it contains CR, LF or NUL, or begins with ``rawsse-``.
    """
    if event.startswith(RESERVED_EVENT_PREFIX):
        raise InvalidEvent(f"event names beginning with {RESERVED_EVENT_PREFIX!r} are reserved")
    return check_field("event", event)


def _utf8(what: str, text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidEvent(f"{what} is not encodable as UTF-8: {exc.reason}") from None


class EventParts:
    """An event encoded once, but for its id: the bytes before the ``id:`` line and
    after it. The hub encodes an event into parts before a backend gives it its id;
    :meth:`frame` then makes the final bytes in one operation. (A plain slotted class:
    it is made once per publish, and a frozen dataclass's ``__init__`` costs more.)"""

    __slots__ = ("before_id", "after_id")

    def __init__(self, before_id: bytes, after_id: bytes) -> None:
        self.before_id = before_id
        self.after_id = after_id

    def frame(self, id: str) -> bytes:
        """The event's bytes with ``id`` (already checked) in its ``id:`` field."""
        return b"%bid: %b\n%b" % (self.before_id, id.encode("utf-8"), self.after_id)

    def size(self, id_length: int) -> int:
        """The size of :meth:`frame` for an id of ``id_length`` bytes."""
        return len(self.before_id) + len(self.after_id) + id_length + 5


def encode_parts(data: str, *, event: str | None = None, retry: int | None = None) -> EventParts:
    """Encode an event's fields but its id (see :func:`encode_event` for the rules)."""
    before = (
        b"" if event is None else _utf8("event", "event: " + check_field("event", event) + "\n")
    )
    after = "" if retry is None else _retry_line(retry)
    # One "data:" line per line of text. The single space after the colon is stripped
    # by the parser, so a line that starts with a space keeps it.
    if "\r" in data:
        data = data.replace("\r\n", "\n").replace("\r", "\n")
    after += "data: " + data.replace("\n", "\ndata: ") + "\n\n"
    return EventParts(before, _utf8("event", after))


#: The longest id a backend assigns (``EPOCH-SEQ``: 8 hex digits, a dash, up to 19
#: digits): an event's size is checked with it before its id is known.
MAX_ASSIGNED_ID_LENGTH = 28


def encode_checked(
    data: str, *, event: str | None, id: str | None, retry: int | None, max_size: int
) -> EventParts:
    """A publisher's event encoded but for its id, checked once: fields (``rawsse-``
    event names are reserved), and the final size with the publisher's ``id`` or the
    longest one a backend assigns.

    Raises:
        InvalidEvent: a field cannot be sent.
        PayloadTooLarge: the event would be over ``max_size`` bytes.
    """
    if not isinstance(data, str):
        raise InvalidEvent(f"data must be str, not {type(data).__name__}")
    parts = encode_parts(data, event=check_event_name(event) if event else None, retry=retry)
    id_length = MAX_ASSIGNED_ID_LENGTH if id is None else check_id(id)
    if parts.size(id_length) > max_size:
        raise PayloadTooLarge(f"event over the {max_size}-byte limit")
    return parts


def encode_event(
    data: str,
    *,
    event: str | None = None,
    id: str | None = None,
    retry: int | None = None,
) -> bytes:
    """Encode one event as the bytes a client receives, ending with the blank line.

    Args:
        data: the event's data; any text. Each line becomes one ``data:`` field, so a
            conforming parser hands back exactly ``data`` with CRLF and CR normalised
            to LF.
        event: the event type (``event:`` field); ``None`` leaves it out, so the browser
            dispatches a ``message`` event.
        id: the event id (``id:`` field); ``None`` leaves it out. An empty string is
            sent as is (it resets the client's last event id).
        retry: reconnection time in milliseconds (``retry:`` field), an int from 0 to
            ``MAX_RETRY``.

    Returns:
        The encoded event.

    Raises:
        InvalidEvent: ``id`` or ``event`` contains CR, LF or NUL, ``retry`` is negative
            or over ``MAX_RETRY``, or text is not encodable as UTF-8.
    """
    parts = encode_parts(data, event=event, retry=retry)
    if id is None:
        return parts.before_id + parts.after_id
    return parts.frame(check_field("id", id))


def _retry_line(retry: int) -> str:
    if isinstance(retry, bool) or not isinstance(retry, int) or not 0 <= retry <= MAX_RETRY:
        raise InvalidEvent(f"retry must be an integer of milliseconds from 0 to {MAX_RETRY}")
    return f"retry: {retry}\n"


def encode_retry(retry: int) -> bytes:
    """Encode a lone ``retry:`` field: it sets the reconnection time, dispatches nothing."""
    return (_retry_line(retry) + "\n").encode("ascii")


def encode_comment(text: str) -> bytes:
    """Encode a comment (one ``:`` line per line of ``text``); parsers ignore it."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _utf8("comment", ":" + text.replace("\n", "\n:") + "\n\n")


def chunk(payload: bytes) -> bytes:
    """Frame ``payload`` as one HTTP/1.1 chunk (RFC 9112, section 7.1).

    Never called with empty bytes: a zero-length chunk would end the body.
    """
    return b"%x\r\n%b\r\n" % (len(payload), payload)
