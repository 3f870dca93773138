"""CORS for pages on other origins: an allowlist, never a reflected arbitrary origin.

An origin on the list is echoed back with ``Access-Control-Allow-Credentials: true``, so
an ``EventSource`` opened ``withCredentials`` can send the ``rawsse_authorization``
cookie. ``*`` on the list lets any other origin read public streams, without credentials
(browsers refuse ``*`` with credentials, and it would hand every site the user's cookie).
With no list, no CORS header is ever sent: same-origin only.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["CorsPolicy", "PREFLIGHT_MAX_AGE"]

#: Seconds a browser may cache a preflight answer.
PREFLIGHT_MAX_AGE = 600

_ALLOWED_HEADERS = b"authorization, cache-control, content-type, last-event-id"


class CorsPolicy:
    """The CORS headers of every answer, from the configured origins."""

    def __init__(self, origins: Sequence[str]) -> None:
        self._origins = frozenset(o.encode("ascii") for o in origins if o != "*")
        self._any = "*" in origins

    @property
    def enabled(self) -> bool:
        """Whether any cross-origin access is allowed."""
        return bool(self._origins) or self._any

    def allows(self, origin: bytes | None) -> bool:
        """Whether a page from ``origin`` may read the answers."""
        return origin is not None and (self._any or origin in self._origins)

    def headers(self, origin: bytes | None) -> list[tuple[bytes, bytes]]:
        """The headers to add to an answer to a request from ``origin``."""
        if not self.enabled:
            return []
        if origin is not None and origin in self._origins:
            return [
                (b"access-control-allow-origin", origin),
                (b"access-control-allow-credentials", b"true"),
                (b"vary", b"Origin"),
            ]
        if self._any:
            return [(b"access-control-allow-origin", b"*")]
        # Not allowed: nothing that lets the page read it, but caches must know the
        # answer depends on the origin.
        return [(b"vary", b"Origin")]

    def preflight(
        self, origin: bytes | None, methods: Sequence[bytes]
    ) -> list[tuple[bytes, bytes]]:
        """The extra headers of a 204 answer to an allowed preflight."""
        return [
            *self.headers(origin),
            (b"access-control-allow-methods", b", ".join(methods)),
            (b"access-control-allow-headers", _ALLOWED_HEADERS),
            (b"access-control-max-age", str(PREFLIGHT_MAX_AGE).encode()),
        ]
