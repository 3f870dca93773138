"""Sans-IO request interpretation: targets and queries, publish bodies (topic names by
:mod:`rawsse.topics`), credentials, and what logs may show of a target.

Nothing here touches a socket or asyncio; every function takes bytes or strings from an
h11 event and returns plain values or raises :class:`RequestError` with the status to
answer (400, 413, 415). The serving layer (:mod:`rawsse.server.routes`) calls these and
turns errors into answers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote

from rawsse.errors import InvalidEvent, RequestError
from rawsse.events import MAX_RETRY, check_event_name, check_id
from rawsse.topics import parse_topics

__all__ = [
    "Query",
    "PublishRequest",
    "parse_target",
    "parse_publish",
    "parse_json_event",
    "parse_retry",
    "bearer_token",
    "cookie_value",
    "header_value",
    "redact_target",
    "SSE_HEADERS",
    "GZIP_HEADERS",
    "VARY_ENCODING",
    "accepts_gzip",
]

Query = dict[str, list[str]]

#: Headers of every event-stream response. ``no-cache`` keeps proxies and browsers from
#: storing the stream; ``X-Accel-Buffering: no`` tells nginx not to buffer it.
SSE_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


#: What a compressed stream adds (``--compress``), and what any stream of a hub that
#: compresses says: its body depends on the request's ``Accept-Encoding``.
GZIP_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-encoding", b"gzip"),
    (b"vary", b"accept-encoding"),
]
VARY_ENCODING: list[tuple[bytes, bytes]] = [(b"vary", b"accept-encoding")]


def accepts_gzip(accept_encoding: bytes | None) -> bool:
    """Whether an ``Accept-Encoding`` value accepts gzip (RFC 9110, 12.5.3): ``gzip``
    or ``x-gzip`` with a weight above 0, or else ``*`` with one. Malformed weights
    count as 0: a stream is then sent as it is, which every client reads."""
    if not accept_encoding:
        return False
    star = False
    for item in accept_encoding.split(b","):
        coding, _, params = item.partition(b";")
        coding = coding.strip().lower()
        if coding not in (b"gzip", b"x-gzip", b"*"):
            continue
        weight = 1.0
        for param in params.split(b";"):
            name, _, value = param.partition(b"=")
            if name.strip().lower() == b"q":
                try:
                    weight = float(value.strip())
                except ValueError:
                    weight = 0.0
        if coding == b"*":
            star = weight > 0
        else:
            return weight > 0
    return star


#: Longest query string accepted; a URL over this is a mistake or an attack.
MAX_QUERY_LENGTH = 8192


def _text(what: str, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError(f"{what} is not valid UTF-8") from None


def parse_target(target: bytes) -> tuple[str, Query]:
    """Split a request target into its decoded path and query parameters.

    Raises:
        RequestError: 400 when the target is not origin-form, the query string is
            too long, or either part is not valid UTF-8.
    """
    path, _, query = target.partition(b"?")
    if not path.startswith(b"/"):
        raise RequestError("request target must start with /")
    if len(query) > MAX_QUERY_LENGTH:
        raise RequestError("query string too long", 414)
    path_text = _text("path", path)
    try:
        decoded_path = unquote(path_text, errors="strict")
        params = _parse_query(_text("query", query))
    except UnicodeDecodeError:
        raise RequestError("query string is not valid UTF-8") from None
    return decoded_path, params


def _parse_query(query: str) -> Query:
    """``parse_qs(query, keep_blank_values=True)``, without its cost for the common
    query that has nothing to decode (``topic=orders``): a publish's whole budget is a
    few microseconds."""
    if "%" in query or "+" in query:
        return parse_qs(query, keep_blank_values=True, errors="strict")
    params: Query = {}
    for pair in query.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            values = params.get(name)
            if values is None:
                params[name] = [value]
            else:
                values.append(value)
    return params


@dataclass(slots=True)
class PublishRequest:
    """A publish, whatever form it came in (made per publish, so not frozen: see
    :class:`rawsse.h1.exchange.Request`)."""

    topics: tuple[str, ...]
    data: str
    event: str | None = None
    id: str | None = None
    retry: int | None = None


def header_value(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The value of the first header called ``name`` (lower-case, as h11 gives them)."""
    for key, value in headers:
        if key == name:
            return value
    return None


