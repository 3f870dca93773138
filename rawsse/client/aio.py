"""The asynchronous client: publish from FastAPI's endpoints or any asyncio program,
consume a stream as an async iterator. One :class:`httpx.AsyncClient` underneath; one
client per event loop (it refuses to be used from another)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from types import TracebackType
from typing import Any

import httpx

from rawsse.client.common import Settings
from rawsse.client.errors import ClientError, Unavailable
from rawsse.client.events import AuthExpiring, Event, Notice
from rawsse.client.protocol import EventFields, batch_line, batch_results

__all__ = ["AsyncClient"]

#: What ``on_auth_expiring`` may be: a function, or a coroutine function, that returns a
#: fresh token (or ``None`` to keep the one there is).
TokenHook = Callable[[AuthExpiring], "str | Awaitable[str | None] | None"]


class AsyncClient(Settings):
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
        super().__init__(
            url,
            key=key,
            token=token,
            timeout=timeout,
            retries=retries,
            stream_timeout=stream_timeout,
        )
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
        attempt = self._publish_try(topics, data, event, id, retry)
        while True:
            try:
                answer = await self._http.post(
                    attempt.url, content=attempt.body, headers=attempt.headers
                )
            except httpx.TransportError as exc:
                error = attempt.lost(exc)
            else:
                try:
                    return attempt.answered(answer.status_code, answer.text, answer.headers)
                except ClientError as exc:
                    error = exc
            await self.sleep(attempt.wait_after(error))

    async def publish_many(
        self, events: Iterable[EventFields] | AsyncIterable[EventFields]
    ) -> list[str | ClientError]:
        """See :meth:`rawsse.client.Client.publish_many`; ``events`` may also be an
        async iterable (an async generator is read as the request is written)."""
        self._check_loop()
        url, headers = self._batch()
        try:
            answer = await self._http.post(url, content=_lines(events), headers=headers)
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
        subscription = self._subscription(topics, last_event_id, token)
        while True:
            url, headers = subscription.request()
            failure: ClientError | None = None
            fresh: str | None = None
            try:
                async with self._http.stream(
                    "GET", url, headers=headers, timeout=subscription.timeout
                ) as answer:
                    if answer.status_code != 200:
                        await answer.aread()
                        failure = subscription.refused(
                            answer.status_code, answer.text, answer.headers
                        )
                    else:
                        async for line in answer.aiter_lines():
                            item = subscription.line(line)
                            if item is None:
                                continue
                            if isinstance(item, AuthExpiring) and on_auth_expiring is not None:
                                got = on_auth_expiring(item)
                                fresh = await got if isinstance(got, Awaitable) else got
                            yield item
                            if fresh is not None:
                                break  # re-made at once with the fresh token
            except httpx.TransportError as exc:
                failure = subscription.lost(exc)
            if fresh is not None:
                subscription.renew(fresh)
                continue
            await self.sleep(subscription.wait(failure))


async def _lines(
    events: Iterable[EventFields] | AsyncIterable[EventFields],
) -> AsyncIterator[bytes]:
    if isinstance(events, AsyncIterable):
        async for fields in events:
            yield batch_line(fields)
    else:
        for fields in events:
            yield batch_line(fields)
