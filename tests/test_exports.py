"""The public names and the documented import paths: what users import must keep
working whatever the package's inside looks like."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import rawsse

#: Documented paths (README, docs/embedding.md, docs/scaling-out.md) and what they hold.
DOCUMENTED = {
    "rawsse.hub": ["Hub"],
    "rawsse.server": ["Server", "ServerThread", "run"],
    "rawsse.backends": ["Backend", "LOST_EVENT", "MemoryBackend", "Record", "Replay"],
    "rawsse.backends.memory": ["MemoryBackend", "LOST_EVENT"],
    "rawsse.backends.redis": ["RedisBackend"],
    "rawsse.config": ["Config"],
    "rawsse.errors": ["ConfigError", "InvalidEvent", "RawSSEError", "RequestError"],
    "rawsse.events": ["encode_event"],
}


def test_every_public_name_resolves_to_what_its_module_holds() -> None:
    assert set(rawsse.__all__) == {
        "Config",
        "ConfigError",
        "Hub",
        "InvalidEvent",
        "LOST_EVENT",
        "MemoryBackend",
        "PayloadTooLarge",
        "RawSSEError",
        "RequestError",
        "Server",
        "ServerThread",
        "encode_event",
        "run",
        "__version__",
    }
    for name in rawsse.__all__:
        assert getattr(rawsse, name) is not None, name
    assert rawsse.Hub is importlib.import_module("rawsse.hub").Hub
    assert rawsse.Server is importlib.import_module("rawsse.server").Server
    with pytest.raises(AttributeError):
        rawsse.NotAName  # noqa: B018


@pytest.mark.parametrize("module", sorted(DOCUMENTED))
def test_documented_import_paths(module: str) -> None:
    loaded = importlib.import_module(module)
    for name in DOCUMENTED[module]:
        assert hasattr(loaded, name), f"{module}.{name}"


def test_python_m_rawsse_is_the_command_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rawsse", "--help"], capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith("usage:") and "--publish-key" in result.stdout
