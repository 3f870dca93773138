"""WHATWG URL patterns (Mercure 1.0's URLPattern matcher type), compiled to RE2.

The reference is the browser: Chromium implements the URL Pattern standard, so every
pattern of a corpus (fixed text, named and numbered groups, regexp groups, modifiers,
``{}`` groups, wildcards in each component, relative patterns, canonicalization of
host names, ports and percent-encoding, and patterns the standard refuses) is built in
Chromium with ``new URLPattern(pattern, hub)`` and tried on every topic of another
corpus with ``test(topic, hub)``; rawsse must give the same answer for each pair, and
refuse the same patterns. Then the cases the browser cannot tell: RE2's refusals, the
hub's URL, the cost of a match.
"""

from __future__ import annotations

from typing import Any

import pytest

from rawsse.matching.selectors import InvalidSelector, Kind, selector
from rawsse.matching.urlpattern import url_pattern_matcher
from tests.support.browser import chromium

HUB = "https://hub.example/.well-known/mercure"

PATTERNS = [
    "https://example.com/books/:id",
    "/books/:id",
    "books/:id",
    "urn\\:example\\:*",
    "urn:example:*",
    "urn:example::id",
    "urn:example\\:*",
    "https://example.com/books/:id(\\d+)",
    "https://example.com/caf\u00e9/*",
    "https://example.com/books/:id?",
    "https://example.com/books/*?*",
    "https://example.com/{books/}?:id",
    "https://:sub.example.com/*",
    "https://*.example.com/*",
    "https://example.com/:a/:b+",
    "https://example.com/:a*",
    "https://example.com:8080/x",
    "https://example.com:443/x",
    "http{s}?://example.com/*",
    "*://example.com/*",
    "https://example.com/books/:id#:frag",
    "https://example.com/x?q=:v",
    "https://example.com/x?*",
    "https://example.com/x#*",
    "/.well-known/mercure/subscriptions/:topic/:subscriber",
    "https://example.com/(foo|bar)/x",
    "https://example.com/books/{:id}.json",
    "https://example.com/*.json",
    "https://example.com/books/:id{/edit}?",
    "https://example.com/:name([a-z]+)-:n(\\d+)",
    "https://example.com/:x(.*)",
    "https://EXAMPLE.COM/A",
    "https://example.com/a b",
    "https://example.com/\u00e9/:id",
    "https://b\u00fccher.de/*",
    "https://[::1]/*",
    "https://user:pw@example.com/*",
    "https://example.com/books?q",
    "https://example.com/a?b?c",
    "//example.com/*",
    "data\\:*",
    "/books/:id\\?",
    # Refused by the standard:
    "https://example.com/(a(b))",
    "https://example.com/:id/:id",
    "/(",
    "https://example.com/\\",
    "https://example.com/{",
    "https://example.com/(?x)",
    "https://example.com/:",
]

TOPICS = [
    "https://example.com/books/1",
    "https://example.com/books/12",
    "https://example.com/books/a",
    "https://example.com/books/1/x",
    "https://example.com/books/1/2",
    "https://example.com/books/1/edit",
    "https://example.com/books/1/",
    "https://example.com/books/",
    "https://example.com/books",
    "https://EXAMPLE.com/books/1?x#y",
    "https://example.com/books/1#f",
    "https://example.com/books/1?q",
    "https://example.com/books?q",
    "https://example.com/books/../books/1",
    "https://example.com/books/7.json",
    "https://example.com/a.json",
    "https://example.com/b/c.json",
    "/books/2",
    "/books/5?",
    "books/1",
    "https://hub.example/books/3",
    "https://hub.example/.well-known/books/9",
    "https://other/books/3",
    "/.well-known/mercure/subscriptions/t/s",
    "urn:example:1",
    "urn:example:",
    "https://example.com/caf\u00e9/x",
    "https://example.com/caf%C3%A9/1",
    "https://example.com/%C3%A9/3",
    "https://www.example.com/a",
    "https://a.example.com/q",
    "https://example.com/a/b/c",
    "https://example.com/",
    "https://example.com:8080/x",
    "https://example.com:443/x",
    "https://example.com/x",
    "http://example.com/x",
    "wss://example.com/x",
    "ftp://example.com/x",
    "https://example.com/x?q=1",
    "https://example.com/x?anything",
    "https://example.com/x?",
    "https://example.com/x#h",
    "https://example.com/foo/x",
    "https://example.com/abc-12",
    "https://example.com/A",
    "https://example.com/a%20b",
    "https://example.com/a?b?c",
    "https://user:pw@example.com/z",
    "https://xn--bcher-kva.de/x",
    "https://b\u00fccher.de/y",
    "https://[::1]/z",
    "mailto:a@b.c",
    "data:text/plain,hi",
    "not a url at all",
]

