"""A URL pattern compiled to one RE2 expression per component, and its match against a
topic: the topic is parsed as a URL (relative ones against the hub's URL) by a WHATWG
URL parser (ada, from the ``mercure`` extra), and every component must match.

Fixed text in a pattern is canonicalized as the standard does (by setting it on a dummy
URL with the same parser: percent-encoding, host names lower-cased and IDNA-encoded,
default ports dropped), so ``https://EXAMPLE.com/caf\u00e9/:id`` matches the topic
``https://example.com/caf%C3%A9/1``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rawsse.matching.engine import EngineMissing, compile_pattern
from rawsse.matching.urlpattern.constructor import COMPONENTS, SPECIAL_SCHEMES, components_of
from rawsse.matching.urlpattern.parts import Options, component_regexp, parse_parts

__all__ = ["url_pattern_matcher"]

_URL: Any = None
try:
    import ada_url

    _URL = ada_url.URL
except ImportError:  # pragma: no cover - the mercure extra is in the test extra
    pass

_DUMMY = "https://dummy.test"

#: The percent-encoded form of a C0 control or non-ASCII character in an opaque path.
_OPAQUE_SAFE = frozenset(chr(c) for c in range(0x20, 0x7F))


def _set(scheme: str, attribute: str, value: str) -> str:
    """``value`` as a URL of ``scheme`` canonicalizes it in ``attribute``."""
    assert _URL is not None
    url = _URL(f"{scheme}://dummy.test")
    setattr(url, attribute, value)
    return str(getattr(url, attribute))


def _protocol(value: str) -> str:
    if not value:
        return value
    assert _URL is not None
    return str(_URL(value + "://dummy.test").protocol)[:-1]


def _opaque(value: str) -> str:
    return "".join(
        c if c in _OPAQUE_SAFE else "".join(f"%{b:02X}" for b in c.encode()) for c in value
    )


def _encoders(special: bool, scheme: str) -> dict[str, Callable[[str], str]]:
    """Each component's canonicalization of fixed text (the pattern's own scheme when
    it is fixed, else one of its kind)."""
    kind = scheme if scheme in SPECIAL_SCHEMES or not special else "https"

    def pathname(value: str) -> str:
        if not value:
            return value
        if not special:
            return _opaque(value)
        if value.startswith("/"):
            return _set(kind, "pathname", value)
        return _set(kind, "pathname", "/-" + value)[2:]

    def port(value: str) -> str:
        if not value:
            return value
        if not value.isdigit():
            raise ValueError(f"{value!r} is not a port")
        return _set(kind if special else "fake", "port", value)

    return {
        "protocol": _protocol,
        "username": lambda v: _set(kind, "username", v) if v else v,
        "password": lambda v: _set(kind, "password", v) if v else v,
        "hostname": lambda v: _set(kind if special else "fake", "hostname", v) if v else v,
        "port": port,
        "pathname": pathname,
        "search": lambda v: _set(kind, "search", v)[1:] if v else v,
        "hash": lambda v: _set(kind, "hash", v)[1:] if v else v,
    }


def _component(pattern: str, options: Options, encode: Callable[[str], str]) -> str:
    return component_regexp(parse_parts(pattern, options, encode), options)


def _protocol_matcher(pattern: str) -> Callable[[str], bool]:
    return compile_pattern(_component(pattern, Options(), _protocol))


def _special(protocol: str) -> bool:
    """Whether a protocol pattern matches one of the special schemes."""
    matches = _protocol_matcher(protocol)
    return any(matches(scheme) for scheme in SPECIAL_SCHEMES)


def url_pattern_matcher(text: str, base: str | None) -> Callable[[str], bool]:
    """A function that tells whether a topic matches the URL pattern ``text``
    (relative patterns and topics are resolved against ``base``, the hub's URL).

    Raises:
        EngineMissing: RE2 or ada is not installed.
        ValueError: ``text`` is not a URL pattern (the message says why).
    """
    if _URL is None:
        raise EngineMissing("URL patterns need the mercure extra: pip install 'rawsse[mercure]'")
    base_url: Any = None
    if base is not None:
        base_url = _URL(base)
    try:
        patterns = components_of(text, base_url, _special)
        special = _special(patterns["protocol"])
        encoders = _encoders(special, patterns["protocol"])
        matchers: list[tuple[str, Callable[[str], bool]]] = []
        for name in COMPONENTS:
            pattern = patterns[name]
            if name == "port" and pattern in SPECIAL_SCHEMES.get(patterns["protocol"], "-"):
                pattern = ""  # the scheme's default port is no port
            if pattern == "*":
                continue  # matches anything
            if name == "hostname":
                options = Options(delimiter=".")
            elif name == "pathname" and special:
                options = Options(delimiter="/", prefix="/")
            else:
                options = Options()
            matchers.append((name, compile_pattern(_component(pattern, options, encoders[name]))))
    except EngineMissing:
        raise
    except ValueError as exc:
        raise ValueError(str(exc) or "not a URL pattern") from None

    def matches(topic: str) -> bool:
        try:
            url = _URL(topic, base) if base is not None else _URL(topic)
        except ValueError:
            return False  # not a URL, even against the hub's: no pattern matches it
        for name, match in matchers:
            value = str(getattr(url, name))
            if name == "protocol":
                value = value[:-1]
            elif name in ("search", "hash") and value:
                value = value[1:]
            if not match(value):
                return False
        return True

    return matches
