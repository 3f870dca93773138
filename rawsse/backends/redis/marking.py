"""Placing a process in the order: the marks it sends, and the waits of new streams
that a mark ends.

A mark is the ``MARK`` script (:data:`~rawsse.backends.redis.scripts.MARK`): it
publishes the counter's value on the process's own channel, so everything published
before it reaches the process first. The listening state (:mod:`.listening`) says when
one is due; this unit sends it (once per loop iteration at most, however many
subscriptions were confirmed in it), asks again if it failed, and holds each new
stream's wait until the mark for it arrives (:meth:`Delivery.caught_up` and the live
marks release it) or the time runs out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import Any

from rawsse.backends.redis.calls import ScriptCalls
from rawsse.backends.redis.delivery import Delivery
from rawsse.backends.redis.listening import Listening
from rawsse.backends.redis.pubsub import PubSubConnection
from rawsse.backends.redis.wire import Keys
from rawsse.errors import BackendUnavailable

__all__ = ["Marking", "Waiter"]

logger = logging.getLogger("rawsse.redis")


class Waiter:
    """A new stream's wait for its topics' subscriptions and the mark after them."""

    __slots__ = ("topics", "future", "token")

    def __init__(self, topics: Sequence[str], future: asyncio.Future[None]) -> None:
        self.topics = topics
        self.future = future
        self.token: int | None = None  # the mark that releases it, once sent

    def release(self) -> None:
        """The mark reached the process: the stream may join."""
        if not self.future.done():
            self.future.set_result(None)


class Marking:
    """The marks of one process and the waits they end.

    Args:
        calls: the script calls to Redis.
        keys: the hub's key names.
        channel: the process's own marks channel.
        pubsub: the Pub/Sub connection (a mark is sent only while it is up).
        listening: what is subscribed, and which mark is due.
        delivery: the epoch and watermark a mark carries.
        timeout: seconds a call may take; a wait gets twice that.
    """

    def __init__(
        self,
        calls: ScriptCalls,
        keys: Keys,
        channel: str,
        pubsub: PubSubConnection,
        listening: Listening[Waiter],
        delivery: Delivery[Waiter],
        timeout: float,
    ) -> None:
        self._calls = calls
        self._keys = keys
        self._channel = channel
        self._pubsub = pubsub
        self._listening = listening
        self._delivery = delivery
        self._timeout = timeout
        self._check_scheduled = False

    def wait(self, topics: Sequence[str]) -> Awaitable[None]:
        """Wait for a mark after ``topics`` are subscribed.

        Raises (from the awaitable):
            BackendUnavailable: no mark came in twice the timeout, or the backend closed.
        """
        waiter = Waiter(topics, asyncio.get_running_loop().create_future())
        self._listening.waiters.append(waiter)
        self.check_soon()
        return self._wait(waiter)

    async def _wait(self, waiter: Waiter) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(waiter.future), self._timeout * 2)
        except asyncio.TimeoutError:
            raise BackendUnavailable("redis did not answer in time") from None
        finally:
            if waiter in self._listening.waiters:
                self._listening.waiters.remove(waiter)

    def fail(self, error: BackendUnavailable) -> None:
        """Every wait ends with ``error`` (the backend is closing)."""
        for waiter in self._listening.waiters:
            if not waiter.future.done():
                waiter.future.set_exception(error)
                waiter.future.exception()  # retrieved: whoever waits sees it, or no one
        self._listening.waiters.clear()

    def check_soon(self) -> None:
        """Send a mark at the end of this loop iteration if one is due then."""
        if not self._check_scheduled:
            self._check_scheduled = True
            asyncio.get_running_loop().call_soon(self._check)

    def _check(self) -> None:
        self._check_scheduled = False
        if not self._pubsub.connected:
            return
        token = self._listening.mark_due()
        if token is not None:
            self._send(token)

    def _send(self, token: int) -> None:
        keys, delivery = self._keys, self._delivery
        args = [delivery.candidate, self._channel, token, delivery.epoch, delivery.watermark]
        answer = self._calls.call("mark", [keys.counter, keys.epoch], args)
        answer.add_done_callback(lambda done: self._sent(done, token))

    def _sent(self, answer: asyncio.Future[Any], token: int) -> None:
        if answer.cancelled() or answer.exception() is None:
            return
        logger.debug("mark %d failed: %r", token, answer.exception())
        # Ask again later: whatever waited on this mark waits on a new one.
        self._listening.mark_failed(token)
        asyncio.get_running_loop().call_later(self._timeout / 4, self.check_soon)
