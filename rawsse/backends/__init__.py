"""Where events come from and how far back they go.

A backend assigns each event its sequence number and wire id, keeps the bounded history
that replay reads, and answers "what did a client with this Last-Event-ID miss?".
Backends know nothing about HTTP or subscribers.
"""

from rawsse.backends.memory import MemoryBackend, Record, Replay

__all__ = ["MemoryBackend", "Record", "Replay"]
