"""Selectors: what a subscriber (or a grant) names, and whether a topic matches it.

A selector is a kind and a text. ``*`` selects every topic whatever the kind; an exact
selector, the topic that is its text byte for byte; a URI template, every topic some
values of its variables expand it to (:mod:`.templates`); a URL pattern, every topic
that, parsed as a URL (relative ones against the hub's URL), matches it component by
component (:mod:`.urlpattern`). Selectors are compiled once and kept (a bounded number
of them), so a selector in use costs one regular-expression match per topic it is
tried against (a URL parse and one match per component, for a URL pattern), on a
linear-time engine (:mod:`.engine`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from rawsse.matching.engine import EngineMissing, compile_pattern
from rawsse.matching.templates import template_pattern
from rawsse.matching.urlpattern import url_pattern_matcher
from rawsse.text import has_unsafe

__all__ = ["ANY", "MAX_SELECTOR_LENGTH", "InvalidSelector", "Kind", "Selector", "selector"]

#: The longest selector text, in characters (a topic is at most 256; a template or a
#: pattern that names such topics needs some more).
MAX_SELECTOR_LENGTH = 1024

#: Compiled selectors kept; past it, the cache starts again (clients rarely use more
#: distinct templates than a few hundred).
COMPILED_KEPT = 4096


class InvalidSelector(ValueError):
    """A selector that cannot be used; the message says why."""


class Kind(enum.Enum):
    """How a selector's text is read."""

    EXACT = "Exact"  #: the topic itself
    TEMPLATE = "URITemplate"  #: an RFC 6570 URI template (Mercure 0.x)
    URL_PATTERN = "URLPattern"  #: a WHATWG URL pattern (Mercure 1.0)


@dataclass(frozen=True, slots=True)
class Selector:
    """A checked selector (made by :func:`selector`).

    Attributes:
        base: the hub's URL, against which a URL pattern and the topics it is tried on
            are resolved when relative (``None`` for the other kinds).
    """

    kind: Kind
    text: str
    base: str | None = None

    @property
    def any(self) -> bool:
        """Whether it selects every topic (``*``)."""
        return self.text == "*"

    def matches(self, topic: str) -> bool:
        """Whether ``topic`` is one of the topics it selects."""
        text = self.text
        if text == "*":
            return True
        kind = self.kind
        if kind is not Kind.URL_PATTERN and text == topic:
            return True  # (a URL pattern's text may not match itself: "(x)" is a group)
        if kind is Kind.EXACT:
            return False
        compiled = _COMPILED.get(self)
        if compiled is None:
            compiled = _compile(self)
        return compiled(topic)


def selector(kind: Kind, text: str, base: str | None = None) -> Selector:
    """A selector of ``kind`` with ``text``, checked and compiled; a URL pattern's
    relative text (and the relative topics it is tried on) resolved against ``base``.

    Raises:
        InvalidSelector: empty, too long, with control or format characters, not a
            valid template or URL pattern, or (for either) the mercure extra missing.
    """
    if not text or len(text) > MAX_SELECTOR_LENGTH:
        raise InvalidSelector(f"a selector must be 1 to {MAX_SELECTOR_LENGTH} characters")
    if has_unsafe(text):
        raise InvalidSelector("a selector must not contain control or format characters")
    made = Selector(kind, text, base if kind is Kind.URL_PATTERN else None)
    if kind is not Kind.EXACT and text != "*" and made not in _COMPILED:
        _compile(made)
    return made


#: Selector → its compiled match.
_COMPILED: dict[Selector, Callable[[str], bool]] = {}


def _compile(made: Selector) -> Callable[[str], bool]:
    try:
        if made.kind is Kind.URL_PATTERN:
            compiled = url_pattern_matcher(made.text, made.base)
        else:
            compiled = compile_pattern(template_pattern(made.text))
    except EngineMissing as exc:
        raise InvalidSelector(str(exc)) from None
    except ValueError as exc:
        what = "URL pattern" if made.kind is Kind.URL_PATTERN else "URI template"
        raise InvalidSelector(f"{made.text!r} is not a {what}: {exc}") from None
    if len(_COMPILED) >= COMPILED_KEPT:
        _COMPILED.clear()
    _COMPILED[made] = compiled
    return compiled


ANY = Selector(Kind.EXACT, "*")
