"""Selectors: exact ones compare byte for byte, ``*`` selects everything whatever the
kind, templates match their expansions, and a bad selector is refused with the reason."""

from __future__ import annotations

import pytest

from rawsse.matching import selectors
from rawsse.matching.selectors import (
    ANY,
    MAX_SELECTOR_LENGTH,
    InvalidSelector,
    Kind,
    Selector,
    selector,
)


def test_an_exact_selector_is_its_topic_byte_for_byte() -> None:
    exact = selector(Kind.EXACT, "https://example.com/books/1")
    assert exact.matches("https://example.com/books/1")
    assert not exact.matches("https://example.com/books/1/")
    assert not exact.matches("HTTPS://example.com/books/1")  # no normalisation
    assert not exact.matches("https://example.com/books/{id}")
    braces = selector(Kind.EXACT, "https://example.com/books/{id}")
    assert braces.matches("https://example.com/books/{id}")
    assert not braces.matches("https://example.com/books/1")  # not read as a template
    nfc, nfd = "caf\u00e9", "cafe\u0301"
    assert not selector(Kind.EXACT, nfc).matches(nfd)


@pytest.mark.parametrize("kind", list(Kind))
def test_a_star_selects_every_topic_whatever_the_kind(kind: Kind) -> None:
    star = selector(kind, "*")
    assert star.any
    for topic in ("a", "https://example.com/books/1", "*", "/.well-known/mercure/x"):
        assert star.matches(topic)
    assert ANY.any and ANY.matches("anything")


def test_selectors_are_values_and_templates_are_compiled_once() -> None:
    first = selector(Kind.TEMPLATE, "https://example.com/a/{id}")
    compiled = selectors._COMPILED[first]
    again = selector(Kind.TEMPLATE, "https://example.com/a/{id}")
    assert again == first and hash(again) == hash(first)
    assert selectors._COMPILED[again] is compiled
    assert Selector(Kind.EXACT, "x") != Selector(Kind.TEMPLATE, "x")


def test_the_compiled_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(selectors, "COMPILED_KEPT", 3)
    monkeypatch.setattr(selectors, "_COMPILED", {})
    made = [selector(Kind.TEMPLATE, f"/t{i}/{{id}}") for i in range(7)]
    assert len(selectors._COMPILED) <= 3
    # A selector whose compiled form was let go is compiled again when it is used.
    assert made[0].matches("/t0/5") and not made[0].matches("/t1/5")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "1 to"),
        ("x" * (MAX_SELECTOR_LENGTH + 1), "1 to"),
        ("a\nb", "control"),
        ("a\x00b", "control"),
        ("a\u200bb", "control or format"),
        ("a\x85b", "control"),
    ],
)
@pytest.mark.parametrize("kind", list(Kind))
def test_a_bad_selector_is_refused_with_the_reason(kind: Kind, text: str, reason: str) -> None:
    with pytest.raises(InvalidSelector, match=reason):
        selector(kind, text)
