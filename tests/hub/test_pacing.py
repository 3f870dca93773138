"""The flush pacing with numbers: fed the times flushes begin and end and the loop
thread's load, it says how long the next flush waits. No clock, no loop, no spinning CPU."""

from __future__ import annotations

import pytest

from rawsse.config import MAX_ADAPTIVE_FLUSH_DELAY
from rawsse.hub.pacing import (
    AMORTIZED,
    BUSY_FROM,
    GAIN_RISE,
    IDLE_FROM,
    MAX_GAIN,
    MEASURE_EVERY,
    SATURATED,
    FlushPacing,
)


class Load:
    """A loop thread whose time run and waited for a CPU the test sets."""

    def __init__(self) -> None:
        self.ran = 0.0
        self.waited = 0.0
        self.samples = 0

    def __call__(self) -> tuple[float, float]:
        self.samples += 1
        return self.ran, self.waited


def cycles(pacing: FlushPacing, load: Load, *, count: int, share: float, took: float,
           start: float = 1.0, period: float = 0.1, events: int = 1,
           awaited: int = 0) -> float:  # fmt: skip
    """``count`` flushes of ``events`` events (``awaited`` of them published by requests
    waiting for their answers) ``period`` apart, each taking ``took``, the loop running
    ``share`` of each cycle; the time after the last."""
    at = start
    for _ in range(count):
        load.ran += share * period
        pacing.awaited += awaited
        pacing.begin(at, load, events)
        pacing.end(at + took)
        at += period
    return at


def test_a_fixed_delay_is_kept_whatever_the_load() -> None:
    pacing, load = FlushPacing(0.2), Load()
    cycles(pacing, load, count=5, share=1.0, took=0.3, events=3, awaited=3)
    assert (pacing.adaptive, pacing.delay, load.samples) == (False, 0.2, 0)
    assert pacing.awaited == 0  # counted for each flush, kept for none
    pacing.end(10.0)
    assert pacing.wait(10.05) == pytest.approx(0.15)
    assert pacing.wait(10.3) < 0  # long past: at once


def test_a_loop_with_time_to_spare_flushes_at_once() -> None:
    pacing, load = FlushPacing(None), Load()
    at = cycles(pacing, load, count=20, share=0.5, took=0.04)
    assert not pacing.batching and pacing.gain == 0.0 and pacing.delay == 0.0
    assert pacing.wait(at) < 0


def test_a_busy_loop_waits_longer_and_longer_up_to_the_cap() -> None:
    """Short of time, the gain rises sample after sample, to ``MAX_GAIN`` times the
    (smoothed) flush duration, and never past ``MAX_ADAPTIVE_FLUSH_DELAY``."""
    pacing, load = FlushPacing(None), Load()
    cycles(pacing, load, count=2, share=1.0, took=0.01)
    assert pacing.gain <= GAIN_RISE  # the first busy cycles count little: smoothed
    at = cycles(pacing, load, count=60, share=1.0, took=0.01, start=2.0)
    assert pacing.busy > BUSY_FROM and pacing.gain == MAX_GAIN
    assert pacing.delay == pytest.approx(0.01 * MAX_GAIN)
    assert pacing.wait(at - 0.1 + 0.01) == pytest.approx(0.01 * MAX_GAIN)  # after the end
    cycles(pacing, load, count=20, share=1.0, took=0.2, start=at)
    assert pacing.delay == MAX_ADAPTIVE_FLUSH_DELAY  # capped


def test_the_gain_settles_where_the_loop_is_in_its_band() -> None:
    """Between ``IDLE_FROM`` and ``BUSY_FROM`` the gain stays; under, it falls slowly
    back to 0."""
    pacing, load = FlushPacing(None), Load()
    at = cycles(pacing, load, count=40, share=1.0, took=0.01)
    at = cycles(pacing, load, count=40, share=(IDLE_FROM + BUSY_FROM) / 2, took=0.01, start=at)
    settled = pacing.gain
    assert 0 < settled <= MAX_GAIN and IDLE_FROM < pacing.busy < BUSY_FROM
    at = cycles(pacing, load, count=10, share=(IDLE_FROM + BUSY_FROM) / 2, took=0.01, start=at)
    assert pacing.gain == settled  # no flapping inside the band
    at = cycles(pacing, load, count=3, share=0.2, took=0.01, start=at)
    assert 0 < pacing.gain < settled  # down by small steps
    cycles(pacing, load, count=80, share=0.2, took=0.01, start=at)
    assert pacing.gain == 0.0 and pacing.delay == 0.0


