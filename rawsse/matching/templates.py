"""RFC 6570 URI templates as topic selectors (Mercure 0.x): a template selects every
topic that some values of its variables expand it to.

A template is parsed by the RFC's grammar (levels 1 to 4: the operators ``+ # . / ; ?
&``, lists of variables, the ``:N`` prefix and ``*`` explode modifiers); what it does
not allow is refused with the reason. It then compiles to one regular expression that
matches every expansion: each expression becomes its operator's first character and
separator around values made of the characters that operator leaves unencoded
(unreserved, or for ``+`` and ``#`` reserved too, percent-encoded octets, and non-ASCII
characters as IRIs carry them). The expression is a superset in two respects, both
harmless for routing: a prefix modifier does not bound a value's length, and a
value may be a list or an exploded map wherever a string may be.
"""

from __future__ import annotations

import re

__all__ = ["MAX_EXPRESSIONS", "template_pattern"]

#: Expressions in one template, at most.
MAX_EXPRESSIONS = 32

# (first character, separator, named, the value's characters are reserved-expanded)
_OPERATORS: dict[str, tuple[str, str, bool, bool]] = {
    "": ("", ",", False, False),
    "+": ("", ",", False, True),
    "#": ("#", ",", False, True),
    ".": (".", ".", False, False),
    "/": ("/", "/", False, False),
    ";": (";", ";", True, False),
    "?": ("?", "&", True, False),
    "&": ("&", "&", True, False),
}
_RESERVED_OPERATORS = frozenset("=,!@|")

_PCT = r"%[0-9A-Fa-f]{2}"
_UNRESERVED = r"(?:[A-Za-z0-9\-._~]|" + _PCT + r"|[^\x00-\x7F])"
_RESERVED = r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|" + _PCT + r"|[^\x00-\x7F])"

_VARNAME = re.compile(r"(?:[A-Za-z0-9_]|%[0-9A-Fa-f]{2})(?:\.?(?:[A-Za-z0-9_]|%[0-9A-Fa-f]{2}))*")
_PREFIX = re.compile(r":[1-9][0-9]{0,3}")
# Literal characters: anything but controls, space and "'%<>\^`{|} (a % only in a
# percent-encoded octet).
_LITERAL = re.compile(r"(?:[^\x00-\x20\x7F\"'%<>\\^`{|}]|%[0-9A-Fa-f]{2})+")


def template_pattern(template: str) -> str:
    """The regular expression (RE2 syntax, matched whole) that matches every expansion
    of ``template``.

    Raises:
        ValueError: ``template`` is not an RFC 6570 template; the message says where.
    """
    parts: list[str] = []
    at = 0
    expressions = 0
    while at < len(template):
        if template[at] == "{":
            end = template.find("}", at)
            if end < 0:
                raise ValueError(f"an expression opened at {at} is not closed")
            expressions += 1
            if expressions > MAX_EXPRESSIONS:
                raise ValueError(f"at most {MAX_EXPRESSIONS} expressions are allowed")
            parts.append(_expression(template[at + 1 : end], at))
            at = end + 1
            continue
        literal = _LITERAL.match(template, at)
        if literal is None:
            raise ValueError(f"character {template[at]!r} at {at} is not allowed in a template")
        parts.append(re.escape(literal.group()))
        at = literal.end()
    return "".join(parts)


def _expression(body: str, at: int) -> str:
    """The pattern of one expression (``body`` is what is between its braces)."""
    operator = body[:1]
    if operator in _RESERVED_OPERATORS:
        raise ValueError(f"operator {operator!r} at {at} is reserved")
    if operator not in _OPERATORS:
        operator = ""  # level 1: the body starts with a variable name
    first, separator, named, reserved = _OPERATORS[operator]
    names: list[str] = []
    explodes = False
    for varspec in body[len(operator) :].split(","):
        name = _VARNAME.match(varspec)
        if name is None:
            raise ValueError(f"a variable name is expected in {{{body}}} at {at}")
        modifier = varspec[name.end() :]
        if modifier == "*":
            explodes = True
        elif modifier and not _PREFIX.fullmatch(modifier):
            raise ValueError(f"modifier {modifier!r} in {{{body}}} at {at} is not :1 to :9999 or *")
        names.append(name.group())
    char = _RESERVED if reserved else _UNRESERVED
    value = f"(?:{char}|[,=])*"
    if named:
        keys = [re.escape(name) for name in names]
        if explodes:
            keys.append(f"{char}+")  # an exploded map's keys are the map's own
        key = "(?:" + "|".join(keys) + ")"
        item = f"{key}(?:={value})?" if operator == ";" else f"{key}={value}"
    else:
        item = value
    sep = re.escape(separator)
    return f"(?:{re.escape(first)}{item}(?:{sep}{item})*)?"
