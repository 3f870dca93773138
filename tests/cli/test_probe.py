"""``python -m rawsse probe`` against a hub behind a real nginx: the configuration of
deploy/nginx.conf passes every check, and so does one that compresses each event as it
comes; one that holds the response (buffering it, and compressing it), one whose read
timeout is shorter than the heartbeat, a proxy that
sends no X-Forwarded-For and a hub that does not trust its proxy each fail the check
concerned, with the line that fixes it, and exit 1. The probe reads a hostile stream
(a compression bomb, an endless line, a lone CR in an id) within its bounds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import scaled
from tests.support.cli import start_hub
from tests.support.nginx_server import nginx_in_front

OPENS = "a stream opens through the public URL"

CHECKS = (
    "the hub sees the client's address",
    "events arrive as published",
    "the stream survives an idle period",
    "Last-Event-ID replay through the path",
)


def probe(
    tmp_path: Path, changes: dict[str, str] | None, *hub_args: str, key_in: str = "flag"
) -> tuple[int, str]:
    """Run the probe through nginx; the key as ``--key`` or in ``RAWSSE_PUBLISH_KEY``."""
    hub = start_hub("--no-demo", "--log-level", "warning", *hub_args)
    try:
        port = int(hub.url.rsplit(":", 1)[1])
        key = [f"--key={hub.key}"] if key_in == "flag" else []
        env = {k: v for k, v in os.environ.items() if k != "RAWSSE_PUBLISH_KEY"}
        if key_in == "environment":
            env["RAWSSE_PUBLISH_KEY"] = hub.key
        with nginx_in_front(tmp_path, port, changes) as front:
            result = subprocess.run(
                [sys.executable, "-m", "rawsse", "probe", "--public", front,
                 "--publish", hub.url, *key, "--idle", "2"],
                capture_output=True, text=True, timeout=scaled(60), env=env,
            )  # fmt: skip
    finally:
        assert hub.stop()[0] == 0
    return result.returncode, result.stdout + result.stderr


def verdicts(output: str) -> dict[str, str]:
    return {
        check: line.split()[0]
        for line in output.splitlines()
        for check in (OPENS, *CHECKS)
        if check in line and not line.startswith("...")
    }


def test_the_deployed_configuration_passes(tmp_path: Path) -> None:
    """(The key from the environment, as an operator's shell holds it.)"""
    code, output = probe(tmp_path, None, key_in="environment")
    assert code == 0, output
    assert verdicts(output) == dict.fromkeys(CHECKS, "ok"), output
    assert "delays" in output and "fix:" not in output
    # Each long check says what it is doing first; a passing replay says what it got.
    assert "...  waiting 2 s without events" in output
    assert "replayed" in output and "missed" not in output


def test_a_hub_that_compresses_passes_through_the_deployed_configuration(tmp_path: Path) -> None:
    """rawsse's own compression (``--compress``) passes through deploy/nginx.conf,
    and the probe sees each event arrive compressed and on time."""
    code, output = probe(tmp_path, None, "--compress")
    assert code == 0, output
    assert verdicts(output) == dict.fromkeys(CHECKS, "ok"), output
    assert "gzip-compressed, each event flushed at once" in output


def test_compression_that_flushes_each_event_passes(tmp_path: Path) -> None:
    """nginx's gzip with buffering off sends each event as it comes: a saving, not a
    fault."""
    code, output = probe(tmp_path, {"gzip off;": "gzip on; gzip_types text/event-stream;"})
    assert code == 0, output
    assert verdicts(output) == dict.fromkeys(CHECKS, "ok"), output
    assert "gzip-compressed, each event flushed at once" in output


def test_a_proxy_that_holds_the_response_is_named(tmp_path: Path) -> None:
    """Buffering on (the hub's X-Accel-Buffering ignored) and gzip: no head comes at
    all. The probe says so within seconds and names the proxy, not the URL."""
    changes = {
        "proxy_buffering off;": "proxy_buffering on; proxy_ignore_headers X-Accel-Buffering;",
        "gzip off;": "gzip on; gzip_types text/event-stream;",
    }
    code, output = probe(tmp_path, changes)
    assert code == 1, output
    assert verdicts(output) == {OPENS: "FAIL"}, output
    assert "no response head came within 5 s" in output, output
    fix = output.split("fix:", 1)[1]
    assert "proxy_buffering off;" in fix and "X-Accel-Buffering" in fix, output


@pytest.mark.parametrize(
    ("changes", "hub_args", "failing", "fix"),
    [
        (
            {"proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;": ""},
            (),
            "the hub sees the client's address",
            "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        ),
        (
            {"proxy_read_timeout 1h;": "proxy_read_timeout 1s;"},
            (),
            "the stream survives an idle period",
            "proxy_read_timeout 1h;",
        ),
        (
            None,
            ("--trusted-proxy", "none"),
            "the hub sees the client's address",
            "--trusted-proxy 127.0.0.1",
        ),
    ],
    ids=["no-forwarded-for", "short-read-timeout", "untrusted-proxy"],
)
def test_a_faulty_path_is_found_with_its_fix(
    tmp_path: Path,
    changes: dict[str, str] | None,
    hub_args: tuple[str, ...],
    failing: str,
    fix: str,
) -> None:
    code, output = probe(tmp_path, changes, *hub_args)
    assert code == 1, output
    assert verdicts(output) == {check: "FAIL" if check == failing else "ok" for check in CHECKS}, (
        output
    )
    assert fix in output.split("fix:", 1)[1], output
