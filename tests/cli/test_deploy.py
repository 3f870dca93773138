"""deploy/: the alert rules are valid for Prometheus and use only metrics rawsse exports;
the systemd unit is valid and its command serves. (nginx.conf: test_nginx.py.)"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from rawsse.config import Config
from tests.conftest import ROOT, free_port, require_program, running_server, scaled

RULES = ROOT / "deploy" / "alerts.yml"


def test_the_readme_nginx_check_runs_as_written_from_the_checkout() -> None:
    """README's ``nginx -t`` line, run as a user would from the checkout (nginx reads a
    relative -c path against its own prefix, not the current folder)."""
    nginx = require_program("nginx")
    if os.geteuid() != 0:
        pytest.skip("nginx -t opens the log files deploy/nginx.conf names, root's")
    found = re.search(r"`(nginx -t -c [^`]+)`", (ROOT / "README.md").read_text())
    assert found is not None, "README no longer shows an nginx -t command"
    path = os.path.dirname(nginx) + os.pathsep + os.environ.get("PATH", "")
    result = subprocess.run(
        ["bash", "-c", found.group(1)],
        cwd=ROOT,
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        timeout=scaled(30),
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_promtool_accepts_the_alert_rules() -> None:
    promtool = require_program("promtool")
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 4 rules found" in result.stdout


async def test_alert_rules_use_exported_metrics() -> None:
    async with running_server() as server:
        exposition = server.hub.exposition().decode()
    exported = set(re.findall(r"^(\w+)", exposition, re.MULTILINE))
    used = set(re.findall(r"\b((?:rawsse|process)_\w+)", RULES.read_text()))
    assert used, "the rules name no metric"
    assert used <= exported, used - exported


UNIT = RULES.parent / "rawsse.service"


def test_the_systemd_unit_is_valid_and_its_command_serves(tmp_path: Path) -> None:
    """systemd-analyze accepts the unit (with this machine's Python in ExecStart); its
    command line, with settings from its environment file, serves and drains on SIGTERM
    within the unit's TimeoutStopSec. (The sandbox itself needs systemd as PID 1.)"""
    analyze = require_program("systemd-analyze")
    text = UNIT.read_text()
    settings = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")
    )
    assert int(settings["LimitNOFILE"]) > Config().max_streams
    assert settings["NoNewPrivileges"] == "yes" and settings["ProtectSystem"] == "strict"
    port = free_port()
    env_file = tmp_path / "rawsse.env"
    env_file.write_text(f"RAWSSE_PORT={port}\nRAWSSE_PUBLISH_KEY=from-the-env-file\n")
    unit = tmp_path / "rawsse.service"
    unit.write_text(
        text.replace("/opt/rawsse/bin/python", sys.executable).replace(
            "/etc/rawsse/rawsse.env", str(env_file)
        )
    )
    verified = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert verified.returncode == 0 and not verified.stderr.strip(), verified.stderr

    command = shlex.split(settings["ExecStart"].replace("/opt/rawsse/bin/python", sys.executable))
    environment = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    process = subprocess.Popen(
        command,
        env={**os.environ, **environment},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + scaled(15)
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "did not start"
            time.sleep(0.05)
        published = httpx.post(
            f"http://127.0.0.1:{port}/publish",
            data={"topic": "t", "data": "x"},
            headers={"Authorization": "Bearer from-the-env-file"},
        )
        assert published.status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=int(settings["TimeoutStopSec"])) == 0
    finally:
        if process.poll() is None:
            process.kill()
        out, err = process.communicate()
    # What the unit prints goes to the journal: the key from its file is not in it.
    assert "listening on" in out and "from-the-env-file" not in out + err