def test_flushes_that_carry_many_events_wait_less() -> None:
    """A busy loop whose flushes already carry ``AMORTIZED`` events or more (an
    in-process producer of thousands a second) lowers the gain: waiting would save few
    writes for its latency."""
    pacing, load = FlushPacing(None), Load()
    at = cycles(pacing, load, count=60, share=0.9, took=0.01)
    assert pacing.gain == MAX_GAIN
    at = cycles(pacing, load, count=80, share=0.9, took=0.01, start=at, events=AMORTIZED * 2)
    assert pacing.gain == 0.0 and pacing.per_flush >= AMORTIZED


def test_a_saturated_loop_whose_flushes_are_amortized_flushes_at_once() -> None:
    """Saturated by a producer that fills its flushes by itself (in-process, or a batch
    request), the loop gains little from waiting: its flushes grow with what it has to
    send, and a wait would only add latency."""
    pacing, load = FlushPacing(None), Load()
    at = cycles(pacing, load, count=40, share=1.0, took=0.01)
    assert pacing.gain == MAX_GAIN
    cycles(pacing, load, count=80, share=1.0, took=0.01, events=AMORTIZED * 2, start=at)
    assert pacing.busy >= SATURATED and pacing.gain == 0.0


def test_events_whose_publishers_await_their_answers_do_not_amortize_a_flush() -> None:
    """Flushes full of events published a request each (their publishers get in only
    while the loop waits) keep the gain that lets them in; the same flushes filled by a
    producer that does not wait lower it."""
    awaited, load = FlushPacing(None), Load()
    cycles(awaited, load, count=80, share=0.9, took=0.01, events=AMORTIZED * 4,
           awaited=AMORTIZED * 4)  # fmt: skip
    assert awaited.gain == MAX_GAIN and awaited.per_flush < 1
    unawaited, load = FlushPacing(None), Load()
    cycles(unawaited, load, count=80, share=0.9, took=0.01, events=AMORTIZED * 4)
    assert unawaited.gain == 0.0 and unawaited.per_flush >= AMORTIZED


def test_a_saturated_loop_fed_by_awaiting_requests_doubles_its_gain() -> None:
    """A load that comes at once (a backlog of requests grows while the gain rises a
    step a sample) is met in a few samples: the gain doubles while the loop is
    saturated and its flushes are not amortized."""
    pacing, load = FlushPacing(None), Load()
    at = cycles(pacing, load, count=20, share=1.0, took=0.01, events=50, awaited=50)
    assert pacing.busy >= SATURATED
    saturated_at = pacing.gain
    cycles(pacing, load, count=1, share=1.0, took=0.01, events=50, awaited=50, start=at)
    assert pacing.gain == min(MAX_GAIN, saturated_at * 2)
    assert pacing.gain == MAX_GAIN  # within the 20 samples; a step each would need 40
    unawaited, load = FlushPacing(None), Load()
    cycles(unawaited, load, count=20, share=1.0, took=0.01, events=50)
    assert unawaited.gain == 0.0  # the same flushes, filled without waiting: amortized


def test_one_slow_flush_does_not_make_the_next_wait_long() -> None:
    pacing, load = FlushPacing(None), Load()
    at = cycles(pacing, load, count=40, share=1.0, took=0.01)
    cycles(pacing, load, count=1, share=1.0, took=0.04, start=at)
    assert pacing.delay < 0.04 * MAX_GAIN / 2


def test_waits_for_a_cpu_are_not_counted_as_time_the_loop_could_run() -> None:
    """A loop that ran all the time it had a CPU is busy, however long other
    processes kept it off (they only lengthen the cycle)."""
    pacing, load = FlushPacing(None), Load()
    at = 1.0
    for _ in range(20):
        load.ran += 0.05
        load.waited += 0.05  # half of each 100 ms cycle spent waiting for a CPU
        pacing.begin(at, load)
        pacing.end(at + 0.01)
        at += 0.1
    assert pacing.batching


def test_flushes_closer_than_a_millisecond_take_no_sample() -> None:
    pacing, load = FlushPacing(None), Load()
    pacing.begin(1.0, load)
    pacing.begin(1.0 + MEASURE_EVERY / 2, load)
    pacing.begin(1.0 + MEASURE_EVERY * 2, load)
    assert load.samples == 2
