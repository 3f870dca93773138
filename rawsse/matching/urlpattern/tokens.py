"""The URL Pattern standard's tokenizer: a pattern string as tokens (fixed characters,
``:name`` groups, ``(regexp)`` groups, ``*``, ``?``/``+`` modifiers, ``{``/``}`` and
backslash escapes).

Two policies, as the standard has them: *strict* refuses what does not tokenize (a
component's pattern), *lenient* turns it into an ``INVALID_CHAR`` token (a whole
constructor string, cut into components before each is parsed strictly).
"""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Token", "TokenType", "tokenize"]


class TokenType(enum.Enum):
    OPEN = "{"
    CLOSE = "}"
    REGEXP = "regexp"
    NAME = "name"
    CHAR = "char"
    ESCAPED_CHAR = "escaped-char"
    OTHER_MODIFIER = "other-modifier"
    ASTERISK = "asterisk"
    END = "end"
    INVALID_CHAR = "invalid-char"


@dataclass(frozen=True, slots=True)
class Token:
    type: TokenType
    #: Where it starts in the input (in code points).
    index: int
    value: str


def _name_start(c: str) -> bool:
    return c in "$_" or c.isidentifier()


def _name_part(c: str) -> bool:
    return c in "$_\u200c\u200d" or ("a" + c).isidentifier() or unicodedata.category(c) == "Mn"


def tokenize(text: str, *, strict: bool) -> list[Token]:
    """``text`` as tokens, ending with an ``END`` token.

    Raises:
        ValueError: ``strict``, and something does not tokenize (a lone backslash at the
            end, ``:`` without a name, an unbalanced or empty ``(regexp)``, a capturing
            group or non-ASCII character inside one).
    """
    tokens: list[Token] = []
    length = len(text)
    index = 0

    def error(start: int, end: int, reason: str) -> None:
        """What does not tokenize: refused (strict), or the characters from ``start``
        to ``end`` as an invalid character (lenient)."""
        if strict:
            raise ValueError(reason)
        tokens.append(Token(TokenType.INVALID_CHAR, start, text[start:end]))

    while index < length:
        c = text[index]
        if c == "*":
            tokens.append(Token(TokenType.ASTERISK, index, c))
            index += 1
        elif c in "+?":
            tokens.append(Token(TokenType.OTHER_MODIFIER, index, c))
            index += 1
        elif c == "\\":
            if index == length - 1:
                error(index, index + 1, "a backslash at the end escapes nothing")
                index += 1
                continue
            tokens.append(Token(TokenType.ESCAPED_CHAR, index, text[index + 1]))
            index += 2
        elif c == "{":
            tokens.append(Token(TokenType.OPEN, index, c))
            index += 1
        elif c == "}":
            tokens.append(Token(TokenType.CLOSE, index, c))
            index += 1
        elif c == ":":
            end = index + 1
            if end < length and _name_start(text[end]):
                end += 1
                while end < length and _name_part(text[end]):
                    end += 1
            if end == index + 1:
                error(index, index + 1, "':' must be followed by a group name")
                index += 1
                continue
            tokens.append(Token(TokenType.NAME, index, text[index + 1 : end]))
            index = end
        elif c == "(":
            index = _regexp(text, index, tokens, error)
        else:
            tokens.append(Token(TokenType.CHAR, index, c))
            index += 1
    tokens.append(Token(TokenType.END, index, ""))
    return tokens


def _regexp(
    text: str, start: int, tokens: list[Token], error: Callable[[int, int, str], None]
) -> int:
    """Read the ``(regexp)`` at ``start``; the index after it. When it does not
    tokenize, ``error`` is told (in lenient mode the ``(`` becomes an invalid
    character, and tokenizing goes on after it)."""

    def failed(reason: str) -> int:
        error(start, start + 1, reason)
        return start + 1

    depth = 1
    position = start + 1
    length = len(text)
    while position < length:
        c = text[position]
        if not c.isascii():
            return failed("a regexp group must be ASCII")
        if position == start + 1 and c == "?":
            return failed("a regexp group must not start with '?'")
        if c == "\\":
            if position == length - 1 or not text[position + 1].isascii():
                return failed("a bad escape in a regexp group")
            position += 2
            continue
        if c == ")":
            depth -= 1
            if depth == 0:
                position += 1
                break
        elif c == "(":
            depth += 1
            if position == length - 1 or text[position + 1] != "?":
                return failed("a regexp group must not hold a capturing group")
        position += 1
    if depth:
        return failed("an unclosed regexp group")
    body = text[start + 1 : position - 1]
    if not body:
        return failed("an empty regexp group")
    tokens.append(Token(TokenType.REGEXP, start, body))
    return position
