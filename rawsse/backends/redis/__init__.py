"""The Redis backend (the ``redis`` extra): :class:`RedisBackend` (:mod:`.backend`),
its script calls (:mod:`.calls`), its Pub/Sub connection (:mod:`.pubsub`), the Lua
scripts (:mod:`.scripts`) and the key and message layout (:mod:`.wire`)."""

from rawsse.backends.redis.backend import RedisBackend

__all__ = ["RedisBackend"]
