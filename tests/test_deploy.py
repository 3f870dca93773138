"""deploy/: the alert rules are valid for Prometheus and use only metrics rawsse exports."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.conftest import require_program, running_server

RULES = Path(__file__).resolve().parent.parent / "deploy" / "alerts.yml"


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
