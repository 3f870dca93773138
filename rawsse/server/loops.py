"""Choosing the event loop: uvloop when installed, the standard library's otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["LOOP_CHOICES", "loop_factory"]

LOOP_CHOICES = ("auto", "asyncio", "uvloop")


def loop_factory(kind: str = "auto") -> Callable[[], asyncio.AbstractEventLoop]:
    """A function that makes a new event loop of ``kind``.

    ``auto`` is uvloop when it can be imported, else asyncio's default loop; ``uvloop``
    insists on it (ImportError when missing).
    """
    if kind not in LOOP_CHOICES:
        raise ValueError(f"loop must be one of {', '.join(LOOP_CHOICES)}, got {kind!r}")
    if kind == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:
        if kind == "uvloop":
            raise
        return asyncio.new_event_loop
    return uvloop.new_event_loop
