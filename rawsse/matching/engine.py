"""The regular-expression engine selectors compile to: RE2, whose matching time is
linear in the topic's length whatever the pattern, where Python's backtracking ``re``
can take exponential time on a crafted one (the Mercure specification requires either
such an engine or an evaluation limit, and ``re`` can be given neither). RE2 comes with
the ``mercure`` extra (``google-re2``); without it, only exact and ``*`` selectors are
available.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["AVAILABLE", "MAX_PATTERN_LENGTH", "EngineMissing", "compile_pattern"]

try:
    import re2 as _re2
except ImportError:  # pragma: no cover - the mercure extra is in the test extra
    _re2 = None

AVAILABLE = _re2 is not None

#: The longest regular expression a selector may compile to: bounds the memory and the
#: compile time of one selector (a selector's text is bounded far below this).
MAX_PATTERN_LENGTH = 64 * 1024


class EngineMissing(RuntimeError):
    """Templates and URL patterns need RE2: ``pip install 'rawsse[mercure]'``."""


def compile_pattern(pattern: str) -> Callable[[str], bool]:
    """A function that tells whether a whole topic matches ``pattern``.

    Raises:
        EngineMissing: RE2 is not installed.
        ValueError: the pattern does not compile (too long, or invalid).
    """
    if _re2 is None:
        raise EngineMissing(
            "URI templates and URL patterns need RE2: pip install 'rawsse[mercure]'"
        )
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError("the selector is too complex")
    options: Any = _re2.Options()
    options.max_mem = 8 << 20
    options.log_errors = False  # a bad selector is the client's error, answered 400
    try:
        compiled = _re2.compile(pattern, options)
    except _re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args else "invalid"
        raise ValueError(f"the selector does not compile: {reason}") from None
    fullmatch = compiled.fullmatch

    def matches(topic: str) -> bool:
        return fullmatch(topic) is not None

    return matches
