"""Where events are ordered and how far back they go: the :class:`Backend` interface
(``base``) and its implementations. Backends know nothing about HTTP or subscribers.
"""

from rawsse.backends.base import LOST_EVENT, Backend, Record, Replay
from rawsse.backends.memory import MemoryBackend

__all__ = ["LOST_EVENT", "Backend", "MemoryBackend", "Record", "Replay"]
