"""How busy the event loop's thread is, for the adaptive flush delay (:mod:`rawsse.hub.hub`).

What the hub wants to know is whether its loop ever idles: whether it has time to spare
for writing each event as it comes, or whether events arrive faster than it writes them.
CPU time alone cannot tell: a loop that never idles but shares its core with other
processes (workers, Redis, a load generator) gets less CPU than the time that passes,
and would look as if it had time to spare. On Linux the thread's schedstat also gives
the time it waited for a CPU while it could have run, which is taken out of the time
that passed. Elsewhere the thread's CPU time is used alone.

It is the loop's thread that is measured, not the process, so a program embedding the
hub in a thread (:class:`rawsse.ServerThread`) does not lend it its own work.
"""

from __future__ import annotations

import os
import time
import weakref

__all__ = ["ThreadLoad"]

#: The calling thread's time on a CPU and waiting for one, in nanoseconds (Linux).
SCHEDSTAT = "/proc/thread-self/schedstat"


class ThreadLoad:
    """Samples of the time the thread that first calls :meth:`sample` ran and waited
    to run. The file is opened once, on that first call, and closed with the object."""

    __slots__ = ("_fd", "_opened", "_closer", "__weakref__")

    def __init__(self) -> None:
        self._fd: int | None = None
        self._opened = False
        self._closer: weakref.finalize[..., None] | None = None

    def sample(self) -> tuple[float, float]:
        """Seconds the thread has run, and has waited for a CPU, so far."""
        if not self._opened:
            self._opened = True
            try:
                fd = os.open(SCHEDSTAT, os.O_RDONLY)
            except OSError:
                pass  # not Linux, or no schedstat: CPU time alone
            else:
                self._fd = fd
                self._closer = weakref.finalize(self, os.close, fd)  # type: ignore[arg-type]
        # The time run from the clock, which the kernel brings up to date when asked;
        # schedstat's is only as fresh as the last scheduler tick.
        ran = time.thread_time()
        if self._fd is not None:
            try:
                _ran, waited, _slices = os.pread(self._fd, 128, 0).split()
                return ran, int(waited) / 1e9
            except (OSError, ValueError):
                self.close()
        return ran, 0.0

    def close(self) -> None:
        """Close the file; later samples are CPU time alone."""
        self._fd = None
        if self._closer is not None:
            self._closer()
            self._closer = None