_IN_CHROMIUM = """([patterns, topics, hub]) => Object.fromEntries(patterns.map((p) => {
  let pattern;
  try { pattern = new URLPattern(p, hub); } catch (e) { return [p, null]; }
  return [p, topics.map((t) => { try { return pattern.test(t, hub); } catch (e) { return false; } })];
}))"""


def ours(pattern: str) -> list[bool] | None:
    try:
        matches = url_pattern_matcher(pattern, HUB)
    except ValueError:
        return None
    return [matches(topic) for topic in TOPICS]


def test_every_pattern_matches_every_topic_as_chromiums_url_pattern_does() -> None:
    with chromium() as browser:
        page: Any = browser.new_page()  # type: ignore[attr-defined]
        theirs = page.evaluate(_IN_CHROMIUM, [PATTERNS, TOPICS, HUB])
    differences = []
    for pattern in PATTERNS:
        answer, expected = ours(pattern), theirs[pattern]
        if (answer is None) != (expected is None):
            differences.append((pattern, "refused" if answer is None else "accepted"))
            continue
        if answer is None:
            continue
        for topic, got, want in zip(TOPICS, answer, expected, strict=True):
            if got != want:
                differences.append((pattern, topic, got))
    assert differences == []
    # The corpus is not trivial: patterns refused, and each kept one matching some
    # topics and not others.
    refused = [p for p in PATTERNS if theirs[p] is None]
    assert refused == ["https://[::1]/*", "https://example.com/a?b?c", *PATTERNS[-7:]]
    assert all(sum(theirs[p]) < len(TOPICS) for p in PATTERNS if theirs[p] is not None)
    # Those that match none of these topics are what the standard makes of them: ":x"
    # is a group even in a URN (whose constructor string then cuts its protocol at the
    # next colon), and a pattern without a protocol is relative.
    assert [p for p in PATTERNS if theirs[p] is not None and not any(theirs[p])] == [
        "urn\\:example\\:*",
        "urn:example:*",
        "urn:example::id",
        "urn:example\\:*",
        "https://user:pw@example.com/*",
        "//example.com/*",
        "data\\:*",
    ]


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("https://example.com/(a(?=b))", "does not compile"),  # lookahead: RE2 has none
        ("https://example.com/(\\1)", "does not compile"),  # backreference: nor these
        ("https://example.com/(a(b))", "capturing group"),
        ("https://example.com/:id/:id", "two groups"),
        ("https://example.com/\u00e9(\u00e9)", "ASCII"),
        ("https://example.com/()", "empty"),
    ],
)
def test_a_pattern_that_cannot_be_matched_in_linear_time_or_at_all_is_refused(
    pattern: str, reason: str
) -> None:
    with pytest.raises(InvalidSelector, match="is not a URL pattern") as refused:
        selector(Kind.URL_PATTERN, pattern, HUB)
    assert reason in str(refused.value)


def test_relative_patterns_and_topics_are_resolved_against_the_hubs_url() -> None:
    books = selector(Kind.URL_PATTERN, "/books/:id", "https://example.com/.well-known/mercure")
    assert books.matches("https://example.com/books/1")
    assert books.matches("/books/1")  # resolved against the same URL
    assert not books.matches("https://other.example/books/1")
    elsewhere = selector(Kind.URL_PATTERN, "/books/:id", "http://localhost/.well-known/mercure")
    assert elsewhere != books  # the same text against another hub is another selector
    assert not elsewhere.matches("https://example.com/books/1")
    assert elsewhere.matches("/books/1")
    with pytest.raises(InvalidSelector, match="needs the hub's URL"):
        selector(Kind.URL_PATTERN, "/books/:id")


def test_a_patterns_text_is_not_taken_for_the_topic_it_spells() -> None:
    """An exact or template selector matches the topic equal to its text; a URL
    pattern only what it matches: ``(x)`` is a group."""
    pattern = selector(Kind.URL_PATTERN, "https://example.com/(x)", HUB)
    assert not pattern.matches("https://example.com/(x)")
    assert pattern.matches("https://example.com/x")


def test_a_long_hostile_topic_is_matched_in_linear_time() -> None:
    """The pattern that makes a backtracking engine take exponential time, on a topic
    of 100 000 characters: one RE2 pass (a timed assertion would live in perf/; this
    one finishes at all, which a backtracking engine would not)."""
    pattern = selector(Kind.URL_PATTERN, "https://example.com/:x((?:a+)+b)", HUB)
    assert not pattern.matches("https://example.com/" + "a" * 100_000)
    assert pattern.matches("https://example.com/aaab")
