"""The selectors read here other than exact topics (``*``, URI templates: Mercure mode),
and which of them each topic matches.

Each distinct selector is one :class:`Pattern`, shared by every group that reads it. An
event is queued on the patterns its topics match: which those are is evaluated once per
topic and kept (a bounded number of topics), and forgotten when a pattern comes or goes,
so an event costs one lookup per topic rather than one evaluation per subscriber or
per pattern.
"""

from __future__ import annotations

from collections.abc import Callable

from rawsse.backends.base import Record
from rawsse.hub.groups import Pattern
from rawsse.matching.selectors import Selector

__all__ = ["MATCHES_KEPT", "Patterns"]

#: Topics whose matching patterns are kept; past it, the cache starts again.
MATCHES_KEPT = 65_536


class Patterns:
    """The patterns of one fan-out, and the topics' matches."""

    __slots__ = ("_by_selector", "_matches")

    def __init__(self) -> None:
        self._by_selector: dict[Selector, Pattern] = {}
        self._matches: dict[str, tuple[Pattern, ...]] = {}

    def __bool__(self) -> bool:
        return bool(self._by_selector)

    def __len__(self) -> int:
        return len(self._by_selector)

    def of(self, selector: Selector) -> Pattern:
        """The pattern of ``selector``, made if new (then every topic is matched
        again when next seen)."""
        pattern = self._by_selector.get(selector)
        if pattern is None:
            pattern = self._by_selector[selector] = Pattern(selector)
            self._matches.clear()
        return pattern

    def remove(self, pattern: Pattern) -> None:
        """No group reads ``pattern`` any more."""
        del self._by_selector[pattern.selector]
        self._matches.clear()

    def matching(self, name: str) -> tuple[Pattern, ...]:
        """The patterns topic ``name`` matches (evaluated once, then kept)."""
        patterns = self._matches.get(name)
        return self._evaluate(name) if patterns is None else patterns

    def queue(self, record: Record, dirty: Callable[[Pattern], None]) -> bool:
        """Queue ``record`` on the patterns its topics match (each once, a pattern
        with nothing pending yet passed to ``dirty``); whether any matched."""
        queued = False
        matches = self._matches
        for name in record.topics:
            patterns = matches.get(name)
            if patterns is None:
                patterns = self._evaluate(name)
            for pattern in patterns:
                pending = pattern.pending
                if pending and pending[-1] is record:
                    continue  # another of its topics matched the same pattern
                if not pending:
                    dirty(pattern)
                pending.append(record)
                queued = True
        return queued

    def _evaluate(self, name: str) -> tuple[Pattern, ...]:
        matches = self._matches
        if len(matches) >= MATCHES_KEPT:
            matches.clear()
        found = matches[name] = tuple(
            p for selector, p in self._by_selector.items() if selector.matches(name)
        )
        return found
