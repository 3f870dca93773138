"""One URL pattern component (a pathname such as ``/books/:id(\\d+)?``) as the
standard's part list, and the regular expression it matches with.

A part is fixed text, a named or numbered group (a segment wildcard, a full wildcard
``*``, or a ``(regexp)``), each with a modifier (``?``, ``*``, ``+``) and, for groups,
a prefix and a suffix (``{prefix:name suffix}``, or the component's prefix character
before a group, such as the ``/`` before ``:id``). Fixed text is canonicalized by the
component's encoder (percent-encoding, lower-case host names), so that a pattern
written as a topic is written matches it once both are canonical.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from rawsse.matching.urlpattern.tokens import Token, TokenType, tokenize

__all__ = ["Options", "Part", "PartType", "component_regexp", "escape_regexp", "parse_parts"]

#: What a pattern's ``*`` matches.
FULL_WILDCARD = ".*"


class PartType(enum.Enum):
    FIXED = "fixed-text"
    REGEXP = "regexp"
    SEGMENT_WILDCARD = "segment-wildcard"
    FULL_WILDCARD = "full-wildcard"


@dataclass(frozen=True, slots=True)
class Options:
    """A component's delimiter (what a ``:name`` group stops at) and prefix (the
    character a group's prefix may be without braces): ``/`` for a hierarchical
    pathname, ``.`` (delimiter only) for a host name, none elsewhere."""

    delimiter: str = ""
    prefix: str = ""

    @property
    def segment_wildcard(self) -> str:
        """The regular expression of a ``:name`` group without a regexp."""
        if not self.delimiter:
            return "(?s:.)+?"
        return "[^" + escape_regexp(self.delimiter) + "]+?"


@dataclass(frozen=True, slots=True)
class Part:
    type: PartType
    value: str  # the fixed text, or the regexp of a REGEXP part
    modifier: str = ""  # "", "?", "*" or "+"
    name: str = ""
    prefix: str = ""
    suffix: str = ""


def escape_regexp(text: str) -> str:
    """``text`` as a regular expression matching it literally."""
    return "".join("\\" + c if c in ".+*?^${}()[]|/\\" else c for c in text)


def parse_parts(text: str, options: Options, encode: Callable[[str], str]) -> list[Part]:
    """The part list of one component's pattern ``text``.

    Raises:
        ValueError: it does not tokenize, a group is unclosed or doubled, or two
            groups have the same name.
    """
    return _PartParser(tokenize(text, strict=True), options, encode).parse()


class _PartParser:
    __slots__ = ("tokens", "options", "encode", "parts", "pending", "index", "next_number")

    def __init__(self, tokens: list[Token], options: Options, encode: Callable[[str], str]) -> None:
        self.tokens = tokens
        self.options = options
        self.encode = encode
        self.parts: list[Part] = []
        self.pending = ""
        self.index = 0
        self.next_number = 0

    def take(self, *types: TokenType) -> Token | None:
        token = self.tokens[self.index]
        if token.type not in types:
            return None
        self.index += 1
        return token

    def take_group_body(self, name: Token | None) -> Token | None:
        """A regexp after a name, else (without a name) a regexp or a ``*``."""
        token = self.take(TokenType.REGEXP)
        if name is None and token is None:
            token = self.take(TokenType.ASTERISK)
        return token

    def take_text(self) -> str:
        text = ""
        while (token := self.take(TokenType.CHAR, TokenType.ESCAPED_CHAR)) is not None:
            text += token.value
        return text

    def parse(self) -> list[Part]:
        while self.index < len(self.tokens):
            char = self.take(TokenType.CHAR)
            name = self.take(TokenType.NAME)
            body = self.take_group_body(name)
            if name is not None or body is not None:
                prefix = char.value if char is not None else ""
                if prefix and prefix != self.options.prefix:
                    self.pending += prefix
                    prefix = ""
                self.flush_pending()
                modifier = self.take(TokenType.OTHER_MODIFIER, TokenType.ASTERISK)
                self.add(prefix, name, body, "", modifier)
                continue
            fixed = char if char is not None else self.take(TokenType.ESCAPED_CHAR)
            if fixed is not None:
                self.pending += fixed.value
                continue
            if self.take(TokenType.OPEN) is not None:
                prefix = self.take_text()
                name = self.take(TokenType.NAME)
                body = self.take_group_body(name)
                suffix = self.take_text()
                if self.take(TokenType.CLOSE) is None:
                    raise ValueError("a '{' group is not closed where it should be")
                modifier = self.take(TokenType.OTHER_MODIFIER, TokenType.ASTERISK)
                self.add(prefix, name, body, suffix, modifier)
                continue
            self.flush_pending()
            if self.take(TokenType.END) is None:
                token = self.tokens[self.index]
                raise ValueError(f"unexpected {token.value!r} at {token.index}")
        return self.parts

    def flush_pending(self) -> None:
        if self.pending:
            self.parts.append(Part(PartType.FIXED, self.encode(self.pending)))
            self.pending = ""

    def add(
        self,
        prefix: str,
        name: Token | None,
        body: Token | None,
        suffix: str,
        modifier_token: Token | None,
    ) -> None:
        modifier = modifier_token.value if modifier_token is not None else ""
        if name is None and body is None and not modifier:
            self.pending += prefix
            return
        self.flush_pending()
        if name is None and body is None:
            if prefix:
                self.parts.append(Part(PartType.FIXED, self.encode(prefix), modifier))
            return
        if body is None:
            kind, value = PartType.SEGMENT_WILDCARD, ""
        elif body.type is TokenType.ASTERISK:
            kind, value = PartType.FULL_WILDCARD, ""
        elif body.value == self.options.segment_wildcard:
            kind, value = PartType.SEGMENT_WILDCARD, ""
        elif body.value == FULL_WILDCARD:
            kind, value = PartType.FULL_WILDCARD, ""
        else:
            kind, value = PartType.REGEXP, body.value
        if name is not None:
            label = name.value
        else:
            label = str(self.next_number)
            self.next_number += 1
        if any(part.name == label for part in self.parts if part.type is not PartType.FIXED):
            raise ValueError(f"two groups are named {label!r}")
        self.parts.append(
            Part(kind, value, modifier, label, self.encode(prefix), self.encode(suffix))
        )


def component_regexp(parts: list[Part], options: Options) -> str:
    """The regular expression a component matches with (anchored by the caller's full
    match), as the standard generates it."""
    out: list[str] = []
    for part in parts:
        modifier = part.modifier
        if part.type is PartType.FIXED:
            if not modifier:
                out.append(escape_regexp(part.value))
            else:
                out.append("(?:" + escape_regexp(part.value) + ")" + modifier)
            continue
        if part.type is PartType.SEGMENT_WILDCARD:
            body = options.segment_wildcard
        elif part.type is PartType.FULL_WILDCARD:
            body = FULL_WILDCARD
        else:
            body = part.value
        prefix, suffix = escape_regexp(part.prefix), escape_regexp(part.suffix)
        if not prefix and not suffix:
            if modifier in ("", "?"):
                out.append("(" + body + ")" + modifier)
            else:
                out.append("((?:" + body + ")" + modifier + ")")
            continue
        if modifier in ("", "?"):
            out.append("(?:" + prefix + "(" + body + ")" + suffix + ")" + modifier)
            continue
        out.append(
            "(?:"
            + prefix
            + "((?:"
            + body
            + ")(?:"
            + suffix
            + prefix
            + "(?:"
            + body
            + "))*)"
            + suffix
            + ")"
        )
        if modifier == "*":
            out.append("?")
    return "".join(out)
