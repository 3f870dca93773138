"""Starting ``python -m rawsse`` as a real process for tests, reading its banner."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from tests.conftest import scaled


@dataclass
class Hub:
    process: subprocess.Popen[str]
    url: str
    key: str
    banner: str

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> tuple[int, str]:
        """Signal the process (ours, by PID) and return its exit status and stderr."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            _, err = self.process.communicate(timeout=scaled(timeout))
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
            raise
        return self.process.returncode, err


def start_hub(*args: str, env: dict[str, str] | None = None) -> Hub:
    """Run the CLI on a free port; return once its banner is printed."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    command = [sys.executable, "-m", "rawsse", "--port", "0", *args]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + scaled(15)
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "publish key:" in line:
            break
    banner = "".join(lines)
    url = re.search(r"listening on (http://\S+)", banner)
    # A generated key is printed; a given one is not (the test knows it).
    printed = re.search(r"publish key: (\S+) \(generated", banner)
    given = full_env.get("RAWSSE_PUBLISH_KEY")
    if "--publish-key" in args:
        given = args[args.index("--publish-key") + 1]
    key = printed.group(1) if printed is not None else given
    if url is None or key is None or "publish key:" not in banner:
        process.kill()
        _, err = process.communicate()
        raise AssertionError(f"no banner; stdout={banner!r} stderr={err!r}")
    return Hub(process, url.group(1), key, banner)
