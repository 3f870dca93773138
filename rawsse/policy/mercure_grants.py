"""What a Mercure 0.x token grants: the ``mercure`` claim's topic selectors for
publishing and for reading private updates, and the payload it attaches to the
subscriber's subscriptions. Sans I/O: it reads claims a verified token carries.

The claim (or, as Mercure's hub also reads it, ``https://mercure.rocks/``) is an object
whose ``publish`` and ``subscribe`` members are arrays of selectors: ``*``, an exact
topic, or an RFC 6570 URI template (a selector with a ``{``, as Mercure's hub tells
them apart). Without ``publish`` the token may not publish; without ``subscribe`` it
reads public updates only. A claim that is not shaped so is the token's defect: the
token is refused (401), never read in part.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rawsse.matching.selectors import InvalidSelector, Kind, Selector, selector

__all__ = [
    "ANONYMOUS",
    "CLAIMS",
    "MAX_GRANTED",
    "InvalidGrants",
    "MercureGrants",
    "grants_from_claims",
]

#: The claim names read, in order: Mercure's own, then the fallback its hub accepts.
CLAIMS = ("mercure", "https://mercure.rocks/")

#: Selectors in one ``publish`` or ``subscribe`` array, at most.
MAX_GRANTED = 1000


class InvalidGrants(ValueError):
    """The token's grants cannot be read; the message says why (answered 401)."""


@dataclass(frozen=True, slots=True)
class MercureGrants:
    """What one token allows.

    Attributes:
        publish: the topics it may publish to (``None``: it may not publish).
        subscribe: the topics whose private updates it may read (empty: public only).
        payload: the ``payload`` member, any JSON value (``None`` without one).
    """

    publish: tuple[Selector, ...] | None
    subscribe: tuple[Selector, ...]
    payload: Any = None

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


def grants_from_claims(claims: Mapping[str, Any]) -> MercureGrants:
    """The grants in a verified token's claims (no claim: none, as an anonymous
    subscriber has).

    Raises:
        InvalidGrants: the claim, an array or a selector is malformed.
    """
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
