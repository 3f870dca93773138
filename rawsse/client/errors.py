"""What a publish or a subscription can fail with, typed by what the caller can do
about it: fix the credential (401, 403), wait (429, 503, with the hub's
``Retry-After``), or fix the event (400, 413). Each carries the HTTP status and the
hub's reason."""

from __future__ import annotations

__all__ = [
    "ClientError",
    "DuplicateId",
    "Forbidden",
    "InvalidEvent",
    "RateLimited",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
    "error_for",
]


class ClientError(Exception):
    """A request the hub refused, or could not be reached for.

    Attributes:
        status: the HTTP status (0 when no answer came: a timeout, a lost connection).
        reason: the hub's reason, or what went wrong.
        retry_after: seconds the hub asked to wait before trying again (``None``: it
            did not say).
    """

    def __init__(self, reason: str, status: int = 0, retry_after: float | None = None) -> None:
        super().__init__(f"{status} {reason}" if status else reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


class Unauthorized(ClientError):
    """401: no credential, a wrong key, or a token that failed verification."""


class Forbidden(ClientError):
    """403: a valid credential that does not cover a topic (or may not publish)."""


class RateLimited(ClientError):
    """429: over the credential's publish rate; ``retry_after`` says when to try again."""


class Unavailable(ClientError):
    """503 (the hub's backend is down, or it is shutting down), or no answer at all
    (``status`` 0), after the client's own retries."""


class InvalidEvent(ClientError):
    """400: the hub refused the event as malformed (the reason says which field)."""


class DuplicateId(InvalidEvent):
    """409: an event with this id is kept already. A retry the client makes itself
    counts this as published; the caller sees it only for an id it gave that an earlier
    event had."""


class TooLarge(ClientError):
    """413: the event (or the batch) is over the hub's limit."""


_BY_STATUS: dict[int, type[ClientError]] = {
    400: InvalidEvent,
    401: Unauthorized,
    403: Forbidden,
    409: DuplicateId,
    413: TooLarge,
    415: InvalidEvent,
    429: RateLimited,
    503: Unavailable,
}


def error_for(status: int, reason: str, retry_after: str | None = None) -> ClientError:
    """The error of an answer with ``status`` (an unlisted 4xx is :class:`ClientError`,
    a 5xx :class:`Unavailable`)."""
    kind = _BY_STATUS.get(status)
    if kind is None:
        kind = Unavailable if status >= 500 else ClientError
    wait: float | None = None
    if retry_after is not None:
        try:
            wait = max(0.0, float(retry_after))
        except ValueError:
            wait = None
    return kind(reason.strip() or f"HTTP {status}", status, wait)