def bearer_token(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or ``None``."""
    value = header_value(headers, b"authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(b" ")
    if scheme.lower() != b"bearer" or not token.strip():
        return None
    return token.strip().decode("latin-1")


def cookie_value(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> str | None:
    """The value of cookie ``name`` from every ``Cookie`` header, or ``None``."""
    for key, value in headers:
        if key != b"cookie":
            continue
        for pair in value.split(b";"):
            cookie, sep, content = pair.strip().partition(b"=")
            if sep and cookie == name and content:
                return content.strip(b'"').decode("latin-1")
    return None


#: Query parameters whose values never reach a log line.
SECRET_PARAMS = frozenset({"authorization", "access_token"})


def redact_target(target: bytes) -> str:
    """The request target for logs, with every credential in the query replaced.

    Parameter names are compared after percent-decoding, so ``authoriz%61tion`` (which
    ``parse_qs`` would read as ``authorization``) is redacted too.
    """
    path, sep, query = target.partition(b"?")
    text = path.decode("latin-1")
    if not sep:
        return text
    parts = []
    for pair in query.decode("latin-1").split("&"):
        name, eq, _value = pair.partition("=")
        if eq and unquote(name.replace("+", " ")).lower() in SECRET_PARAMS:
            pair = name + "=REDACTED"
        parts.append(pair)
    return text + "?" + "&".join(parts)


def _one(params: Query, name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise RequestError(f"{name} given more than once")
    return values[0]


_RETRY_DIGITS = len(str(MAX_RETRY))
_BAD_RETRY = f"retry must be an integer of milliseconds from 0 to {MAX_RETRY}"


def parse_retry(raw: object) -> int | None:
    """A ``retry`` field: ``None`` when absent or blank, else milliseconds from 0 to
    ``MAX_RETRY`` given as an integer or a string of ASCII digits.

    Raises:
        RequestError: 400 for anything else.
    """
    if raw is None or raw == "":
        return None
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and raw.isascii() and raw.isdigit():
        # Measured before int(): Python refuses to convert over 4300 digits, and
        # anything over ten is out of range anyway.
        if len(raw.lstrip("0")) > _RETRY_DIGITS:
            raise RequestError(_BAD_RETRY)
        value = int(raw)
    else:
        raise RequestError(_BAD_RETRY)
    if not 0 <= value <= MAX_RETRY:
        raise RequestError(_BAD_RETRY)
    return value


def _optional_field(name: str, value: object) -> str | None:
    """An ``id`` or ``event`` as given, or ``None`` when absent or blank: a blank id
    would reset every browser's last event id (and could then never be replayed from),
    and a blank event type is the default ``message`` anyway."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RequestError(f"{name} must be a string")
    try:
        if name == "event":
            return check_event_name(value)
        check_id(value)
        return value
    except InvalidEvent as exc:
        raise RequestError(str(exc)) from None


def _build(
    topics: Iterable[str], data: str, event: object, id: object, retry: object, max_topics: int
) -> PublishRequest:
    return PublishRequest(
        topics=parse_topics(topics, max_topics),
        data=data,
        event=_optional_field("event", event),
        id=_optional_field("id", id),
        retry=parse_retry(retry),
    )


def parse_publish(
    content_type: bytes | None,
    body: bytes,
    query: Query,
    *,
    max_topics: int,
) -> PublishRequest:
    """Interpret a ``POST /publish`` in one of its three forms.

    1. ``topic`` in the query string: the raw body is the data; ``event``, ``id`` and
       ``retry`` come from the query string too. This wins over the content type, since
       ``curl --data-binary`` labels any body as a form.
    2. ``Content-Type: application/json``: an object with ``topic`` (string or list),
       ``data`` (string), and optional ``event``, ``id``, ``retry``.
    3. Otherwise an ``application/x-www-form-urlencoded`` form with the same fields,
       ``topic`` repeatable.

    The body's size was bounded while it was read (``max_event_size``, 413), and the
    encoded event's is checked by the hub.

    Raises:
        RequestError: 400 for missing or malformed fields, 415 for another content type.
    """
    if "topic" in query:
        return _build(
            query["topic"],
            _text("body", body),
            _one(query, "event"),
            _one(query, "id"),
            _one(query, "retry"),
            max_topics,
        )
    mime = (content_type or b"").split(b";")[0].strip().lower()
    if mime == b"application/json":
        return parse_json_event(body, max_topics)
    if mime in (b"application/x-www-form-urlencoded", b""):
        return _from_form(body, max_topics)
    raise RequestError(
        "unsupported content type: use a form, JSON, or ?topic= with a raw body", 415
    )


def parse_json_event(body: bytes, max_topics: int) -> PublishRequest:
    """A JSON object with ``topic`` (a string or a list), ``data`` and the options: the
    JSON form's body, or one line of a batch.

    Raises:
        RequestError: 400 for malformed JSON or fields.
    """
    try:
        obj = json.loads(_text("body", body))
    except json.JSONDecodeError as exc:
        raise RequestError(f"invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise RequestError("invalid JSON: nested too deeply") from None
    except ValueError:  # an integer over Python's 4300-digit conversion limit
        raise RequestError("invalid JSON: a number is too long") from None
    if not isinstance(obj, dict):
        raise RequestError("JSON body must be an object")
    topics = obj.get("topic")
    if isinstance(topics, str):
        topics = [topics]
    if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
        raise RequestError("topic must be a string or a list of strings")
    data = obj.get("data", "")
    if not isinstance(data, str):
        # A number, object or list is sent as its compact JSON text, which is what a
        # client would parse back with JSON.parse.
        data = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return _build(topics, data, obj.get("event"), obj.get("id"), obj.get("retry"), max_topics)


def _from_form(body: bytes, max_topics: int) -> PublishRequest:
    """A form with ``topic`` (repeatable), ``data`` and the options."""
    try:
        form = parse_qs(_text("body", body), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise RequestError("form is not valid UTF-8") from None
    return _build(
        form.get("topic", []),
        _one(form, "data") or "",
        _one(form, "event"),
        _one(form, "id"),
        _one(form, "retry"),
        max_topics,
    )
