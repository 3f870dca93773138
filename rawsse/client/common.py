"""What :class:`~rawsse.client.Client` and :class:`~rawsse.client.AsyncClient` share
beyond the protocol (:mod:`.protocol`): their settings, and the state of one publish
with its retries and of one subscription with its reconnections. Each client keeps
only its I/O (a call, or an awaited call) around these, so that the two cannot drift
apart in what they decide."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from rawsse.client.errors import ClientError, Unavailable, error_for
from rawsse.client.events import Event, Notice
from rawsse.client.protocol import (
    Backoff,
    Decoder,
    Resumption,
    answered_id,
    auth_headers,
    event_body,
    new_id,
    refused_for_good,
    retryable,
    stream_url,
)

__all__ = ["PublishTry", "Settings", "Subscription"]

_JSON = {"Content-Type": "application/json"}
_NDJSON = {"Content-Type": "application/x-ndjson"}


class Settings:
    """A client's hub URLs, credential, timeouts and retries (the arguments both
    clients take; see :class:`rawsse.client.Client`)."""

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        key: str | None,
        token: str | None,
        timeout: float,
        retries: int,
        stream_timeout: float,
    ) -> None:
        self._urls = [url.rstrip("/")] if isinstance(url, str) else [u.rstrip("/") for u in url]
        if not self._urls:
            raise ValueError("give the hub's URL")
        self._key = key
        #: The token sent (publishing, and subscribing by default); may be replaced.
        self.token = token
        self._headers: dict[str, str] | None = None
        self._headers_token: str | None = None
        self._retries = max(0, retries)
        self._timeout = timeout
        self._stream_timeout = stream_timeout

    def _publish_headers(self) -> dict[str, str]:
        """A publish's headers, made again only when ``token`` changed."""
        if self._headers_token is not self.token or self._headers is None:
            self._headers = {**auth_headers(self._key, self.token), **_JSON}
            self._headers_token = self.token
        return self._headers

    def _publish_try(
        self,
        topics: str | Sequence[str],
        data: Any,
        event: str | None,
        id: str | None,
        retry: int | None,
    ) -> PublishTry:
        return PublishTry(self, topics, data, event, id, retry)

    def _batch(self) -> tuple[str, dict[str, str]]:
        """A batch's URL and headers."""
        return self._urls[0] + "/publish", {**auth_headers(self._key, self.token), **_NDJSON}

    def _subscription(
        self, topics: str | Sequence[str], last_event_id: str | None, token: str | None
    ) -> Subscription:
        return Subscription(self, topics, last_event_id, token if token is not None else self.token)


class PublishTry:
    """One publish and its retries: the body, with the id chosen before the first try
    (so that no retry can publish it twice), which try this is, and what an answer or
    a failure means."""

    __slots__ = ("body", "headers", "_settings", "_chosen", "_ours", "_attempt", "_backoff")

    def __init__(
        self,
        settings: Settings,
        topics: str | Sequence[str],
        data: Any,
        event: str | None,
        id: str | None,
        retry: int | None,
    ) -> None:
        chosen = id if id is not None else (new_id() if settings._retries else None)
        self.body = event_body(topics, data, event=event, id=chosen, retry=retry)
        self.headers = settings._publish_headers()
        self._settings = settings
        self._chosen = chosen
        self._ours = id is None  # a 409 for an id the client drew is its first try's
        self._attempt = 0
        self._backoff: Backoff | None = None

    @property
    def url(self) -> str:
        """Where this try goes: the next URL after each failure."""
        urls = self._settings._urls
        return urls[self._attempt % len(urls)] + "/publish"

    def answered(self, status: int, text: str, headers: Mapping[str, str]) -> str:
        """The id an answer gives.

        Raises:
            ClientError: the answer's error.
        """
        if status == 200:
            return text.strip()
        return answered_id(
            status,
            text,
            headers.get("retry-after"),
            chosen=self._chosen,
            retried=self._attempt > 0 or self._ours,
        )

    def lost(self, exc: Exception) -> ClientError:
        """The error of a try that got no answer."""
        return Unavailable(f"no answer: {exc!r}")

    def wait_after(self, error: ClientError) -> float:
        """Seconds to wait before the next try, after ``error``.

        Raises:
            ClientError: ``error``, when it may not be retried, or the tries are spent.
        """
        if not retryable(error) or self._attempt >= self._settings._retries:
            raise error
        self._attempt += 1
        if self._backoff is None:
            self._backoff = Backoff()
        return self._backoff.next(error.retry_after)


class Subscription:
    """One subscription across its connections: where it resumes, which URL and
    credential the next connection uses, what a refusal means, and how long to wait
    before the next connection."""

    __slots__ = ("timeout", "_settings", "_topics", "_state", "_credential", "_index",
                 "_decoder")  # fmt: skip

    def __init__(
        self,
        settings: Settings,
        topics: str | Sequence[str],
        last_event_id: str | None,
        credential: str | None,
    ) -> None:
        #: A connection may stay silent this long before it is taken for dead.
        self.timeout = httpx.Timeout(settings._timeout, read=settings._stream_timeout)
        self._settings = settings
        self._topics = topics
        self._state = Resumption(last_event_id)
        self._credential = credential
        self._index = 0
        self._decoder = Decoder()

    def request(self) -> tuple[str, dict[str, str]]:
        """The next connection's URL and headers (resuming after the last event)."""
        urls = self._settings._urls
        url = stream_url(urls[self._index % len(urls)], self._topics)
        self._decoder = Decoder()
        return url, {**auth_headers(None, self._credential), **self._state.headers()}

    def refused(self, status: int, text: str, headers: Mapping[str, str]) -> ClientError:
        """The failure of a connection answered other than 200.

        Raises:
            ClientError: the refusal is final (a 4xx other than 429).
        """
        failure = error_for(status, text, headers.get("retry-after"))
        if refused_for_good(failure):
            raise failure
        return failure

    def lost(self, exc: Exception) -> ClientError:
        """The failure of a connection lost or silent."""
        return Unavailable(f"stream lost: {exc!r}")

    def line(self, line: str) -> Event | Notice | None:
        """What one line of the stream gives the caller, if anything."""
        block = self._decoder.line(line)
        return None if block is None else self._state.read(block)

    def renew(self, token: str) -> None:
        """The next connection uses ``token`` (made at once, resuming)."""
        self._credential = token

    def wait(self, failure: ClientError | None) -> float:
        """Seconds before the next connection: after the stream ended (``failure``
        None), or after a failure (then on the next URL)."""
        if failure is not None:
            self._index += 1
        return self._state.wait(failure)
