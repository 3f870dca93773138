"""The exception tree of rawsse.

::

    RawSSEError                 base of everything rawsse raises on purpose
    ├── InvalidEvent            a field the caller gave cannot be sent as SSE (API misuse,
    │   │                       or a publisher's bad input once HTTP maps it to 400)
    │   └── DuplicateId         the publisher's id names an event kept already (HTTP 409:
    │                           a retry that arrived twice, published once)
    ├── BackendUnavailable      a remote backend (Redis) cannot be reached now (HTTP 503)
    ├── ConfigError             a Config value out of range; the message names the field
    └── RequestError            the client's fault; carries the HTTP status to answer with
        └── PayloadTooLarge     a body or event over ``max_event_size`` (413)

``InvalidEvent`` and ``ConfigError`` are also ``ValueError`` so that code written against
plain Python conventions catches them.
"""

from __future__ import annotations


class RawSSEError(Exception):
    """Base class of every error rawsse raises on purpose."""


class InvalidEvent(RawSSEError, ValueError):
    """An event field cannot be encoded without breaking the SSE framing.

    Raised for ids and event names containing CR, LF or NUL (field injection), negative
    ``retry`` values, empty topic lists and text that is not encodable as UTF-8.
    """


class DuplicateId(InvalidEvent):
    """The publisher's id is already in the history: the event is not published again.
    Over HTTP, 409, so that a client retrying with the id it chose knows its first try
    was published."""


def refusal_of(exc: InvalidEvent) -> RequestError:
    """How HTTP refuses an event the hub would not take: 409 for a duplicate id, else
    400, with the reason."""
    return RequestError(str(exc), 409 if isinstance(exc, DuplicateId) else 400)


class BackendUnavailable(RawSSEError):
    """The backend cannot publish or replay now. Over HTTP: 503 with ``Retry-After``
    and the reason.

    When Redis could not be reached, nothing was published. When it was sent but not
    answered in time (the reason says "may still be published"), Redis may still run
    it once it resumes: a publisher that retries should give the event an id of its
    own, which Redis refuses the second time.
    """


class ConfigError(RawSSEError, ValueError):
    """A configuration value is out of its allowed range."""


class RequestError(RawSSEError):
    """A request the server refuses; ``status`` is the HTTP status to answer with.

    Args:
        reason: a short, human-readable reason sent as the response body.
        status: the HTTP status code (4xx, 5xx).
        close: whether the connection must close after the answer (a request that could
            not be read to its end, or whose framing cannot be trusted).
        label: the reason a refused stream request counts under in
            ``rawsse_rejected_total`` (``None``: ``bad_request``).
    """

    def __init__(
        self, reason: str, status: int = 400, *, close: bool = False, label: str | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.close = close
        self.label = label


class PayloadTooLarge(RequestError):
    """A request body or an event over the configured ``max_event_size``."""

    def __init__(self, reason: str = "payload too large") -> None:
        super().__init__(reason, 413)
