"""The hub's own event ids: how an event's place in the order (an epoch and a sequence
number) is written as an id, and read back from a ``Last-Event-ID`` in O(1).

Two forms, chosen per hub:

- ``plain``: ``EPOCH-SEQ`` (``0123abcd-42``), rawsse's own;
- ``urn``: a URN of a version 8 UUID that carries both, as Mercure requires its hub's
  ids to be IRIs: ``urn:uuid:EEEEEEEE-SSSS-8SSS-8SSS-SSSSSSSSSSSS``, the epoch in the
  first group and the sequence number in the 22 hex digits of the others (the version
  and variant digits fixed at ``8``).

Either form is read back whichever a hub writes, so a client resuming with an id from
before a change of form is still placed; and neither may be chosen by a publisher.
Nothing here imports asyncio or touches a socket.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["IdForm", "PLAIN", "URN", "parse_own"]

_PLAIN = re.compile(r"([0-9a-f]{8})-([0-9]{1,19})")
_URN = re.compile(
    r"urn:uuid:([0-9a-f]{8})-([0-9a-f]{4})-8([0-9a-f]{3})-8([0-9a-f]{3})-([0-9a-f]{12})"
)

#: The largest sequence number either form can carry (19 decimal digits).
MAX_SEQ = 10**19 - 1


class IdForm:
    """One way of writing the hub's ids."""

    __slots__ = ("name", "make")

    def __init__(self, name: str, make: Callable[[str, int], str]) -> None:
        self.name = name
        #: ``make(epoch, seq)``: the id of event ``seq`` in ``epoch``.
        self.make = make


def _plain(epoch: str, seq: int) -> str:
    return f"{epoch}-{seq}"


def _urn(epoch: str, seq: int) -> str:
    digits = f"{seq:022x}"
    return f"urn:uuid:{epoch}-{digits[:4]}-8{digits[4:7]}-8{digits[7:10]}-{digits[10:]}"


PLAIN = IdForm("plain", _plain)
URN = IdForm("urn", _urn)


def parse_own(id: str) -> tuple[str, int] | None:
    """``(epoch, seq)`` of an id in either of the hub's forms, else ``None``."""
    plain = _PLAIN.fullmatch(id)
    if plain is not None:
        return plain.group(1), int(plain.group(2))
    urn = _URN.fullmatch(id)
    if urn is not None:
        seq = int("".join(urn.group(2, 3, 4, 5)), 16)
        return (urn.group(1), seq) if seq <= MAX_SEQ else None
    return None
