"""The synchronous client: publish from a Django view, a Celery task or a script;
consume a stream in a thread. One :class:`httpx.Client` underneath (keep-alive
connections, pooling, TLS, proxies), safe to share between threads."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any

import httpx

from rawsse.client.common import Settings
from rawsse.client.errors import ClientError, Unavailable
from rawsse.client.events import AuthExpiring, Event, Notice
from rawsse.client.protocol import EventFields, batch_line, batch_results

__all__ = ["Client"]


class Client(Settings):
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
        super().__init__(
            url,
            key=key,
            token=token,
            timeout=timeout,
            retries=retries,
            stream_timeout=stream_timeout,
        )
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
        attempt = self._publish_try(topics, data, event, id, retry)
        while True:
            try:
                answer = self._http.post(attempt.url, content=attempt.body, headers=attempt.headers)
            except httpx.TransportError as exc:
                error = attempt.lost(exc)
            else:
                try:
                    return attempt.answered(answer.status_code, answer.text, answer.headers)
                except ClientError as exc:
                    error = exc
            self.sleep(attempt.wait_after(error))

    def publish_many(self, events: Iterable[EventFields]) -> list[str | ClientError]:
        """Publish events (dicts with the JSON form's keys: ``topic``, ``data``,
        ``event``, ``id``, ``retry``) over one request, streamed as they come from
        ``events`` (a generator is read as the request is written); each one's id, or
        its refusal, in order. Not retried: give the events ids to resend them safely.

        Raises:
            ValueError: an event with an unknown key or without a topic.
            ClientError: the batch as a whole was refused, or no answer came.
        """
        url, headers = self._batch()
        lines = (batch_line(fields) for fields in events)
        try:
            answer = self._http.post(url, content=lines, headers=headers)
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
        subscription = self._subscription(topics, last_event_id, token)
        while True:
            url, headers = subscription.request()
            failure: ClientError | None = None
            fresh: str | None = None
            try:
                with self._http.stream(
                    "GET", url, headers=headers, timeout=subscription.timeout
                ) as answer:
                    if answer.status_code != 200:
                        answer.read()
                        failure = subscription.refused(
                            answer.status_code, answer.text, answer.headers
                        )
                    else:
                        for line in answer.iter_lines():
                            item = subscription.line(line)
                            if item is None:
                                continue
                            if isinstance(item, AuthExpiring) and on_auth_expiring is not None:
                                fresh = on_auth_expiring(item)
                            yield item
                            if fresh is not None:
                                break  # re-made at once with the fresh token
            except httpx.TransportError as exc:
                failure = subscription.lost(exc)
            if fresh is not None:
                subscription.renew(fresh)
                continue
            self.sleep(subscription.wait(failure))
