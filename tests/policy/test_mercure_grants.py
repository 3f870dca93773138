"""Mercure 0.x grants read from a token's claims: which topics it may publish to, which
private updates it may read (by any of an update's topics), its payload, and a
malformed claim refused whole."""

from __future__ import annotations

from typing import Any

import pytest

from rawsse.policy.mercure_grants import (
    ANONYMOUS,
    MAX_GRANTED,
    InvalidGrants,
    grants_from_claims,
)

BOOKS = "https://example.com/books/{id}"


def test_a_token_without_the_claim_grants_nothing() -> None:
    grants = grants_from_claims({"sub": "someone", "exp": 1})
    assert grants == ANONYMOUS
    assert not grants.may_publish(["a"])
    assert not grants.may_read(["a"])


def test_publish_grants_cover_every_topic_of_an_update_or_none() -> None:
    grants = grants_from_claims({"mercure": {"publish": [BOOKS, "https://example.com/news"]}})
    assert grants.may_publish(["https://example.com/books/1"])
    assert grants.may_publish(["https://example.com/books/1", "https://example.com/news"])
    assert not grants.may_publish(["https://example.com/books/1", "https://example.com/authors/1"])
    assert not grants.may_publish(["https://example.com/books/1/reviews"])
    assert not grants.may_read(["https://example.com/books/1"])  # publish is not read
    everything = grants_from_claims({"mercure": {"publish": ["*"]}})
    assert everything.may_publish(["anything", "/at/all"])
    nothing = grants_from_claims({"mercure": {"publish": []}})
    assert not nothing.may_publish(["a"])


def test_read_grants_let_a_private_update_through_by_any_of_its_topics() -> None:
    grants = grants_from_claims({"mercure": {"subscribe": ["https://example.com/books/1"]}})
    assert grants.may_read(["https://example.com/books/1"])
    assert not grants.may_read(["https://example.com/books/2"])
    # Canonical topic first, alternates after: one granted is enough.
    assert grants.may_read(["https://example.com/books/2", "https://example.com/books/1"])
    assert not grants.may_publish(["https://example.com/books/1"])
    templated = grants_from_claims({"mercure": {"subscribe": [BOOKS]}})
    assert templated.may_read(["https://example.com/books/7"])
    assert not templated.may_read(["https://example.com/books/7/reviews"])
    # A template's text is not a topic: braces in an exact selector stay literal.
    assert not grants_from_claims({"mercure": {"subscribe": ["a"]}}).may_read(["{a}"])


def test_mercure_s_fallback_claim_name_is_read_and_its_payload_kept() -> None:
    payload = {"user": "https://example.com/users/1", "roles": ["admin"]}
    grants = grants_from_claims(
        {"https://mercure.rocks/": {"subscribe": ["*"], "payload": payload}}
    )
    assert grants.may_read(["anything"]) and grants.payload == payload
    first = grants_from_claims(
        {"mercure": {"subscribe": ["a"]}, "https://mercure.rocks/": {"subscribe": ["*"]}}
    )
    assert not first.may_read(["b"])  # the first name wins


def test_equal_read_grants_share_one_fingerprint_whatever_their_order() -> None:
    one = grants_from_claims({"mercure": {"subscribe": ["a", BOOKS, "a"]}})
    two = grants_from_claims({"mercure": {"subscribe": [BOOKS, "a"], "publish": ["*"]}})
    other = grants_from_claims({"mercure": {"subscribe": ["a"]}})
    assert one.reading == two.reading
    assert one.reading != other.reading
    assert len(one.subscribe) == 2  # deduplicated


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"mercure": ["*"]}, "must be an object"),
        ({"mercure": "*"}, "must be an object"),
        ({"mercure": {"publish": "*"}}, "array of strings"),
        ({"mercure": {"subscribe": [1]}}, "array of strings"),
        ({"mercure": {"subscribe": ["a", None]}}, "array of strings"),
        ({"mercure": {"subscribe": ["https://example.com/{"]}}, "not a URI template"),
        ({"mercure": {"publish": ["a\nb"]}}, "control"),
        ({"mercure": {"publish": [""]}}, "1 to"),
        ({"mercure": {"subscribe": ["t"] * (MAX_GRANTED + 1)}}, f"at most {MAX_GRANTED}"),
    ],
)
def test_a_malformed_claim_is_refused_whole(claims: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidGrants, match=reason):
        grants_from_claims(claims)


def test_url_pattern_matchers_of_an_access_token_grant_what_they_match() -> None:
    """1.0's authorization details: URL pattern matchers beside exact ones, relative
    ones resolved against the hub's URL; a matcher that is not a URL pattern refuses the
    token."""
    details = [
        {
            "type": "mercure",
            "actions": ["publish", "subscribe"],
            "topics": [
                {"match": "/books/:id", "matchType": "URLPattern"},
                {"match": "https://example.com/news", "matchType": "Exact"},
            ],
        }
    ]
    grants = grants_from_claims(
        {"authorization_details": details}, "https://example.com/.well-known/mercure"
    )
    assert grants.may_publish(["https://example.com/books/1", "https://example.com/news"])
    assert grants.may_read(["/books/2"])
    assert not grants.may_publish(["https://example.com/books/1/reviews"])
    assert not grants.may_read(["https://other.example/books/1"])
    bad = [
        {
            "type": "mercure",
            "actions": ["subscribe"],
            "topics": [{"match": "/(", "matchType": "URLPattern"}],
        }
    ]
    with pytest.raises(InvalidGrants, match="not a URL pattern"):
        grants_from_claims({"authorization_details": bad}, "https://example.com/")
