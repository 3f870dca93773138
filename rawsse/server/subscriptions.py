"""Mercure's active subscriptions (``--mercure-subscriptions``): an update when a
subscription begins and when it ends, and the API that lists those active.

A Mercure stream holds one subscription per selector it reads, all under one
subscriber id the hub makes (``urn:uuid:`` and a random UUID: unique, and never taken
from anything the client sends). Each subscription's document (JSON-LD, as the
protocol generation the client spoke writes it) is published, private, on its own
topic, ``/.well-known/mercure/subscriptions/{topic}/{subscriber}`` for 0.x and
``/.well-known/mercure/subscriptions/{matchType}/{match}/{subscriber}`` for 1.0, each
variable percent-encoded once (RFC 6570); so it reaches, live and in replay, and on
every server sharing a Redis, only subscribers whose tokens grant reading it. The API
answers ``GET /.well-known/mercure/subscriptions[/...]`` to a token granted the path
requested, from this process's streams, or from every server's through the backend's
roster when it has one (Redis).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from rawsse.backends.base import Roster
from rawsse.h1.mercure import HUB_PATH

if TYPE_CHECKING:
    from rawsse.hub.hub import Hub

__all__ = [
    "CONTEXT",
    "SUBSCRIPTIONS_PATH",
    "Subscription",
    "SubscriptionRegistry",
    "new_subscriber_id",
]

logger = logging.getLogger("rawsse.server")

#: Where the subscription events and the API live.
SUBSCRIPTIONS_PATH = HUB_PATH + "/subscriptions"

#: The JSON-LD context of every document.
CONTEXT = "https://mercure.rocks/"


def new_subscriber_id() -> str:
    """A subscriber id: made by the hub, unique among active subscriptions."""
    return "urn:uuid:" + str(uuid.uuid4())


def _encoded(value: str) -> str:
    """``value`` as an RFC 6570 simple expansion writes it: everything but unreserved
    characters percent-encoded, once."""
    return quote(value, safe="")


@dataclass(frozen=True, slots=True)
class Subscription:
    """One selector of one stream.

    Attributes:
        match: the selector's text.
        subscriber: the stream's subscriber id.
        match_type: 1.0's matcher type (``Exact``, ``URLPattern``); ``None`` for a 0.x
            ``topic`` selector.
        payload: the ``payload`` the token attaches to it (``None``: none).
    """

    match: str
    subscriber: str
    match_type: str | None = None
    payload: Any = None

    @property
    def id(self) -> str:
        """Its topic, and its path in the API."""
        parts = [SUBSCRIPTIONS_PATH]
        if self.match_type is not None:
            parts.append(self.match_type)
        parts += (_encoded(self.match), _encoded(self.subscriber))
        return "/".join(parts)

    def document(self, *, active: bool) -> dict[str, Any]:
        """Its JSON-LD document, as its protocol generation writes it."""
        document: dict[str, Any] = {"@context": CONTEXT, "id": self.id, "type": "Subscription"}
        if self.match_type is None:
            document["topic"] = self.match
        else:
            document["matchType"] = self.match_type
            document["match"] = self.match
        document["subscriber"] = self.subscriber
        document["active"] = active
        if self.payload is not None:
            document["payload"] = self.payload
        return document


class SubscriptionRegistry:
    """This process's active subscriptions, by stream, and their events.

    Args:
        hub: where the events are published.
        spawn: runs what a remote backend's publish must await.
        roster: where every server's subscriptions are listed, if they are shared.
    """

    def __init__(
        self,
        hub: Hub,
        spawn: Callable[[Coroutine[Any, Any, None]], object],
        roster: Roster | None = None,
    ) -> None:
        self._hub = hub
        self._spawn = spawn
        self.roster = roster
        self._by_stream: dict[object, tuple[Subscription, ...]] = {}

    def __len__(self) -> int:
        return sum(len(held) for held in self._by_stream.values())

    def begin(self, stream: object, subscriptions: Iterable[Subscription]) -> None:
        """``stream`` started: its subscriptions are active (published, listed)."""
        held = tuple(subscriptions)
        if not held:
            return
        self._by_stream[stream] = held
        for subscription in held:
            document = self._publish(subscription, active=True)
            if self.roster is not None:
                self.roster.add(subscription.id, document)

    def end(self, stream: object) -> None:
        """``stream`` ended: its subscriptions are not active any more."""
        held = self._by_stream.pop(stream, ())
        for subscription in held:
            self._publish(subscription, active=False)
            if self.roster is not None:
                self.roster.remove(subscription.id)

    def local(self) -> list[dict[str, Any]]:
        """This process's active subscriptions' documents."""
        return [
            subscription.document(active=True)
            for held in self._by_stream.values()
            for subscription in held
        ]

    def _publish(self, subscription: Subscription, *, active: bool) -> str:
        document = json.dumps(subscription.document(active=active), separators=(",", ":"))
        try:
            result = self._hub.start_publish_to((subscription.id,), document, private=True)
        except Exception as exc:  # the backend is down: the roster still says it
            logger.warning("subscription event for %s not published: %s", subscription.id, exc)
            return document
        if not isinstance(result, str):
            self._spawn(_settle(result, subscription.id))
        return document


async def _settle(pending: Awaitable[str], topic: str) -> None:
    try:
        await pending
    except Exception as exc:
        logger.warning("subscription event for %s not published: %s", topic, exc)
