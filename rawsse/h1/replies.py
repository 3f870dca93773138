"""A complete answer to an ordinary request, as handlers return it: :class:`Reply`,
and :func:`text` for the short plain-text ones."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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

    def head(self, extra: Sequence[tuple[bytes, bytes]] = ()) -> list[tuple[bytes, bytes]]:
        """Every header but ``Connection``: its own, ``extra`` (what the serving layer
        adds, such as CORS's), type and length."""
        headers = [*self.headers, *extra]
        if self.content_type is not None and self.status != 204:
            headers.append((b"content-type", self.content_type))
            headers.append((b"content-length", str(len(self.body)).encode()))
        return headers


def text(status: int, reason: str, *headers: tuple[bytes, bytes], close: bool = False) -> Reply:
    """A short plain-text answer: the reason on a line."""
    return Reply(status, (reason + "\n").encode("utf-8", "replace"), TEXT, headers, close)
