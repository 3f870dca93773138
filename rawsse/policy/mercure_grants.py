"""What a Mercure token grants: the topic selectors it may publish to and read private
updates of, and the payload it attaches to the subscriber's subscriptions. Sans I/O: it
reads the claims of a verified token.

Protocol 0.x: the ``mercure`` claim (or, as Mercure's hub also reads it,
``https://mercure.rocks/``), an object whose ``publish`` and ``subscribe`` members are
arrays of selectors: ``*``, an exact topic, or an RFC 6570 URI template (a selector
with a ``{``, as Mercure's hub tells them apart). Without ``publish`` the token may not
publish; without ``subscribe`` it reads public updates only.

Protocol 1.0: the ``authorization_details`` claim (RFC 9396), an array of details; those
of type ``mercure`` (or ``https://mercure.rocks/authorization-detail``) grant their
``actions`` (``publish``, ``subscribe``) on their ``topics``, topic matchers
``{"match": ..., "matchType": "Exact" | "URLPattern"}`` (``*`` matches every topic
whatever the type). Details of other types grant nothing here. URL pattern matchers are
not read yet: a token carrying one is refused rather than read in part.

A claim that is not shaped so is the token's defect: the token is refused (401), never
read in part.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rawsse.matching.selectors import InvalidSelector, Kind, Selector, selector

__all__ = [
    "ANONYMOUS",
    "CLAIMS",
    "DETAIL_TYPES",
    "MAX_DETAILS",
    "MAX_GRANTED",
    "InvalidGrants",
    "MercureGrants",
    "grants_from_claims",
]

#: The claim names read, in order: Mercure's own, then the fallback its hub accepts.
CLAIMS = ("mercure", "https://mercure.rocks/")

#: Selectors in one ``publish`` or ``subscribe`` array (or a detail's ``topics``), at
#: most; and ``mercure`` authorization details in one token.
MAX_GRANTED = 1000
MAX_DETAILS = 100

#: The type names of Mercure's authorization details (the draft's, and the IRI one).
DETAIL_TYPES = ("mercure", "https://mercure.rocks/authorization-detail")


class InvalidGrants(ValueError):
    """The token's grants cannot be read; the message says why (answered 401)."""


@dataclass(frozen=True, slots=True)
class MercureGrants:
    """What one token allows.

    Attributes:
        publish: the topics it may publish to (``None``: it may not publish).
        subscribe: the topics whose private updates it may read (empty: public only).
        payload: the ``payload`` member, any JSON value (``None`` without one).
        payloads: 1.0's payloads, each with the topic matchers of the ``subscribe``
            detail that carries it, in the token's order (see :meth:`payload_for`).
    """

    publish: tuple[Selector, ...] | None
    subscribe: tuple[Selector, ...]
    payload: Any = None
    payloads: tuple[tuple[tuple[Selector, ...], Any], ...] = ()

    def payload_for(self, match: str) -> Any:
        """The payload of a subscription by the matcher ``match``: 1.0's first
        ``subscribe`` detail with a payload whose topics match the matcher's text as if
        it were a topic; else the token's one payload (0.x), or ``None``."""
        for matchers, payload in self.payloads:
            if any(s.matches(match) for s in matchers):
                return payload
        return self.payload

    def may_publish(self, topics: Iterable[str]) -> bool:
        """Whether every one of ``topics`` is granted for publishing."""
        granted = self.publish
        if granted is None:
            return False
        return all(any(s.matches(topic) for s in granted) for topic in topics)

    def may_read(self, topics: Iterable[str]) -> bool:
        """Whether a private update about ``topics`` (its canonical topic and its
        alternates) may reach the holder: one of them is granted for reading."""
        granted = self.subscribe
        return any(s.matches(topic) for topic in topics for s in granted)

    @property
    def reading(self) -> frozenset[Selector]:
        """The read grants as a set: subscribers whose sets are equal see the same
        private updates, so they may share one frame."""
        return frozenset(self.subscribe)


