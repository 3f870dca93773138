"""A real nginx (Debian's package) in front of a test's rawsse, configured by
``deploy/nginx.conf`` itself: only its ports and paths are substituted, plus the
changes a test names (``proxy_http_version 1.0``, a short read timeout, gzip)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import ROOT, free_port, require_program, scaled

CONF = ROOT / "deploy" / "nginx.conf"


def deploy_conf(
    directory: Path, upstream_port: int, port: int, changes: dict[str, str] | None = None
) -> str:
    """``deploy/nginx.conf`` with the ports and paths of this test, and ``changes``
    (exact text → replacement, each of which must be found)."""
    conf = CONF.read_text()
    substitutions = {
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{upstream_port};",
        "listen 80;": f"listen 127.0.0.1:{port};",
        "pid /run/nginx-rawsse.pid;": f"pid {directory}/nginx.pid;",
        "/var/log/nginx/": f"{directory}/",
        "/var/lib/nginx/": f"{directory}/",
        **(changes or {}),
    }
    for old, new in substitutions.items():
        assert old in conf, f"deploy/nginx.conf no longer has {old!r}"
        conf = conf.replace(old, new)
    return conf


@contextlib.contextmanager
def nginx_in_front(
    directory: Path, upstream_port: int, changes: dict[str, str] | None = None
) -> Iterator[str]:
    """Run nginx in front of ``127.0.0.1:upstream_port``; yield its base URL."""
    nginx = require_program("nginx")
    port = free_port()
    path = directory / "nginx.conf"
    path.write_text(deploy_conf(directory, upstream_port, port, changes))
    process = subprocess.Popen(
        [nginx, "-p", str(directory), "-c", str(path), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + scaled(10)
        while True:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=scaled(10))
        if process.stderr is not None:
            process.stderr.close()
