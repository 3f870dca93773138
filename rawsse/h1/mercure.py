"""What a Mercure publish says: its form, read as Mercure's hub reads it (sans I/O).

An ``application/x-www-form-urlencoded`` body: ``topic`` (repeated: the first is the
canonical topic, the others alternates), ``data`` (the first wins), ``private``
(present, whatever its value, makes the update private), ``id``, ``type`` (the SSE
``event``) and ``retry``. Unknown fields are ignored. A topic under the hub's own
namespace (``/.well-known/mercure``, relative or on any host) is refused with 403: it is
reserved for what the hub publishes itself. An ``id`` starting with ``#`` or equal to
``earliest`` is refused, as are ids and types with CR, LF or NUL, and a ``retry`` that
is not digits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from rawsse.errors import InvalidEvent, RequestError
from rawsse.events import check_event_name, check_id
from rawsse.h1.parse import parse_retry
from rawsse.topics import parse_topics

__all__ = [
    "EARLIEST",
    "HUB_PATH",
    "MercureUpdate",
    "hub_url",
    "is_reserved_topic",
    "parse_update",
]

#: The hub's URL path, and the namespace under it that only the hub publishes to.
HUB_PATH = "/.well-known/mercure"

#: The ``Last-Event-ID`` that asks for every update kept.
EARLIEST = "earliest"

_FORM = b"application/x-www-form-urlencoded"


@dataclass(slots=True)
class MercureUpdate:
    """A publish, read."""

    topics: tuple[str, ...]
    data: str
    private: bool = False
    id: str | None = None
    type: str | None = None
    retry: int | None = None


#: What a ``Host`` header may hold to be part of the hub's URL (a name or an address,
#: and a port); anything else is not used.
_HOST = re.compile(r"[A-Za-z0-9._~-]+(?::[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?")


def hub_url(configured: str | None, host: bytes | None) -> str:
    """The hub's URL, against which relative URL patterns and topics are resolved: the
    configured one, else ``http://``, the request's ``Host`` (``localhost`` without a
    usable one) and :data:`HUB_PATH`."""
    if configured is not None:
        return configured
    name = host.decode("ascii", "replace") if host else ""
    if not _HOST.fullmatch(name):
        name = "localhost"
    return f"http://{name}{HUB_PATH}"


def is_reserved_topic(topic: str) -> bool:
    """Whether ``topic`` names a resource under the hub's own namespace, relative or
    absolute, whatever its host."""
    try:
        path = urlsplit(topic).path
    except ValueError:
        return False
    return path == HUB_PATH or path.startswith(HUB_PATH + "/")


def parse_update(content_type: bytes | None, body: bytes, *, max_topics: int) -> MercureUpdate:
    """The update a publish's form carries.

    Raises:
        RequestError: 415 for another content type; 400 for no topic, a malformed
            field or a bad ``id``, ``type`` or ``retry``; 403 for a reserved topic.
    """
    mime = (content_type or b"").split(b";")[0].strip().lower()
    if mime != _FORM:
        raise RequestError("a publish is an application/x-www-form-urlencoded form", 415)
    try:
        fields = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise RequestError("the form is not valid UTF-8") from None
    topics: list[str] = []
    first: dict[str, str] = {}
    private = False
    for name, value in fields:
        if name == "topic":
            topics.append(value)
        elif name == "private":
            private = True
        else:
            first.setdefault(name, value)
    if not topics:
        raise RequestError("a publish needs a topic")
    checked = parse_topics(topics, max_topics)
    for topic in checked:
        if is_reserved_topic(topic):
            raise RequestError(f"topic {topic!r} is reserved for the hub", 403)
    return MercureUpdate(
        checked,
        first.get("data", ""),
        private,
        _id(first.get("id")),
        _type(first.get("type")),
        parse_retry(first.get("retry")),
    )


def _id(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if value.startswith("#"):
        raise RequestError("an id must not start with #")
    if value == EARLIEST:
        raise RequestError("'earliest' is reserved: it asks for every update kept")
    try:
        check_id(value)
    except InvalidEvent as exc:
        raise RequestError(str(exc)) from None
    return value


def _type(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    try:
        return check_event_name(value)
    except InvalidEvent as exc:
        raise RequestError(str(exc)) from None
