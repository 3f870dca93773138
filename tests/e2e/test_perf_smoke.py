"""A short run of each perf/ script, so that the benchmarks keep working. These check
that the scripts run and count correctly; they assert no speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, require_program, scaled

PERF = ROOT / "perf"


def perf(script: str, tmp_path: Path, *args: str) -> tuple[Any, str]:
    out = tmp_path / f"{script}.json"
    result = subprocess.run(
        [sys.executable, str(PERF / f"{script}.py"), *args, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=scaled(180),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(out.read_text()), result.stdout


def assert_complete(figures: dict[str, Any], clients: int, events: int) -> None:
    assert_delivered(figures, clients, events)
    assert figures["rss_per_subscriber_kib"] > 0


def assert_delivered(figures: dict[str, Any], clients: int, events: int) -> None:
    assert figures["events_published"] == events
    assert figures["deliveries"] == figures["deliveries_expected"] == clients * events
    assert figures["delivered_share"] == 1.0
    assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"]


def test_fanout_in_process_and_over_http(tmp_path: Path) -> None:
    figures, stdout = perf("fanout", tmp_path, "--clients", "20", "--rate", "50", "--duration", "1")
    assert_complete(figures, 20, 50)
    assert figures["generator"] == "c" and "p99_ms" in stdout
    figures, _ = perf(
        "fanout",
        tmp_path,
        "--server",
        "rawsse-http",
        "--clients",
        "20",
        "--rate",
        "50",
        "--duration",
        "1",
        "--flush-delay",
        "0.005",
    )
    assert_complete(figures, 20, 50)
    assert figures["producer"] == "http"


def test_fanout_fed_by_one_batch_request(tmp_path: Path) -> None:
    figures, _ = perf(
        "fanout", tmp_path, "--server", "rawsse-http", "--batch",
        "--clients", "20", "--rate", "50", "--duration", "1",
    )  # fmt: skip
    assert_batch_delivered(figures, 20, 50)
    assert figures["publish_form"] == "batch"


def assert_batch_delivered(figures: dict[str, Any], clients: int, events: int) -> None:
    """The batch publisher streams for its duration, not a count: the last event due
    may fall just after it."""
    assert events - 2 <= figures["events_published"] <= events
    assert_delivered(figures, clients, figures["events_published"])


def test_pacing_measures_every_publishing_form(tmp_path: Path) -> None:
    report, stdout = perf(
        "pacing", tmp_path, "--clients", "20", "--rate", "50", "--duration", "1", "--repeat", "1"
    )
    (results,) = report["rounds"]
    assert list(results) == ["floor", "floor-http", "inproc-0", "inproc-auto", "http-0",
                             "http-auto", "batch-auto"]  # fmt: skip
    for label, figures in results.items():
        (assert_batch_delivered if label == "batch-auto" else assert_delivered)(figures, 20, 50)
    assert set(report["summary"]) >= {
        "CPU http / inproc, flush 0",
        "p99 http / inproc, default",
        "CPU http default / http floor",
    }
    assert results["floor-http"]["server"] == "minimal-batched-http"
    assert "CPU http / inproc, default:" in stdout


def test_compression_measures_bytes_and_inflates_every_event(tmp_path: Path) -> None:
    report, _ = perf(
        "compression", tmp_path, "--clients", "20", "--rate", "20", "--duration", "1",
        "--repeat", "1",
    )  # fmt: skip
    (results,) = report["rounds"]
    for figures in results.values():
        assert_delivered(figures, 20, 20)
    assert results["gzip"]["compressed_streams"] == 20
    assert results["plain"]["compressed_streams"] == 0
    assert results["gzip"]["wire_bytes"] * 2 < results["plain"]["wire_bytes"]
    assert 0 < report["summary"]["bytes gzip / plain"] < 0.5


def test_compare_measures_each_server_in_the_same_run(tmp_path: Path) -> None:
    report, stdout = perf(
        "compare", tmp_path, "--quick", "--servers", "rawsse", "rawsse-http", "minimal-one-write"
    )
    assert list(report["rows"]) == ["rawsse", "rawsse-http", "minimal-one-write"]
    for row in report["rows"].values():
        assert row["small"]["delivered_share"] == row["big"]["delivered_share"] == 1.0
        assert row["memory"]["rss_per_subscriber_kib"] > 0
    assert "| rawsse | " in stdout and "1.00 x" in stdout


def test_scale_memory_slow_readers_and_publish(tmp_path: Path) -> None:
    results, _ = perf("scale", tmp_path, "--counts", "10", "30", "--rate", "20", "--duration", "1")
    assert [r["clients"] for r in results] == [10, 30]
    for r in results:
        assert_complete(r, r["clients"], 20)
    results, stdout = perf("memory", tmp_path, "--counts", "50")
    assert results[0]["clients"] == 50 and "KiB per subscriber" in stdout
    report, _ = perf(
        "slow_readers",
        tmp_path,
        "--clients",
        "20",
        "--rate",
        "20",
        "--duration",
        "1",
        "--stall",
        "10",
    )
    assert report["stalled"]["stalled_clients"] == 2
    assert report["stalled"]["deliveries"] == report["stalled"]["deliveries_expected"]
    report, stdout = perf("publish", tmp_path, "--subscribers", "3", "--duration", "1")
    expected = ["rawsse-http", "rawsse-http-batch", "rawsse"]
    if "nginx-nchan: not installed" not in stdout or os.environ.get("RAWSSE_REQUIRE_EXTERNAL"):
        expected.append("nginx-nchan")
    assert list(report) == expected
    for r in report.values():
        assert r["accepted_per_s"] > 0 and r["delivered_share"] == 1.0


def test_scale_out_redis_against_memory_and_workers(tmp_path: Path) -> None:
    require_program("redis-server")
    # The workers comparison runs the CLI (test_workers) under the harness's measuring
    # of several processes (test_behind_nginx): the backends alone here, for time.
    results, stdout = perf(
        "scale_out", tmp_path, "--load", "20", "50", "--duration", "1", "--only", "backends"
    )
    labels = [r["label"] for r in results]
    assert labels == ["rawsse memory", "rawsse redis", "minimal-one-write"]
    for figures in results[:2]:
        assert_complete(figures, 20, 50)
    # 20 clients may not grow the minimal server by a page.
    assert_delivered(results[2], 20, 50)
    assert "redis_cpu_share" in results[1]
    assert "p99 ÷ first" in stdout


def test_behind_nginx_against_direct(tmp_path: Path) -> None:
    require_program("nginx")
    results, stdout = perf(
        "behind_nginx", tmp_path, "--load", "20", "50", "--duration", "1", "--rounds", "1"
    )
    assert [r["label"] for r in results] == ["direct", "through nginx"]
    for figures in results:
        assert_delivered(figures, 20, 50)
    assert "front_cpu_share" in results[1] and "p99 ÷ direct" in stdout


def test_soak_short(tmp_path: Path) -> None:
    """perf/soak.py's checks on a short run: clients coming and going, some dropped."""
    out = tmp_path / "soak.json"
    result = subprocess.run(
        [
            sys.executable,
            str(PERF / "soak.py"),
            *("--duration", "15", "--warmup", "6", "--subscribers", "150"),
            *("--lifetime", "1", "4", "--lagging-lifetime", "6", "10"),
            *("--history-ttl", "2", "--slow-timeout", "2"),
            *("--firehose-size", "20000", "--lagging", "10", "--sample", "1.5"),
            # Small buffers: in a run this short, a few laggards' full buffers would be
            # a large share of the server's memory, which the full run spreads out.
            *("--max-buffer", "65536"),
            *("--json", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=scaled(120),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert report["passed"] and all(report["checks"].values())
    assert report["clients_left"] > 150
    # More laggards dropped than the first wave's 15: dropped ones leave and are replaced.
    assert report["clients_dropped"] > 15 and report["checks"]["population_held"]
    assert report["events_received"] > 0 and report["gaps"] == 0


def test_mercure_mode_against_the_native_api(tmp_path: Path) -> None:
    """Each Mercure measure delivers every event to every subscriber, as native does:
    spread over templates and over grant sets (private events) included."""
    rounds, stdout = perf(
        "mercure",
        tmp_path,
        "--clients",
        "20",
        "--rate",
        "20",
        "--duration",
        "1",
        "--templates",
        "5",
        "--grants",
        "3",
    )
    (results,) = rounds
    assert list(results) == [
        "minimal",
        "native",
        "mercure-exact",
        "mercure-templates",
        "mercure-private",
    ]
    for label, figures in results.items():
        if label != "minimal":  # the minimal server publishes on a clock of its own
            assert_delivered(figures, 20, 20)
    assert "mercure-templates: p99" in stdout and "x native" in stdout
