"""Which characters a client-chosen string may not carry where people read it: topics
(in URLs, logs and metric labels) refuse them, and the CLI's log formats escape them.

Unsafe are the controls, C0, DEL and C1 (a CR or LF forges a log line; U+0085 is a
line break to some readers), the Unicode line and paragraph separators (U+2028, U+2029:
line breaks to others), the format characters (Cf: U+202E reverses what follows on a
terminal, zero-width ones make two topics look alike), and lone surrogates (Cs: they
cannot be encoded as UTF-8, so they fail wherever the text is written out). The Mercure
specification refuses the same in topics.

Nothing here imports asyncio or touches a socket.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["escape_unsafe", "has_unsafe"]

#: The unsafe characters of ASCII; the rest are found by their Unicode category.
_ASCII_UNSAFE = re.compile("[\x00-\x1f\x7f]")
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def has_unsafe(text: str) -> bool:
    """Whether ``text`` holds a character that must not be shown raw."""
    if text.isascii():
        return _ASCII_UNSAFE.search(text) is not None
    category = unicodedata.category
    return any(category(char) in _UNSAFE_CATEGORIES for char in text)


def escape_unsafe(text: str, *, json: bool = False) -> str:
    """``text`` with each unsafe character escaped, the rest as it is: as Python writes
    it (``\\n``, ``\\x85``, ``\\u202e``), or with ``json`` as a JSON string escape
    (``text`` then being JSON, whose unsafe characters can only stand in strings)."""
    if not has_unsafe(text):
        return text
    category = unicodedata.category
    escape = _json_escape if json else _python_escape
    return "".join(escape(char) if category(char) in _UNSAFE_CATEGORIES else char for char in text)


def _python_escape(char: str) -> str:
    return repr(char)[1:-1]


def _json_escape(char: str) -> str:
    code = ord(char)
    if code > 0xFFFF:  # outside the BMP: a surrogate pair, as JSON writes it
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"
