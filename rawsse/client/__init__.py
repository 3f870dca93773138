"""A Python client for rawsse: publish (one event, or many over one request) and
subscribe (reconnecting, resuming), synchronously or with asyncio, on httpx.

Install it with the ``client`` extra (``pip install 'rawsse[client]'``); the hub itself
needs none of it.

    from rawsse.client import Client

    with Client("http://127.0.0.1:8000", key=KEY) as hub:
        event_id = hub.publish("orders", {"id": 7, "status": "paid"})
        for event in hub.subscribe("orders"):
            ...
"""

try:
    import httpx  # noqa: F401  (the client extra)
except ImportError as exc:  # pragma: no cover - the client extra is in the test extra
    raise ImportError(
        "rawsse.client needs httpx: pip install 'rawsse[client]'", name=exc.name
    ) from exc

from rawsse.client.aio import AsyncClient
from rawsse.client.errors import (
    ClientError,
    DuplicateId,
    Forbidden,
    InvalidEvent,
    RateLimited,
    TooLarge,
    Unauthorized,
    Unavailable,
)
from rawsse.client.events import AuthExpiring, Event, Lost, Notice
from rawsse.client.sync import Client

__all__ = [
    "AsyncClient",
    "AuthExpiring",
    "Client",
    "ClientError",
    "DuplicateId",
    "Event",
    "Forbidden",
    "InvalidEvent",
    "Lost",
    "Notice",
    "RateLimited",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
]
