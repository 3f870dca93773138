"""Which backend a configuration asks for: the memory backend, or Redis (imported only
then, since redis-py is an extra)."""

from __future__ import annotations

from rawsse.backends.base import Backend
from rawsse.backends.memory import MemoryBackend
from rawsse.config import Config
from rawsse.errors import ConfigError
from rawsse.ids import PLAIN, URN

__all__ = ["backend_for"]


def backend_for(config: Config) -> Backend:
    """The backend ``config`` asks for: Redis when ``config.redis`` is set, else memory."""
    ids = URN if config.mercure else PLAIN  # Mercure's hub ids are IRIs
    if config.redis is None:
        return MemoryBackend(
            config.history, max_bytes=config.history_bytes, ttl=config.history_ttl, ids=ids
        )
    try:
        from rawsse.backends.redis.backend import RedisBackend
    except ImportError as exc:
        raise ConfigError(
            "--redis needs the redis extra: pip install 'rawsse[redis]' (from a checkout: "
            f"pip install '.[redis]') ({exc})"
        ) from None
    return RedisBackend(
        config.redis,
        history=config.history,
        prefix=config.redis_prefix,
        timeout=config.redis_timeout,
        ids=ids,
    )
