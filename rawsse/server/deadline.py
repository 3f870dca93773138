"""One timer per connection, whatever it is waiting for.

A connection always waits for at most one thing at a time (the rest of a request, the
next request, its token's expiry notice, the end of a linger or of a close), so it has
one deadline and one timer handle. The handle is moved only when the deadline comes
earlier; when it fires early it re-arms itself for the current deadline. So a
keep-alive connection answering request after request cancels and allocates no timer
per request (the trick of aiohttp's keep-alive handling).
"""

from __future__ import annotations

import asyncio

__all__ = ["DeadlineProtocol"]


class DeadlineProtocol(asyncio.Protocol):
    """An ``asyncio.Protocol`` with one deadline; subclasses implement
    :meth:`_deadline_passed` and set ``_loop`` before arming."""

    __slots__ = ("_loop", "_deadline", "_timer", "_timer_at")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def _set_deadline(self, seconds: float) -> None:
        """Call :meth:`_deadline_passed` ``seconds`` from now (replacing any deadline)."""
        deadline = self._loop.time() + seconds
        self._deadline = deadline
        if self._timer is None or deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _clear_deadline(self) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = 0.0  # not a float of its own to keep, for a long stream

    def _on_timer(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None:
            return
        if self._loop.time() < deadline:
            self._timer_at = deadline
            self._timer = self._loop.call_at(deadline, self._on_timer)
            return
        self._deadline_passed()

    def _deadline_passed(self) -> None:
        raise NotImplementedError
