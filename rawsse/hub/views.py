"""What a subscriber sees beyond its exact topics (Mercure mode): the selectors it reads
(``*``, URI templates) and the grants that let private updates through.

A native subscriber has no view: it reads its exact topics and never a private update.
A subscriber with a view shares its group (and so its frames) only with subscribers of
the same topics and the same view, so a private update is never written in a frame to
someone whose grants do not cover it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from rawsse.backends.base import Record
from rawsse.matching.selectors import Selector

__all__ = ["View", "sees", "visible"]


@dataclass(frozen=True, slots=True)
class View:
    """Selectors read beyond exact topics, and the read grants.

    Attributes:
        patterns: selectors other than exact topics (``*``, templates), matched against
            each event's topics; an exact selector is read as a topic instead.
        reading: the grants' selectors: a private event reaches the subscriber when one
            of them matches one of the event's topics. Empty: public events only.
    """

    patterns: frozenset[Selector] = frozenset()
    reading: frozenset[Selector] = frozenset()

    def may_read(self, topics: Iterable[str]) -> bool:
        """Whether a private event about ``topics`` may reach the subscriber."""
        reading = self.reading
        return bool(reading) and any(s.matches(t) for t in topics for s in reading)


def visible(records: Iterable[Record], view: View | None) -> Iterator[Record]:
    """Of ``records``, those a subscriber with ``view`` may receive: every public one,
    and a private one if the view's grants cover one of its topics (never without a
    view). The same rule for the live stream and for replay."""
    if view is None or not view.reading:
        return (record for record in records if not record.private)
    may_read = view.may_read
    return (record for record in records if not record.private or may_read(record.topics))


def sees(record: Record, view: View | None) -> bool:
    """Whether a subscriber with ``view`` may receive ``record`` (:func:`visible`'s
    rule, for one record)."""
    return not record.private or (view is not None and view.may_read(record.topics))
