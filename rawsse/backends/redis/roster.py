"""Every server's active Mercure subscriptions, listed in Redis (the subscription API
on Redis): each process keeps its own in one hash, ``PREFIXsubs:TOKEN`` (field: the
subscription's id; value: its JSON document), which expires unless the process
refreshes it. A process that stops cleanly deletes its hash; one that dies stops
refreshing it, and its subscriptions leave every listing within ``ttl`` seconds.

Writes are sent as they happen, without waiting (an error is logged, and the next
refresh writes everything again: also what a Redis that lost its data needs); a
listing reads every process's hash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from rawsse.errors import BackendUnavailable

__all__ = ["DEFAULT_ROSTER_TTL", "RedisRoster"]

logger = logging.getLogger("rawsse.redis")

#: Seconds a process's subscriptions stay listed after it stopped refreshing them; it
#: refreshes three times as often.
DEFAULT_ROSTER_TTL = 10.0


class RedisRoster:
    """This process's subscriptions in Redis, and every process's listing.

    Args:
        client: the backend's Redis client.
        key: this process's hash.
        pattern: the ``SCAN`` pattern of every process's hash.
        ttl: seconds a hash outlives its last refresh.
    """

    def __init__(self, client: Redis, key: str, pattern: str, ttl: float = DEFAULT_ROSTER_TTL):
        self._client = client
        self._key = key
        self._pattern = pattern
        self._ttl_ms = max(1, int(ttl * 1000))
        self._ttl = ttl
        self._documents: dict[str, str] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._refresher: asyncio.TimerHandle | None = None

    def add(self, key: str, document: str) -> None:
        """Listed from now on (and kept listed while this process refreshes it)."""
        self._documents[key] = document
        self._send(self._write({key: document}))
        if self._refresher is None:
            loop = asyncio.get_running_loop()
            self._refresher = loop.call_later(self._ttl / 3, self._refresh)

    def remove(self, key: str) -> None:
        """No longer listed."""
        if self._documents.pop(key, None) is not None:
            self._send(self._delete(key))

    async def listing(self) -> list[str]:
        """Every process's subscriptions' documents.

        Raises:
            BackendUnavailable: Redis did not answer.
        """
        try:
            keys = [key async for key in self._client.scan_iter(match=self._pattern, count=1000)]
            pipeline = self._client.pipeline(transaction=False)
            for key in keys:
                pipeline.hvals(key)
            found = await pipeline.execute()
        except (RedisError, OSError) as exc:
            raise BackendUnavailable(f"redis: {exc}") from None
        return [value.decode("utf-8") for values in found for value in values]

    async def close(self) -> None:
        """Stop refreshing, and take this process's subscriptions off the listing."""
        if self._refresher is not None:
            self._refresher.cancel()
            self._refresher = None
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self._documents:
            self._documents.clear()
            with contextlib.suppress(RedisError, OSError):
                await self._client.delete(self._key)

    # -- writes -------------------------------------------------------------------------

    def _refresh(self) -> None:
        self._refresher = None
        if self._documents:
            self._send(self._write(dict(self._documents)))
            self._refresher = asyncio.get_running_loop().call_later(self._ttl / 3, self._refresh)

    def _send(self, write: Any) -> None:
        task = asyncio.get_running_loop().create_task(write)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, documents: dict[str, str]) -> None:
        try:
            pipeline = self._client.pipeline(transaction=True)
            pipeline.hset(self._key, mapping=documents)  # type: ignore[arg-type]
            pipeline.pexpire(self._key, self._ttl_ms)
            await pipeline.execute()
        except (RedisError, OSError) as exc:
            logger.warning("subscriptions not listed in redis yet: %s", exc)

    async def _delete(self, key: str) -> None:
        try:
            await self._client.hdel(self._key, key)
        except (RedisError, OSError) as exc:
            logger.warning("an ended subscription stays listed in redis for now: %s", exc)
