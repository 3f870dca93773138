"""When the next flush may run: the flush delay, fixed or adaptive, as a pure unit.

It is fed the times flushes begin and end and, for the adaptive delay, samples of the
loop thread's load (:class:`~rawsse.hub.loadgauge.ThreadLoad`), and answers how long a
flush scheduled now must wait. It reads no clock and touches no loop, so it is tested
with numbers.

The adaptive delay is a share of the last flush's duration (its *gain*, from 0 to
``MAX_GAIN``), kept where the loop is busy between ``IDLE_FROM`` and ``BUSY_FROM`` of
its time: the share of its time the loop's thread ran from one flush's start to the
next, less its waits for a CPU, smoothed over a few flushes. A loop with time to spare
lowers the gain (at 0 it flushes at once, adding no latency); a loop short of time
raises it, so that what arrives during the wait goes out in the same writes: fewer
writes, and time for reading (publishes over HTTP come in while it waits). It pays as
much latency as the load needs, no more: measured at 1000 subscribers (perf/README,
#22), a publish-over-HTTP fan-out at 100 events/s, which flushing at once keeps at 92 %
of a core, keeps the latency of flushing at once for a quarter less CPU, and 2000
events/s published as a batch are all delivered with a p99 under 40 ms.
"""

from __future__ import annotations

from collections.abc import Callable

from rawsse.config import MAX_ADAPTIVE_FLUSH_DELAY

__all__ = [
    "BUSY_FROM",
    "BUSY_WEIGHT",
    "GAIN_FALL",
    "GAIN_RISE",
    "IDLE_FROM",
    "MAX_GAIN",
    "MEASURE_EVERY",
    "FlushPacing",
]

#: The weight of the last cycle's busy share in the smoothed one (and of the last
#: flush's duration in the smoothed one), and the band of shares the gain keeps the
#: loop in: over ``BUSY_FROM`` it rises by ``GAIN_RISE`` a sample, under ``IDLE_FROM``
#: it falls by ``GAIN_FALL``, between 0 and ``MAX_GAIN``. A band under full load leaves
#: the loop time to read: publishers over HTTP, each waiting for its answer, get in
#: between flushes.
BUSY_WEIGHT = 0.3
BUSY_FROM = 0.8
IDLE_FROM = 0.7
GAIN_RISE = 0.2
GAIN_FALL = 0.05
MAX_GAIN = 2.0

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
        gain: the adaptive delay as a share of the last flush's duration.
    """

    __slots__ = ("fixed", "busy", "gain", "_began", "_ended", "_took", "_measured_at",
                 "_ran", "_waited")  # fmt: skip

    def __init__(self, fixed: float | None) -> None:
        self.fixed = fixed
        self.busy = 0.0
        self.gain = 0.0
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
    def batching(self) -> bool:
        """Whether flushes wait (the adaptive gain is above 0, or a fixed delay)."""
        return self.delay > 0

    @property
    def delay(self) -> float:
        """The delay after a flush: the fixed one; or adaptive, the gain times the
        last flush's duration, at most ``MAX_ADAPTIVE_FLUSH_DELAY``."""
        if self.fixed is not None:
            return self.fixed
        return min(self._took * self.gain, MAX_ADAPTIVE_FLUSH_DELAY)

    def wait(self, now: float) -> float:
        """Seconds a flush scheduled at ``now`` waits (0 or less: at once)."""
        return self._ended + self.delay - now

    def begin(self, at: float, sample: LoadSample) -> None:
        """A flush begins at ``at``. With the adaptive delay, the busy share of the
        cycle that ends here (the last flush, and whatever the loop did and did not do
        until this one) is folded into the smoothed share, which moves the gain (up
        fast, down slowly: a loop short of time falls behind at once); flushes closer
        together than ``MEASURE_EVERY`` count as one cycle and take no sample."""
        self._began = at
        if self.fixed is not None:
            return
        if at - self._measured_at < MEASURE_EVERY:
            return
        ran, waited = sample()
        # The time the loop could have run: what passed, less its waits for a CPU.
        span = at - self._measured_at - (waited - self._waited)
        if span > 0:
            share = min(1.0, (ran - self._ran) / span)
            self.busy += (share - self.busy) * BUSY_WEIGHT
            if self.busy > BUSY_FROM:
                self.gain = min(MAX_GAIN, self.gain + GAIN_RISE)
            elif self.busy < IDLE_FROM:
                self.gain = max(0.0, self.gain - GAIN_FALL)
        self._measured_at, self._ran, self._waited = at, ran, waited

    def end(self, at: float) -> None:
        """The flush that began last ended at ``at``."""
        took = at - self._began
        # Smoothed: one flush slowed down (the kernel, another process on the core)
        # does not make the next wait long.
        self._took += (took - self._took) * BUSY_WEIGHT
        self._ended = at
