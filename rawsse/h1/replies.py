"""A complete answer to an ordinary request, as handlers return it: :class:`Reply`,
and :func:`text` for the short plain-text ones."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rawsse.policy.cors import CorsPolicy

__all__ = ["TEXT", "Reply", "text"]

TEXT = b"text/plain; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Reply:
    """A complete answer. ``content_type=None`` leaves the framing to h11 (the head of
    a ``HEAD /events``); a 204 carries neither type nor length (RFC 9110 8.6)."""

    status: int
    body: bytes = b""
    content_type: bytes | None = TEXT
    headers: tuple[tuple[bytes, bytes], ...] = ()
    close: bool = False

    def head(self, cors: CorsPolicy | None, origin: bytes | None) -> list[tuple[bytes, bytes]]:
        """Every header but ``Connection``: its own, CORS's (``cors`` is ``None`` for an
        answer to no request), type and length."""
        headers = list(self.headers)
        if cors is not None and cors.enabled:
            headers += cors.headers(origin)
        if self.content_type is not None and self.status != 204:
            headers.append((b"content-type", self.content_type))
            headers.append((b"content-length", str(len(self.body)).encode()))
        return headers


def text(status: int, reason: str, *headers: tuple[bytes, bytes], close: bool = False) -> Reply:
    """A short plain-text answer: the reason on a line."""
    return Reply(status, (reason + "\n").encode("utf-8", "replace"), TEXT, headers, close)
