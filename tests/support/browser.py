"""A real headless Chromium driven by Playwright for Python.

Playwright drives the system's Chromium (``executable_path``): ``playwright install``
would download a browser of its own, which this machine's closed network refuses. The
extra flags keep Chromium from reaching for the network at start.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

from tests.conftest import require_program

FLAGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    """A Playwright browser (``playwright.sync_api.Browser``) on the system Chromium."""
    executable = require_program("chromium")
    if os.environ.get("RAWSSE_REQUIRE_EXTERNAL") != "1":
        pytest.importorskip("playwright", reason="Playwright for Python is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()
