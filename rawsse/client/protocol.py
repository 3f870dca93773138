"""What both clients share, without I/O: the requests they make, how an answer reads,
when and how long to wait before trying again, and where a subscription resumes.

**Publishing never duplicates.** An event that may be retried carries an id chosen
before the first try (a random UUID, unless the caller gave one); if the first try was
published though its answer was lost (a timeout, a 503 from a hub whose Redis was
slow: "may still be published"), the retry is refused with 409, which counts as
published. Only what may have gone through unanswered is retried: no answer, and 5xx.

**Subscribing resumes.** Every event's id is remembered and sent back as
``Last-Event-ID`` on reconnecting; a ``retry:`` from the hub (with every stream, or
alone in the 200 a hub over its limits answers with) sets the wait, which grows with
failures and is spread by jitter, so that many clients of one hub do not all come back
at the same instant.
"""

from __future__ import annotations

import json
import random
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from rawsse.client.errors import ClientError, DuplicateId, Unavailable, error_for
from rawsse.client.events import Event, Lost, Notice, read_notice

__all__ = [
    "Backoff",
    "Block",
    "Decoder",
    "EventFields",
    "Resumption",
    "answered_id",
    "auth_headers",
    "batch_line",
    "batch_results",
    "event_body",
    "new_id",
    "refused_for_good",
    "retryable",
    "stream_url",
]

#: What the JSON form (and each batch line) may hold.
EventFields = Mapping[str, Any]

_KEYS = frozenset({"topic", "data", "event", "id", "retry"})

#: One encoder, made once: ``json.dumps`` with any argument makes a new one per call,
#: which costs more than the encoding of a small event.
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def new_id() -> str:
    """An id for an event that may be retried: 128 random bits in hex (printable, and
    not the hub's own shape)."""
    return secrets.token_hex(16)


def auth_headers(key: str | None, token: str | None) -> dict[str, str]:
    """The ``Authorization`` header of a publish key or a token (``{}`` without)."""
    credential = token if token is not None else key
    return {} if credential is None else {"Authorization": f"Bearer {credential}"}


def event_body(
    topics: str | Sequence[str],
    data: Any,
    *,
    event: str | None = None,
    id: str | None = None,
    retry: int | None = None,
) -> bytes:
    """The JSON form of one event (a ``data`` that is not a string is sent as JSON,
    which the hub writes as its compact text)."""
    fields: dict[str, Any] = {"topic": topics if isinstance(topics, str) else list(topics)}
    fields["data"] = data
    if event is not None:
        fields["event"] = event
    if id is not None:
        fields["id"] = id
    if retry is not None:
        fields["retry"] = retry
    return _ENCODE(fields).encode("utf-8")


def batch_line(fields: EventFields) -> bytes:
    """One line of a batch (``fields`` with the JSON form's keys).

    Raises:
        ValueError: a key the JSON form does not have, or no ``topic``.
    """
    unknown = fields.keys() - _KEYS
    if unknown:
        raise ValueError(f"unknown event keys: {', '.join(sorted(unknown))}")
    if "topic" not in fields:
        raise ValueError("an event needs a topic")
    return _ENCODE(fields if type(fields) is dict else dict(fields)).encode("utf-8") + b"\n"


def answered_id(
    status: int, text: str, retry_after: str | None, *, chosen: str | None, retried: bool
) -> str:
    """The id a publish's answer gives, or the error it is.

    A 409 for the id this client chose (or for the caller's, on a retry) is the
    first try's success.

    Raises:
        ClientError: the answer's error.
    """
    if status == 200:
        return text.strip()
    error = error_for(status, text, retry_after)
    if isinstance(error, DuplicateId) and chosen is not None and retried:
        return chosen
    raise error


def batch_results(status: int, text: str, retry_after: str | None) -> list[str | ClientError]:
    """Each line's result of a batch's answer: its id, or its error (not raised).

    Raises:
        ClientError: the batch as a whole was refused (no line was answered).
    """
    results: list[str | ClientError] = []
    for line in text.splitlines():
        if line.startswith('{"id":"') and line.endswith('"}') and "\\" not in line:
            results.append(line[7:-2])  # the hub's answer to a line published, as it writes it
            continue
        if not line.strip():
            continue
        try:
            answer = json.loads(line)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise error_for(status, text, retry_after)
        if "id" in answer:
            results.append(str(answer["id"]))
        else:
            results.append(error_for(int(answer.get("status", 400)), str(answer.get("error"))))
    if not results and status != 200:
        raise error_for(status, text, retry_after)
    return results


