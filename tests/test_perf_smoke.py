"""A short run of each perf/ script, so that the benchmarks keep working. These check
that the scripts run and count correctly; they assert no speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import scaled

PERF = Path(__file__).resolve().parent.parent / "perf"


def test_fanout_smoke(tmp_path: Path) -> None:
    out = tmp_path / "fanout.json"
    result = subprocess.run(
        [
            sys.executable,
            str(PERF / "fanout.py"),
            "--clients",
            "20",
            "--rate",
            "50",
            "--duration",
            "1",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=scaled(120),
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    assert figures["events_published"] == 50
    assert figures["deliveries"] == figures["deliveries_expected"] == 1000
    assert figures["lost"] == 0
    assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"]
    assert "p99_ms" in result.stdout
