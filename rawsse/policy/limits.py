"""Rate and connection limits: token buckets and counters keyed by client or credential.

Each table is one dictionary of small lists, touched once per new connection, stream or
publish, never per event. Buckets that have filled up again are pruned by the server's
timer, so memory follows the number of recently active clients, not of all clients ever
seen. A limit of 0 is off.

IPv6 clients are keyed by their /64 network: one host is routinely given a whole /64, so
keying by full address would let one machine dodge every limit.
"""

from __future__ import annotations

import ipaddress
import math
import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rawsse.config import Config

__all__ = ["RateTable", "CountTable", "Limits", "client_key", "retry_range_ms"]


def client_key(address: str) -> str:
    """The key a client's limits are counted under: its IPv4 address, or its IPv6 /64."""
    if ":" not in address:
        return address
    try:
        ip = ipaddress.IPv6Address(address.partition("%")[0])
    except ValueError:
        return address
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))


class RateTable:
    """Token buckets: ``rate`` tokens per second, holding at most ``burst``."""

    __slots__ = ("rate", "burst", "_buckets")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        #: key -> [tokens, time of last update]
        self._buckets: dict[str, list[float]] = {}

    def take(self, key: str, now: float) -> float:
        """Spend one token for ``key``: 0.0 when allowed, else the seconds until one is
        available again (the caller's ``Retry-After``)."""
        if not self.rate:
            return 0.0
        bucket = self._buckets.get(key)
        if bucket is None:
            self._buckets[key] = [self.burst - 1.0, now]
            return 0.0
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / self.rate

    def prune(self, now: float) -> None:
        """Forget buckets that have filled up again: they behave as new ones would."""
        if not self.rate:
            return
        refill = self.burst / self.rate
        full = [key for key, (_tokens, at) in self._buckets.items() if now - at >= refill]
        for key in full:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)


class CountTable:
    """Concurrent holders per key, capped at ``limit`` each."""

    __slots__ = ("limit", "_counts")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._counts: dict[str, int] = {}

    def acquire(self, key: str) -> bool:
        """Count one more holder for ``key``; False (and nothing counted) when full."""
        count = self._counts.get(key, 0)
        if self.limit and count >= self.limit:
            return False
        self._counts[key] = count + 1
        return True

    def release(self, key: str) -> None:
        """Count one holder fewer; the key is forgotten at zero."""
        count = self._counts.get(key, 0) - 1
        if count > 0:
            self._counts[key] = count
        else:
            self._counts.pop(key, None)

    def __len__(self) -> int:
        return len(self._counts)

    def total(self) -> int:
        """Holders over every key."""
        return sum(self._counts.values())


class Limits:
    """Every limit of one server, from its configuration."""

    def __init__(self, config: Config) -> None:
        self.connection_rate = RateTable(config.conn_rate, config.conn_burst)
        self.publish_rate = RateTable(config.publish_rate, config.publish_burst)
        self.connections = CountTable(config.max_connections_per_address)
        self.streams = CountTable(config.max_streams_per_address)
        self.max_streams = config.max_streams
        self.limit_retry = config.limit_retry

    def prune(self, now: float) -> None:
        """Drop state that no longer limits anyone (called by the server's timer)."""
        self.connection_rate.prune(now)
        self.publish_rate.prune(now)

    def open_stream(self, key: str, open_streams: int) -> bool:
        """Admit one more stream for ``key`` given ``open_streams`` in all."""
        if self.max_streams and open_streams >= self.max_streams:
            return False
        return self.streams.acquire(key)


#: Seconds a client refused for want of the backend (Redis unreachable) is told to wait
#: (plus jitter): an outage may be short, and a restarted Redis is back in about that.
BACKEND_RETRY_WAIT = 1.0


def retry_after_seconds(wait: float) -> int:
    """A ``Retry-After`` value (whole seconds, at least 1) for a wait in seconds."""
    return max(1, math.ceil(wait))


def retry_range_ms(limit_retry: int) -> tuple[int, int]:
    """The range a refused stream's ``retry:`` hint is drawn from, for a full cap."""
    return limit_retry // 2, limit_retry * 3 // 2


def stream_retry_ms(wait: float | None, limit_retry: int) -> int:
    """The ``retry:`` hint given to a refused stream: the rate limit's wait plus up to a
    second of jitter, or a random delay in ``retry_range_ms(limit_retry)`` for a full cap."""
    if wait is not None:
        return math.ceil(wait * 1000) + random.randint(0, 1000)
    return random.randint(*retry_range_ms(limit_retry))
