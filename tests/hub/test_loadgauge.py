"""The loop thread's load gauge behind the adaptive flush delay."""

from __future__ import annotations

import os
import time

import pytest

from rawsse.hub.loadgauge import SCHEDSTAT, ThreadLoad


def spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_time_run_is_counted_and_waiting_never_goes_back() -> None:
    load = ThreadLoad()
    ran, waited = load.sample()
    spin(0.05)
    ran_after, waited_after = load.sample()
    assert waited_after >= waited >= 0.0
    # A spinning thread runs or waits for a CPU all the time that passes.
    assert (ran_after - ran) + (waited_after - waited) >= 0.045
    load.close()
    # After closing, CPU time alone, still counting.
    assert load.sample()[0] >= ran_after


@pytest.mark.skipif(not os.path.exists(SCHEDSTAT), reason="no schedstat (not Linux)")
def test_the_schedstat_file_is_open_once_and_closed_with_the_gauge() -> None:
    def open_files() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = open_files()
    load = ThreadLoad()
    for _ in range(3):
        load.sample()
    assert open_files() == before + 1
    load.close()
    assert open_files() == before
    dropped = ThreadLoad()
    dropped.sample()
    assert open_files() == before + 1
    del dropped  # closed when collected, for hubs nobody closes
    assert open_files() == before
