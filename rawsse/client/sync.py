"""The synchronous client: publish from a Django view, a Celery task or a script;
consume a stream in a thread. One :class:`httpx.Client` underneath (keep-alive
connections, pooling, TLS, proxies), safe to share between threads."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any

import httpx

from rawsse.client.errors import ClientError, Unavailable, error_for
from rawsse.client.events import AuthExpiring, Event, Notice
from rawsse.client.protocol import (
    Backoff,
    Decoder,
    EventFields,
    Resumption,
    answered_id,
    auth_headers,
    batch_line,
    batch_results,
    event_body,
    new_id,
    refused_for_good,
    retryable,
    stream_url,
)

__all__ = ["Client"]

_JSON = {"Content-Type": "application/json"}
_NDJSON = {"Content-Type": "application/x-ndjson"}


class Client:
    """Publish to, and subscribe at, a rawsse hub.

    Args:
        url: the hub's base URL (``http://127.0.0.1:8000``), or several (servers
            sharing a Redis): a retry or a reconnection moves to the next.
        key: the publish key (``Authorization: Bearer``).
        token: a JWT instead (for publishing and, with ``--subscribe-auth``,
            subscribing).
        timeout: seconds to connect, and to wait for an answer.
        retries: tries after the first for a publish that may have gone through
            unanswered (no answer, or 5xx); each carries the same id, so none is
            published twice. 0: no retry, and the hub assigns the ids.
        stream_timeout: seconds a subscription may stay silent before it is taken for
            dead and re-made (the hub sends a heartbeat every 15 s by default).
        http: an ``httpx.Client`` of the caller's (its settings: TLS, proxies), which
            :meth:`close` leaves open.
    """

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        key: str | None = None,
        token: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        stream_timeout: float = 60.0,
        http: httpx.Client | None = None,
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
        self._owned = http is None
        self._http = http if http is not None else httpx.Client(timeout=timeout)
        #: How the client waits between tries (replaceable in tests).
        self.sleep: Callable[[float], None] = time.sleep

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections (not those of an ``http`` client passed in)."""
        if self._owned:
            self._http.close()

    # -- publishing -----------------------------------------------------------------------

    def _publish_headers(self) -> dict[str, str]:
        """A publish's headers, made again only when ``token`` changed."""
        if self._headers_token is not self.token or self._headers is None:
            self._headers = {**auth_headers(self._key, self.token), **_JSON}
            self._headers_token = self.token
        return self._headers

    def publish(
        self,
        topics: str | Sequence[str],
        data: Any,
        *,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
    ) -> str:
        """Publish one event; its id.

        Args:
            topics: a topic, or several (a subscriber of more than one gets it once).
            data: text, or anything JSON can write (sent as its compact JSON text).
            event: the event type (``message`` when ``None``).
            id: an id of the caller's (unique within the hub's history); by default
                one the client draws, so that a retry cannot duplicate the event.
            retry: a reconnection time in ms for the subscribers.

        Raises:
            Unauthorized, Forbidden, RateLimited, InvalidEvent, DuplicateId, TooLarge:
                the hub's refusal.
            Unavailable: no answer, or 5xx, after the retries.
        """
        chosen = id if id is not None else (new_id() if self._retries else None)
        body = event_body(topics, data, event=event, id=chosen, retry=retry)
        headers = self._publish_headers()
        backoff = Backoff()
        attempt = 0
        while True:
            url = self._urls[attempt % len(self._urls)] + "/publish"
            try:
                answer = self._http.post(url, content=body, headers=headers)
            except httpx.TransportError as exc:
                error: ClientError = Unavailable(f"no answer: {exc!r}")
            else:
                if answer.status_code == 200:
                    return answer.text.strip()
                try:
                    return answered_id(
                        answer.status_code,
                        answer.text,
                        answer.headers.get("retry-after"),
                        chosen=chosen,
                        retried=attempt > 0 or id is None,
                    )
                except ClientError as exc:
                    error = exc
            if not retryable(error) or attempt >= self._retries:
                raise error
            attempt += 1
            self.sleep(backoff.next(error.retry_after))

    def publish_many(self, events: Iterable[EventFields]) -> list[str | ClientError]:
        """Publish events (dicts with the JSON form's keys: ``topic``, ``data``,
        ``event``, ``id``, ``retry``) over one request, streamed as they come from
        ``events`` (a generator is read as the request is written); each one's id, or
        its refusal, in order. Not retried: give the events ids to resend them safely.

        Raises:
            ValueError: an event with an unknown key or without a topic.
            ClientError: the batch as a whole was refused, or no answer came.
        """
        headers = {**auth_headers(self._key, self.token), **_NDJSON}
        lines = (batch_line(fields) for fields in events)
        try:
            answer = self._http.post(self._urls[0] + "/publish", content=lines, headers=headers)
        except httpx.TransportError as exc:
            raise Unavailable(f"no answer: {exc!r}") from None
        return batch_results(answer.status_code, answer.text, answer.headers.get("retry-after"))

    # -- subscribing ----------------------------------------------------------------------

    def subscribe(
        self,
        topics: str | Sequence[str],
        *,
        last_event_id: str | None = None,
        token: str | None = None,
        on_auth_expiring: Callable[[AuthExpiring], str | None] | None = None,
    ) -> Iterator[Event | Notice]:
        """The events of ``topics`` as they are published, for as long as the caller
        iterates: reconnecting by itself (the hub's ``retry:``, else a backoff with
        jitter), resuming after the last event received, moving to the next URL after
        a failure. The hub's notices come as :class:`Lost` and :class:`AuthExpiring`.

        Args:
            last_event_id: resume after this event (``earliest``: all kept).
            token: the subscription's token (default: the client's).
            on_auth_expiring: called when the token is about to expire; a fresh
                token it returns is used at once (the stream is re-made, resuming).

        Raises:
            Unauthorized, Forbidden, InvalidEvent: the subscription is refused (a 4xx
                other than 429 is not retried).
        """
        state = Resumption(last_event_id)
        credential = token if token is not None else self.token
        timeout = httpx.Timeout(self._timeout, read=self._stream_timeout)
        index = 0
        while True:
            url = stream_url(self._urls[index % len(self._urls)], topics)
            headers = {**auth_headers(None, credential), **state.headers()}
            failure: ClientError | None = None
            fresh: str | None = None
            try:
                with self._http.stream("GET", url, headers=headers, timeout=timeout) as answer:
                    if answer.status_code != 200:
                        answer.read()
                        failure = error_for(
                            answer.status_code, answer.text, answer.headers.get("retry-after")
                        )
                        if refused_for_good(failure):
                            raise failure
                    else:
                        decoder = Decoder()
                        for line in answer.iter_lines():
                            block = decoder.line(line)
                            item = None if block is None else state.read(block)
                            if item is None:
                                continue
                            if isinstance(item, AuthExpiring) and on_auth_expiring is not None:
                                fresh = on_auth_expiring(item)
                            yield item
                            if fresh is not None:
                                break  # re-made at once with the fresh token
            except httpx.TransportError as exc:
                failure = Unavailable(f"stream lost: {exc!r}")
            if fresh is not None:
                credential = fresh
                continue
            if failure is not None:
                index += 1
            self.sleep(state.wait(failure))
