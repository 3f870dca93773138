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
writes, and time for reading (publishes over HTTP come in while it waits).

Flushes that already carry ``AMORTIZED`` events each share their writes enough: the
gain falls, busy or not, since a producer that fills its flushes by itself (in-process,
or a batch request) makes them grow with what it has to send, and a wait would only add
latency. Events whose publisher waits for the answer (one request an event,
``awaited``) do not count: such publishers get in only while the loop waits, so their
flushes fill because it waits; and a loop they saturate doubles its gain each sample
(``SATURATED``), since a backlog of their requests grows while it rises a step at a
time. It pays as much latency as the load needs, no more: measured at 1000 subscribers
(perf/README, #22), a publish-over-HTTP fan-out at 100 events/s, which flushing at once
keeps at 92 % of a core, costs a quarter less CPU, with in-process latency; 2000 and
4000 events/s published as a batch are all delivered with a p99 under 50 ms; 10 000
events/s published in-process keep within 1.5 times the latency of a minimal server.
"""

from __future__ import annotations

from collections.abc import Callable

from rawsse.config import MAX_ADAPTIVE_FLUSH_DELAY

__all__ = [
    "AMORTIZED",
    "BUSY_FROM",
    "BUSY_WEIGHT",
    "GAIN_FALL",
    "GAIN_RISE",
    "IDLE_FROM",
    "MAX_GAIN",
    "MEASURE_EVERY",
    "SATURATED",
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
GAIN_RISE = 0.05
GAIN_FALL = 0.05
MAX_GAIN = 2.0

#: Events a flush carries (smoothed) from which its writes are shared enough: waiting
#: longer would save few writes for the latency it costs, so the gain falls instead (an
#: in-process producer of thousands of events a second fills its flushes by itself).
#: Awaited events are left out: a publisher a request an event fills flushes only as
#: long as the loop waits for it.
AMORTIZED = 8

#: A loop busy this share of its time has none to spare: if its flushes are not
#: amortized, the gain doubles each sample instead of rising a step (publishers over
#: HTTP, each waiting for its answer, get in only between flushes, and their backlog
#: grows until the wait is long enough).
SATURATED = 0.97

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
        per_flush: the events a flush carries, less the awaited ones (smoothed).
        awaited: events published since the last flush by a request whose client waits
            for the answer (counted by the server, :meth:`Hub.publish_awaited`).
    """

    __slots__ = ("fixed", "busy", "gain", "per_flush", "awaited", "_began", "_ended", "_took",
                 "_measured_at", "_ran", "_waited")  # fmt: skip

    def __init__(self, fixed: float | None) -> None:
        self.fixed = fixed
        self.busy = 0.0
        self.gain = 0.0
        self.per_flush = 1.0
        self.awaited = 0
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

    def begin(self, at: float, sample: LoadSample, events: int = 1) -> None:
        """A flush of ``events`` begins at ``at``. With the adaptive delay, the busy
        share of the cycle that ends here (the last flush, and whatever the loop did and
        did not do until this one) is folded into the smoothed share, which moves the
        gain; flushes closer together than ``MEASURE_EVERY`` count as one cycle and take
        no sample."""
        self._began = at
        unawaited = max(0, events - self.awaited)
        self.awaited = 0
        if self.fixed is not None:
            return
        self.per_flush += (unawaited - self.per_flush) * BUSY_WEIGHT
        if at - self._measured_at < MEASURE_EVERY:
            return
        ran, waited = sample()
        # The time the loop could have run: what passed, less its waits for a CPU.
        span = at - self._measured_at - (waited - self._waited)
        if span > 0:
            share = min(1.0, (ran - self._ran) / span)
            self.busy += (share - self.busy) * BUSY_WEIGHT
            amortized = self.per_flush >= AMORTIZED
            if amortized or self.busy < IDLE_FROM:
                self.gain = max(0.0, self.gain - GAIN_FALL)
            elif self.busy >= SATURATED:
                self.gain = min(MAX_GAIN, max(GAIN_RISE, self.gain * 2))
            elif self.busy > BUSY_FROM:
                self.gain = min(MAX_GAIN, self.gain + GAIN_RISE)
        self._measured_at, self._ran, self._waited = at, ran, waited

    def end(self, at: float) -> None:
        """The flush that began last ended at ``at``."""
        took = at - self._began
        # Smoothed: one flush slowed down (the kernel, another process on the core)
        # does not make the next wait long.
        self._took += (took - self._took) * BUSY_WEIGHT
        self._ended = at
