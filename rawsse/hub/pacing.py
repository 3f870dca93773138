"""When the next flush may run: the flush delay, fixed or adaptive, as a pure unit.

It is fed the times flushes begin and end and, for the adaptive delay, samples of the
loop thread's load (:class:`~rawsse.hub.loadgauge.ThreadLoad`), and answers how long a
flush scheduled now must wait. It reads no clock and touches no loop, so it is tested
with numbers.

The adaptive delay is 0 while the loop has time to spare, else as long as the last
flush took (at most ``MAX_ADAPTIVE_FLUSH_DELAY``). Whether it has time to spare is the
share of its time the loop's thread ran from one flush's start to the next, less its
waits for a CPU, smoothed over a few flushes: a loop never idle (events arrive faster
than they are written one flush each, as with publishers over HTTP) is busy. Then each
flush waits as long as the last one took, so writing takes about half the loop, the
rest goes to reading, and what arrives meanwhile goes out in the same writes. A loop
with time to spare flushes at once, adding no latency. Two thresholds keep it from
flapping between the two.
"""

from __future__ import annotations

from collections.abc import Callable

from rawsse.config import MAX_ADAPTIVE_FLUSH_DELAY

__all__ = ["BUSY_FROM", "BUSY_WEIGHT", "IDLE_FROM", "MEASURE_EVERY", "FlushPacing"]

#: The weight of the last cycle's busy share in the smoothed one, and the shares from
#: which the loop counts as busy (it batches) and as having time to spare (it flushes
#: at once).
BUSY_WEIGHT = 0.3
BUSY_FROM = 0.97
IDLE_FROM = 0.6

#: The least time a sample of the loop's load spans: a sample is two system calls (a
#: few microseconds), which thousands of flushes a second would pay each for little.
MEASURE_EVERY = 0.001

#: ``sample()``: the loop thread's time run and time waited for a CPU so far, seconds.
LoadSample = Callable[[], tuple[float, float]]


class FlushPacing:
    """The flush delay of one hub.

    Args:
        fixed: a fixed delay in seconds, or ``None`` for the adaptive one.

    Attributes:
        busy: the smoothed busy share of the loop (adaptive only).
        batching: whether the loop counts as busy, so flushes wait (adaptive only).
    """

    __slots__ = ("fixed", "busy", "batching", "_began", "_ended", "_took", "_measured_at",
                 "_ran", "_waited")  # fmt: skip

    def __init__(self, fixed: float | None) -> None:
        self.fixed = fixed
        self.busy = 0.0
        self.batching = False
        self._began = 0.0  # when the last flush began
        self._ended = 0.0  # when it ended
        self._took = 0.0  # how long it took
        # The load when it was last measured: when, the time run and the time waited.
        self._measured_at = 0.0
        self._ran = 0.0
        self._waited = 0.0

    @property
    def adaptive(self) -> bool:
        """Whether the delay follows the loop's load (no fixed delay)."""
        return self.fixed is None

    @property
    def delay(self) -> float:
        """The delay after a flush: the fixed one; or adaptive, as long as the last
        flush took (at most ``MAX_ADAPTIVE_FLUSH_DELAY``) while batching, else 0."""
        if self.fixed is not None:
            return self.fixed
        return min(self._took, MAX_ADAPTIVE_FLUSH_DELAY) if self.batching else 0.0

    def wait(self, now: float) -> float:
        """Seconds a flush scheduled at ``now`` waits (0 or less: at once)."""
        return self._ended + self.delay - now

    def begin(self, at: float, sample: LoadSample) -> None:
        """A flush begins at ``at``. With the adaptive delay, the busy share of the
        cycle that ends here (the last flush, and whatever the loop did and did not do
        until this one) is folded into the smoothed share; flushes closer together
        than ``MEASURE_EVERY`` count as one cycle and take no sample."""
        self._began = at
        if self.fixed is not None or at - self._measured_at < MEASURE_EVERY:
            return
        ran, waited = sample()
        # The time the loop could have run: what passed, less its waits for a CPU.
        span = at - self._measured_at - (waited - self._waited)
        if span > 0:
            share = min(1.0, (ran - self._ran) / span)
            self.busy += (share - self.busy) * BUSY_WEIGHT
            if self.busy >= BUSY_FROM:
                self.batching = True
            elif self.busy <= IDLE_FROM:
                self.batching = False
        self._measured_at, self._ran, self._waited = at, ran, waited

    def end(self, at: float) -> None:
        """The flush that began last ended at ``at``."""
        self._took = at - self._began
        self._ended = at
