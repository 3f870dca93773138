"""rawsse: a Server-Sent Events hub and embeddable SSE server on asyncio and h11.

The public names are imported lazily, so that ``import rawsse.events`` (the sans-IO wire
format) does not load asyncio.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rawsse.version import __version__

__all__ = [
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
]

_WHERE = {
    "Config": "rawsse.config",
    "ConfigError": "rawsse.errors",
    "Hub": "rawsse.hub.hub",
    "InvalidEvent": "rawsse.errors",
    "LOST_EVENT": "rawsse.backends.memory",
    "MemoryBackend": "rawsse.backends.memory",
    "PayloadTooLarge": "rawsse.errors",
    "RawSSEError": "rawsse.errors",
    "RequestError": "rawsse.errors",
    "Server": "rawsse.server.server",
    "ServerThread": "rawsse.server.server",
    "encode_event": "rawsse.events",
    "run": "rawsse.server.server",
}

if TYPE_CHECKING:
    from rawsse.backends.memory import LOST_EVENT, MemoryBackend
    from rawsse.config import Config
    from rawsse.errors import ConfigError, InvalidEvent, PayloadTooLarge, RawSSEError, RequestError
    from rawsse.events import encode_event
    from rawsse.hub.hub import Hub
    from rawsse.server.server import Server, ServerThread, run


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'rawsse' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
