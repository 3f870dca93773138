"""The asynchronous client: publish from FastAPI's endpoints or any asyncio program,
consume a stream as an async iterator. One :class:`httpx.AsyncClient` underneath; one
client per event loop (it refuses to be used from another)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Sequence
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

__all__ = ["AsyncClient"]

_JSON = {"Content-Type": "application/json"}
_NDJSON = {"Content-Type": "application/x-ndjson"}

#: What ``on_auth_expiring`` may be: a function, or a coroutine function, that returns a
#: fresh token (or ``None`` to keep the one there is).
TokenHook = Callable[[AuthExpiring], "str | Awaitable[str | None] | None"]


class AsyncClient:
    """:class:`rawsse.client.Client` for asyncio: the same arguments, the same
    behaviour, awaited."""

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        key: str | None = None,
        token: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        stream_timeout: float = 60.0,
        http: httpx.AsyncClient | None = None,
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
        self._http = http if http is not None else httpx.AsyncClient(timeout=timeout)
        self._loop: asyncio.AbstractEventLoop | None = None
        #: How the client waits between tries (replaceable in tests).
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections (not those of an ``http`` client passed in)."""
        if self._owned:
            await self._http.aclose()

    def _check_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError("an AsyncClient belongs to the event loop it was first used in")

    # -- publishing -----------------------------------------------------------------------

    def _publish_headers(self) -> dict[str, str]:
        """A publish's headers, made again only when ``token`` changed."""
        if self._headers_token is not self.token or self._headers is None:
            self._headers = {**auth_headers(self._key, self.token), **_JSON}
            self._headers_token = self.token
        return self._headers

    async def publish(
        self,
        topics: str | Sequence[str],
        data: Any,
        *,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
    ) -> str:
        """See :meth:`rawsse.client.Client.publish`."""
        self._check_loop()
        chosen = id if id is not None else (new_id() if self._retries else None)
        body = event_body(topics, data, event=event, id=chosen, retry=retry)
        headers = self._publish_headers()
        backoff = Backoff()
        attempt = 0
        while True:
            url = self._urls[attempt % len(self._urls)] + "/publish"
            try:
                answer = await self._http.post(url, content=body, headers=headers)
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
            await self.sleep(backoff.next(error.retry_after))

    async def publish_many(
        self, events: Iterable[EventFields] | AsyncIterable[EventFields]
    ) -> list[str | ClientError]:
        """See :meth:`rawsse.client.Client.publish_many`; ``events`` may also be an
        async iterable (an async generator is read as the request is written)."""
        self._check_loop()
        headers = {**auth_headers(self._key, self.token), **_NDJSON}
        try:
            answer = await self._http.post(
                self._urls[0] + "/publish", content=_lines(events), headers=headers
            )
        except httpx.TransportError as exc:
            raise Unavailable(f"no answer: {exc!r}") from None
        return batch_results(answer.status_code, answer.text, answer.headers.get("retry-after"))

    # -- subscribing ----------------------------------------------------------------------

    async def subscribe(
        self,
        topics: str | Sequence[str],
        *,
        last_event_id: str | None = None,
        token: str | None = None,
        on_auth_expiring: TokenHook | None = None,
    ) -> AsyncIterator[Event | Notice]:
        """See :meth:`rawsse.client.Client.subscribe`; ``on_auth_expiring`` may be a
        coroutine function."""
        self._check_loop()
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
                async with self._http.stream(
                    "GET", url, headers=headers, timeout=timeout
                ) as answer:
                    if answer.status_code != 200:
                        await answer.aread()
                        failure = error_for(
                            answer.status_code, answer.text, answer.headers.get("retry-after")
                        )
                        if refused_for_good(failure):
                            raise failure
                    else:
                        decoder = Decoder()
                        async for line in answer.aiter_lines():
                            block = decoder.line(line)
                            item = None if block is None else state.read(block)
                            if item is None:
                                continue
                            if isinstance(item, AuthExpiring) and on_auth_expiring is not None:
                                got = on_auth_expiring(item)
                                fresh = await got if isinstance(got, Awaitable) else got
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
            await self.sleep(state.wait(failure))


async def _lines(
    events: Iterable[EventFields] | AsyncIterable[EventFields],
) -> AsyncIterator[bytes]:
    if isinstance(events, AsyncIterable):
        async for fields in events:
            yield batch_line(fields)
    else:
        for fields in events:
            yield batch_line(fields)
