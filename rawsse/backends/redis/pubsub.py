"""The one Pub/Sub connection of a process: channels subscribed and unsubscribed
incrementally, replies read one at a time and handed on, the connection watched and
re-made with backoff.

It is a raw connection of redis-py's, not its ``PubSub`` object, because the backend
must know exactly when a channel's subscription took effect (its confirmation) and when
the connection was lost and re-made (to catch up on what was published meanwhile);
redis-py's ``PubSub`` re-subscribes on its own and hides both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Iterable
from typing import Any

from redis.asyncio.connection import ConnectionPool
from redis.exceptions import RedisError

__all__ = ["PubSubConnection"]

logger = logging.getLogger("rawsse.redis")

#: Channels per SUBSCRIBE or UNSUBSCRIBE command: a process re-subscribing to 10 000
#: topics after a reconnect sends 20 commands, not one of 10 000 arguments.
CHANNELS_PER_COMMAND = 500

#: Reconnection waits start here and double up to ``MAX_BACKOFF``, with jitter, so that
#: many processes do not all reconnect at the same instant.
FIRST_BACKOFF = 0.05
MAX_BACKOFF = 2.0


class PubSubConnection:
    """Subscribes to what it is told to and hands every reply on.

    Args:
        url: the Redis URL.
        name: the connection's ``CLIENT SETNAME``, to find it in ``CLIENT LIST``.
        timeout: seconds to connect, and without any reply to a ping before the
            connection counts as dead (a vanished Redis does not close its sockets).
        on_connected: called once the connection is made, before any subscription on it.
        on_subscribed: called with each channel (or pattern) whose subscription took
            effect.
        on_message: called with each message's channel and data (a pattern's message
            with the channel it was published on).
        on_lost: called with the error when an established connection is lost.
    """

    def __init__(
        self,
        url: str,
        *,
        name: str,
        timeout: float,
        on_connected: Callable[[], None],
        on_subscribed: Callable[[bytes], None],
        on_message: Callable[[bytes, bytes], None],
        on_lost: Callable[[BaseException], None],
    ) -> None:
        # RESP2: Pub/Sub replies are plain arrays (RESP3 would deliver them as push
        # messages, which redis-py routes to handlers of its own).
        self._pool = ConnectionPool.from_url(
            url, socket_connect_timeout=timeout, protocol=2, client_name=name
        )
        self._timeout = timeout
        self._on_connected = on_connected
        self._on_subscribed = on_subscribed
        self._on_message = on_message
        self._on_lost = on_lost
        self._connection: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._writes: set[asyncio.Task[None]] = set()
        self._subscribe: set[str] = set()
        self._unsubscribe: set[str] = set()
        self._psubscribe: set[str] = set()
        self._punsubscribe: set[str] = set()
        self._flush_scheduled = False
        self._last_reply = 0.0
        self._closed = False
        #: Whether a connection is established now.
        self.connected = False

    # -- what to listen to ------------------------------------------------------------

    def subscribe(self, channels: Iterable[str], *, pattern: bool = False) -> None:
        """Subscribe to ``channels`` (sent at the end of this loop iteration, in one
        command with whatever else is asked meanwhile); glob patterns of channels
        (``PSUBSCRIBE``) if ``pattern``."""
        add, drop = self._wanted(pattern)
        for channel in channels:
            drop.discard(channel)
            add.add(channel)
        self._schedule_flush()

    def unsubscribe(self, channels: Iterable[str], *, pattern: bool = False) -> None:
        """Unsubscribe from ``channels`` (sent as :meth:`subscribe`)."""
        drop, add = self._wanted(pattern)
        for channel in channels:
            drop.discard(channel)
            add.add(channel)
        self._schedule_flush()

    def _wanted(self, pattern: bool) -> tuple[set[str], set[str]]:
        """The channels (or patterns) to subscribe and to unsubscribe."""
        if pattern:
            return self._psubscribe, self._punsubscribe
        return self._subscribe, self._unsubscribe

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled and self.connected:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self.connected or self._closed:
            return
        subscribe, self._subscribe = sorted(self._subscribe), set()
        unsubscribe, self._unsubscribe = sorted(self._unsubscribe), set()
        psubscribe, self._psubscribe = sorted(self._psubscribe), set()
        punsubscribe, self._punsubscribe = sorted(self._punsubscribe), set()
        commands = [("UNSUBSCRIBE", c) for c in _chunks(unsubscribe)]
        commands += [("PUNSUBSCRIBE", c) for c in _chunks(punsubscribe)]
        commands += [("SUBSCRIBE", c) for c in _chunks(subscribe)]
        commands += [("PSUBSCRIBE", c) for c in _chunks(psubscribe)]
        if commands:
            self._send([(name, *chunk) for name, chunk in commands])

    def _send(self, commands: list[tuple[str, ...]]) -> None:
        """Write ``commands`` (tasks start in order, and each writes before its first
        ``await``, so commands go out in the order they were sent)."""
        connection = self._connection
        packed = connection.pack_commands(commands)
        task = asyncio.get_running_loop().create_task(self._write(connection, packed))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, connection: Any, packed: list[bytes]) -> None:
        try:
            await connection.send_packed_command(packed, check_health=False)
        except (RedisError, OSError) as exc:
            logger.debug("pub/sub write failed: %s", exc)
            self.drop()

    # -- the connection ------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, read, and reconnect with backoff, until :meth:`close`."""
        backoff = FIRST_BACKOFF
        while not self._closed:
            connection = self._pool.make_connection()  # type: ignore[no-untyped-call]
            try:
                await connection.connect()
            except (RedisError, OSError) as exc:
                logger.debug("cannot connect to redis: %s", exc)
                await asyncio.sleep(backoff * random.uniform(0.5, 1.5))
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = FIRST_BACKOFF
            self._connection = connection
            self.connected = True
            self._last_reply = asyncio.get_running_loop().time()
            self._on_connected()
            self._schedule_flush()
            self._watchdog = asyncio.get_running_loop().call_later(self._timeout, self._watch)
            self._reader = reader = asyncio.get_running_loop().create_task(self._read(connection))
            try:
                await asyncio.wait([reader])
                error = ConnectionError("silent") if reader.cancelled() else reader.exception()
                if error is not None and not isinstance(error, (RedisError, OSError, EOFError)):
                    logger.error("error handling a pub/sub reply", exc_info=error)
                if not self._closed:
                    self._lost(error or ConnectionError("closed"))
            finally:
                self._reader = None
                if self._watchdog is not None:
                    self._watchdog.cancel()
                self.connected = False
                self._connection = None
                for asked in (self._subscribe, self._unsubscribe, self._psubscribe,
                              self._punsubscribe):  # fmt: skip
                    asked.clear()
                with contextlib.suppress(Exception):
                    await connection.disconnect()

    def _lost(self, exc: BaseException) -> None:
        self.connected = False
        self._on_lost(exc)

    async def _read(self, connection: Any) -> None:
        loop = asyncio.get_running_loop()
        on_message, on_subscribed = self._on_message, self._on_subscribed
        while True:
            reply = await connection.read_response()
            self._last_reply = loop.time()
            kind = reply[0]
            if kind == b"message":
                on_message(reply[1], reply[2])
            elif kind == b"pmessage":
                on_message(reply[2], reply[3])
            elif kind == b"subscribe" or kind == b"psubscribe":
                on_subscribed(reply[1])

    def _watch(self) -> None:
        """Ping; if nothing at all came back within the timeout, drop the connection
        (the read then fails, and ``run`` reconnects)."""
        if not self.connected:
            return
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_reply > 2 * self._timeout:
            logger.warning(
                "redis pub/sub connection silent for %.1fs: reconnecting", 2 * self._timeout
            )
            self.drop()
            return
        self._send([("PING",)])
        self._watchdog = loop.call_later(self._timeout, self._watch)

    def drop(self) -> None:
        """Drop the connection now; ``run`` reconnects."""
        if self._reader is not None:
            self._reader.cancel()

    async def close(self) -> None:
        """Stop reconnecting and drop the connection, and the writes still on their way
        (a write that ran after the pool's disconnect would connect again, and be left
        waiting)."""
        self._closed = True
        self.drop()
        writes = list(self._writes)
        for task in writes:
            task.cancel()
        await asyncio.gather(*writes, return_exceptions=True)
        await self._pool.disconnect()


def _chunks(channels: list[str]) -> list[list[str]]:
    return [
        channels[i : i + CHANNELS_PER_COMMAND]
        for i in range(0, len(channels), CHANNELS_PER_COMMAND)
    ]