def retryable(error: ClientError) -> bool:
    """Whether the request may have gone through unanswered, and may be tried again:
    no answer, or a 5xx."""
    return isinstance(error, Unavailable)


#: The jitter's source, shared: seeding a generator of its own per publish costs more
#: than the publish's other work.
_JITTER = random.Random()


@dataclass
class Backoff:
    """Waits between tries: from ``first`` (or what the hub asked), doubling with each
    failure up to ``most``, each spread by jitter between half and all of it."""

    first: float = 0.25
    most: float = 30.0
    failures: int = 0
    rng: random.Random = field(default_factory=lambda: _JITTER)

    def next(self, asked: float | None = None) -> float:
        """The wait before the next try, after one more failure. ``asked`` (the hub's
        ``Retry-After`` or ``retry:``) is a floor, waited with up to a quarter more;
        without it, the wait is drawn between half and all of the backoff."""
        base = min(self.most, self.first * 2.0**self.failures)
        self.failures += 1
        if asked is None:
            return base * self.rng.uniform(0.5, 1.0)
        floor = max(base, asked)
        return floor * self.rng.uniform(1.0, 1.25)

    def reset(self) -> None:
        """A try that worked: the next failure waits ``first`` again."""
        self.failures = 0


def stream_url(base: str, topics: Iterable[str]) -> str:
    """The ``/events`` URL of ``topics`` on the hub at ``base``."""
    names = [topics] if isinstance(topics, str) else list(topics)
    if not names:
        raise ValueError("subscribe to at least one topic")
    return f"{base.rstrip('/')}/events?{urlencode([('topic', t) for t in names])}"


@dataclass(frozen=True, slots=True)
class Block:
    """One dispatched block of an event stream: ``data`` is ``None`` when it had no
    ``data:`` line (a ``retry:`` alone), ``id`` when it had no ``id:`` line."""

    data: str | None
    event: str
    id: str | None
    retry: int | None


class Decoder:
    """The SSE format's field parsing, a line at a time (the lines as httpx splits
    them): comments skipped, ``data:`` lines joined, a block dispatched at a blank
    line."""

    __slots__ = ("_data", "_event", "_id", "_retry")

    def __init__(self) -> None:
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None

    def line(self, line: str) -> Block | None:
        """Read one line; the block it ends, if it is blank and something came."""
        if not line:
            if not self._data and self._id is None and self._retry is None:
                self._event = ""
                return None
            block = Block(
                "\n".join(self._data) if self._data else None, self._event, self._id, self._retry
            )
            self._data, self._event, self._id, self._retry = [], "", None, None
            return block
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None


class Resumption:
    """Where a subscription stands: the last event's id, the wait the hub asked for,
    and the backoff of failed connections."""

    def __init__(self, last_event_id: str | None, backoff: Backoff | None = None) -> None:
        self.last_event_id = last_event_id
        #: The hub's ``retry:``, in seconds (``None`` until it sends one).
        self.retry: float | None = None
        self.backoff = backoff if backoff is not None else Backoff()

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        return headers

    def read(self, block: Block) -> Event | Notice | None:
        """What one block is to the caller: a published event, a notice, or nothing
        (a ``retry:`` alone, or a notice of a newer hub this client does not know)."""
        if block.retry is not None:
            self.retry = block.retry / 1000
        if block.id is not None:
            self.last_event_id = block.id
        if block.data is None:
            return None
        self.backoff.reset()
        event = block.event or "message"
        notice = read_notice(event, block.data)
        if isinstance(notice, Lost) and notice.resume_id:
            self.last_event_id = notice.resume_id
        if notice is not None or event.startswith("rawsse-"):
            return notice
        return Event(self.last_event_id or "", event, block.data)

    def wait(self, error: ClientError | None = None) -> float:
        """Seconds before reconnecting: after a stream that ended (``error`` None), or
        after a failure."""
        asked = error.retry_after if error is not None else None
        if asked is None:
            asked = self.retry
        return self.backoff.next(asked)


def refused_for_good(error: ClientError) -> bool:
    """Whether a subscription's refusal is final (a credential or the request is
    wrong): 4xx but 429."""
    return 400 <= error.status < 500 and error.status != 429 and not isinstance(error, Unavailable)
