"""A URL pattern's constructor string (``https://example.com/books/:id``, or a relative
``/books/:id``) cut into its eight components, with what a relative one takes from the
base URL, as the URL Pattern standard's constructor string parser and init processing
do (components after the last one given default to ``*``).

The cut is made on lenient tokens, so that what looks like a delimiter inside a group
(``{:x}``, ``(a:b)``) does not cut; whether the special-scheme rules apply (an
authority after ``//``, a pathname that starts with ``/``) is asked of the protocol
pattern itself through ``special``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rawsse.matching.urlpattern.tokens import Token, TokenType, tokenize

__all__ = ["COMPONENTS", "SPECIAL_SCHEMES", "components_of"]

COMPONENTS = ("protocol", "username", "password", "hostname", "port", "pathname", "search", "hash")

#: Schemes with an authority and a hierarchical path, and their default ports.
SPECIAL_SCHEMES = {"ftp": "21", "file": "", "http": "80", "https": "443", "ws": "80", "wss": "443"}

_AUTHORITY_PARTS = ("protocol", "authority", "username", "password")
_BEFORE_PATHNAME = ("protocol", "authority", "username", "password", "hostname", "port")


class _Parser:
    """The standard's constructor string parser (its states are component names,
    ``init``, ``authority`` and ``done``)."""

    def __init__(self, text: str, special: Callable[[str], bool]) -> None:
        self.text = text
        self.tokens = tokenize(text, strict=False)
        self.special = special
        self.result: dict[str, str] = {}
        self.start = 0  # the token the current component starts at
        self.index = 0
        self.increment = 1
        self.group_depth = 0
        self.bracket_depth = 0
        self.special_scheme = False
        self.state = "init"

    # -- looking at tokens ----------------------------------------------------------------

    def token(self, index: int) -> Token:
        return self.tokens[index] if index < len(self.tokens) else self.tokens[-1]

    def plain(self, index: int, value: str) -> bool:
        """Whether the token at ``index`` is the character ``value`` as such (not an
        escape's, nor a modifier)."""
        token = self.token(index)
        return token.value == value and token.type in (
            TokenType.CHAR,
            TokenType.ESCAPED_CHAR,
            TokenType.INVALID_CHAR,
        )

    def search_prefix(self) -> bool:
        """A ``?`` that starts the search, not a modifier of what precedes it."""
        if self.plain(self.index, "?"):
            return True
        if self.token(self.index).value != "?":
            return False
        if self.index == 0:
            return True
        previous = self.tokens[self.index - 1]
        return previous.type not in (
            TokenType.NAME,
            TokenType.REGEXP,
            TokenType.CLOSE,
            TokenType.ASTERISK,
        )

    def component_text(self) -> str:
        start = self.token(self.start).index
        return self.text[start : self.token(self.index).index]

    # -- moving between components ---------------------------------------------------------

    def change(self, state: str, skip: int) -> None:
        result = self.result
        if self.state not in ("init", "authority", "done"):
            result[self.state] = self.component_text()
        if self.state != "init" and state != "done":
            if (
                self.state in _AUTHORITY_PARTS
                and state in ("port", "pathname", "search", "hash")
                and "hostname" not in result
            ):
                result["hostname"] = ""
            if (
                self.state in _BEFORE_PATHNAME
                and state in ("search", "hash")
                and "pathname" not in result
            ):
                result["pathname"] = "/" if self.special_scheme else ""
            if (
                self.state in (*_BEFORE_PATHNAME, "pathname")
                and state == "hash"
                and "search" not in result
            ):
                result["search"] = ""
        self.state = state
        self.index += skip
        self.start = self.index
        self.increment = 0

    def rewind(self, state: str | None = None) -> None:
        self.index = self.start
        self.increment = 0
        if state is not None:
            self.state = state

    def parse(self) -> dict[str, str]:
        tokens = self.tokens
        while self.index < len(tokens):
            self.increment = 1
            token = tokens[self.index]
            if token.type is TokenType.END:
                if self.state == "init":
                    self.rewind()
                    if self.plain(self.index, "#"):
                        self.change("hash", 1)
                    elif self.search_prefix():
                        self.change("search", 1)
                    else:
                        self.change("pathname", 0)
                    self.index += self.increment
                    continue
                if self.state == "authority":
                    self.rewind("hostname")
                    self.index += self.increment
                    continue
                self.change("done", 0)
                break
            if token.type is TokenType.OPEN:
                self.group_depth += 1
                self.index += self.increment
                continue
            if self.group_depth > 0:
                if token.type is TokenType.CLOSE:
                    self.group_depth -= 1
                else:
                    self.index += self.increment
                    continue
            self.step()
            self.index += self.increment
        if "hostname" in self.result and "port" not in self.result:
            self.result["port"] = ""
        return self.result

    def step(self) -> None:
        """What the token at ``index`` means in the current state."""
        state, at = self.state, self.index
        if state == "init":
            if self.plain(at, ":"):
                self.rewind("protocol")
        elif state == "protocol":
            if self.plain(at, ":"):
                self.special_scheme = self.special(self.component_text())
                if self.plain(at + 1, "/") and self.plain(at + 2, "/"):
                    self.change("authority", 3)
                elif self.special_scheme:
                    self.change("authority", 1)
                else:
                    self.change("pathname", 1)
        elif state == "authority":
            if self.plain(at, "@"):
                self.rewind("username")
            elif self.plain(at, "/") or self.search_prefix() or self.plain(at, "#"):
                self.rewind("hostname")
        elif state == "username":
            if self.plain(at, ":"):
                self.change("password", 1)
            elif self.plain(at, "@"):
                self.change("hostname", 1)
        elif state == "password":
            if self.plain(at, "@"):
                self.change("hostname", 1)
        elif state == "hostname":
            if self.plain(at, "["):
                self.bracket_depth += 1
            elif self.plain(at, "]"):
                self.bracket_depth -= 1
            elif self.plain(at, ":") and not self.bracket_depth:
                self.change("port", 1)
            elif self.plain(at, "/"):
                self.change("pathname", 0)
            else:
                self.after_path(search=True)
        elif state == "port":
            if self.plain(at, "/"):
                self.change("pathname", 0)
            else:
                self.after_path(search=True)
        elif state == "pathname":
            self.after_path(search=True)
        elif state == "search":
            self.after_path(search=False)

    def after_path(self, *, search: bool) -> None:
        if search and self.search_prefix():
            self.change("search", 1)
        elif self.plain(self.index, "#"):
            self.change("hash", 1)


def escape_pattern(text: str) -> str:
    """A base URL's component as a pattern matching it literally."""
    return "".join("\\" + c if c in "+*?:{}()\\" else c for c in text)


def components_of(text: str, base: Any | None, special: Callable[[str], bool]) -> dict[str, str]:
    """The eight component patterns of the constructor string ``text``; a relative one
    takes the components before its first from ``base`` (a parsed URL with
    ``protocol``, ``hostname``, ``port``, ``pathname``, ``search`` and ``hash``).

    Raises:
        ValueError: ``text`` is relative and there is no ``base``.
    """
    given = _Parser(text, special).parse()
    if "protocol" not in given and base is None:
        raise ValueError("a relative URL pattern needs the hub's URL")
    result = dict(given)
    if base is not None:
        inherited = {
            "protocol": base.protocol[:-1],
            "hostname": base.hostname,
            "port": base.port,
            "pathname": base.pathname,
            "search": base.search[1:],
            "hash": base.hash[1:],
        }
        earlier: list[str] = []
        for name in ("protocol", "hostname", "port", "pathname", "search", "hash"):
            if not any(n in given for n in (*earlier, name)):
                result[name] = escape_pattern(inherited[name])
            earlier.append(name)
        pathname = given.get("pathname")
        if pathname is not None and not _absolute(pathname):
            directory = escape_pattern(base.pathname)
            slash = directory.rfind("/")
            if slash >= 0:
                result["pathname"] = directory[: slash + 1] + pathname
    for name in COMPONENTS:
        result.setdefault(name, "*")
    return result


def _absolute(pathname: str) -> bool:
    return pathname.startswith("/") or pathname.startswith("\\/")
