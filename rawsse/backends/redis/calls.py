"""Script calls to Redis, pipelined: the calls made while a round trip is in flight go
out together in the next one, so many concurrent publishes cost one round trip per
batch instead of one each, and none waits for another's answer before being sent.

Scripts are called by their SHA1 (``EVALSHA``) and loaded again when Redis answers
``NOSCRIPT`` (after a restart, or ``SCRIPT FLUSH``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from rawsse.errors import BackendUnavailable

__all__ = ["ScriptCalls"]

logger = logging.getLogger("rawsse.redis")

#: Calls per pipelined round trip at most: bounds the size of one request and answer.
MAX_BATCH = 1000

_Call = tuple[str, Sequence[Any], "asyncio.Future[Any]"]


class ScriptCalls:
    """Runs Lua scripts on one Redis client, batched per round trip.

    Args:
        client: a redis-py asyncio client without retries (a retry would hide a
            failure past the timeout).
        scripts: the scripts it may run, by name.
        timeout: seconds a round trip may take before its calls fail.
    """

    def __init__(self, client: Redis, scripts: dict[str, str], *, timeout: float) -> None:
        self._client = client
        self._scripts = scripts
        self._shas = {
            name: hashlib.sha1(source.encode()).hexdigest() for name, source in scripts.items()
        }
        self._timeout = timeout
        self._queue: list[_Call] = []
        self._sender: asyncio.Task[None] | None = None
        #: Pipelined round trips made (each carrying one call or many).
        self.round_trips = 0

    def call(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> asyncio.Future[Any]:
        """Run script ``name``; its answer (or error) arrives on the returned future:
        :class:`BackendUnavailable` when Redis cannot be reached in time."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((name, (len(keys), *keys, *args), future))
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send())
        return future

    async def _send(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                await self._run(batch)
        finally:
            self._sender = None

    async def _run(self, batch: list[_Call]) -> None:
        try:
            results = await asyncio.wait_for(self._round_trip(batch), self._timeout)
        except asyncio.TimeoutError:
            # Sent but unanswered: Redis may still run it (when it resumes).
            error = BackendUnavailable(
                f"redis did not answer within {self._timeout:g}s; may still be published"
            )
            self._fail(batch, error)
            return
        except (RedisError, OSError) as exc:
            logger.debug("redis call failed: %r", exc)
            self._fail(batch, BackendUnavailable(f"redis unavailable: {exc}"))
            return
        for (_, _, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _round_trip(self, batch: list[_Call]) -> list[Any]:
        results = await self._execute(batch)
        if any(isinstance(result, NoScriptError) for result in results):
            await self._load()
            results = await self._execute(batch)
        return results

    async def _execute(self, batch: list[_Call]) -> list[Any]:
        self.round_trips += 1
        pipe = self._client.pipeline(transaction=False)
        for name, args, _ in batch:
            pipe.evalsha(self._shas[name], *args)
        return list(await pipe.execute(raise_on_error=False))

    async def _load(self) -> None:
        for source in self._scripts.values():
            await self._client.script_load(source)

    @staticmethod
    def _fail(batch: list[_Call], error: Exception) -> None:
        for _, _, future in batch:
            if not future.done():
                future.set_exception(error)

    def fail_pending(self, error: Exception) -> None:
        """Fail every call not yet sent (the backend is closing)."""
        queue, self._queue = self._queue, []
        for _, _, future in queue:
            if not future.done():
                future.set_exception(error)