#: The grants of an anonymous subscriber: public updates only.
ANONYMOUS = MercureGrants(None, ())


def grants_from_claims(claims: Mapping[str, Any], base: str | None = None) -> MercureGrants:
    """The grants in a verified token's claims (no claim: none, as an anonymous
    subscriber has); relative URL pattern matchers resolved against ``base``, the
    hub's URL.

    Raises:
        InvalidGrants: the claim, an array or a selector is malformed.
    """
    if "authorization_details" in claims:
        return _from_details(claims["authorization_details"], base)
    claim: Any = None
    for name in CLAIMS:
        if name in claims:
            claim = claims[name]
            break
    if claim is None:
        return ANONYMOUS
    if not isinstance(claim, Mapping):
        raise InvalidGrants("the mercure claim must be an object")
    publish = _selectors(claim, "publish")
    subscribe = _selectors(claim, "subscribe")
    return MercureGrants(publish, subscribe or (), claim.get("payload"))


def _selectors(claim: Mapping[str, Any], member: str) -> tuple[Selector, ...] | None:
    values = claim.get(member)
    if values is None:
        return None
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise InvalidGrants(f"mercure.{member} must be an array of strings")
    if len(values) > MAX_GRANTED:
        raise InvalidGrants(f"mercure.{member} may hold at most {MAX_GRANTED} selectors")
    try:
        return tuple(
            dict.fromkeys(selector(Kind.TEMPLATE if "{" in v else Kind.EXACT, v) for v in values)
        )
    except InvalidSelector as exc:
        raise InvalidGrants(f"mercure.{member}: {exc}") from None


def _from_details(details: Any, base: str | None) -> MercureGrants:
    """The grants of an ``authorization_details`` claim (1.0)."""
    if not isinstance(details, list):
        raise InvalidGrants("authorization_details must be an array")
    if not all(isinstance(d, Mapping) for d in details):
        raise InvalidGrants("an authorization detail must be an object")
    ours = [d for d in details if d.get("type") in DETAIL_TYPES]
    if len(ours) > MAX_DETAILS:
        raise InvalidGrants(f"at most {MAX_DETAILS} mercure authorization details are read")
    publish: dict[Selector, None] = {}
    subscribe: dict[Selector, None] = {}
    payloads: list[tuple[tuple[Selector, ...], Any]] = []
    publishes = False
    for detail in ours:
        actions = detail.get("actions")
        if (
            not isinstance(actions, list)
            or not actions
            or not all(a in ("publish", "subscribe") for a in actions)
        ):
            raise InvalidGrants("a mercure detail's actions must be publish and/or subscribe")
        matchers = _matchers(detail.get("topics"), base)
        if "publish" in actions:
            publishes = True
            publish.update(dict.fromkeys(matchers))
        if "subscribe" in actions:
            subscribe.update(dict.fromkeys(matchers))
            if "payload" in detail:
                payloads.append((tuple(matchers), detail["payload"]))
    return MercureGrants(
        tuple(publish) if publishes else None, tuple(subscribe), None, tuple(payloads)
    )


def _matchers(topics: Any, base: str | None) -> list[Selector]:
    if not isinstance(topics, list) or not topics:
        raise InvalidGrants("a mercure detail's topics must be a non-empty array")
    if len(topics) > MAX_GRANTED:
        raise InvalidGrants(f"a mercure detail may hold at most {MAX_GRANTED} topics")
    found = []
    for matcher in topics:
        if not isinstance(matcher, Mapping) or not isinstance(matcher.get("match"), str):
            raise InvalidGrants("a topic matcher must be an object with a match string")
        kind = matcher.get("matchType", "Exact")
        text = matcher["match"]
        if kind not in ("Exact", "URLPattern"):
            raise InvalidGrants(f"unknown matchType {kind!r}")
        try:
            found.append(
                selector(Kind.URL_PATTERN if kind == "URLPattern" else Kind.EXACT, text, base)
            )
        except InvalidSelector as exc:
            raise InvalidGrants(f"topic matcher: {exc}") from None
    return found
