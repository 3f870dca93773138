"""The Mercure hub at ``/.well-known/mercure``, on the same hub as the native API.

``GET`` subscribes, in either protocol generation, chosen by what the request uses:

- 0.x (what Symfony, API Platform and FrankenPHP send today): ``topic`` selectors (an
  exact topic, ``*``, or an RFC 6570 URI template);
- 1.0: ``match`` (or ``match_exact``, ``matchExact``) exact matchers, ``*``, and WHATWG
  URL patterns (``matchURLPattern``, or ``match_urlpattern``; relative ones resolved
  against the hub's URL); any other parameter in the ``match`` namespace is refused
  (400).

A token comes from where Mercure's clients put it (anonymous: public updates only);
``Last-Event-ID`` (or ``lastEventID``, ``last_event_id``) resumes, ``earliest`` asks for
every update kept, and the answer says where the replay starts (``Last-Event-ID``, and
1.0's ``Mercure-Last-Event-ID``). ``POST`` publishes Mercure's form, answered with the
update's id alone. A private update reaches only subscribers whose token grants reading
one of its topics, live and in replay (:class:`~rawsse.hub.views.View`).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

from rawsse.errors import RequestError
from rawsse.h1.mercure import EARLIEST, HUB_PATH, parse_update
from rawsse.h1.parse import SSE_HEADERS, Query
from rawsse.h1.replies import Reply
from rawsse.hub.views import View
from rawsse.matching.selectors import ANY, InvalidSelector, Kind, Selector, selector
from rawsse.policy.auth import AuthError, Grants
from rawsse.server.shared import publish_and_answer
from rawsse.server.stream import StreamStart
from rawsse.server.subscriptions import Subscription, SubscriptionRegistry, new_subscriber_id
from rawsse.server.subscriptions_api import SubscriptionsApi
from rawsse.topics import parse_topics

if TYPE_CHECKING:
    from rawsse.h1.exchange import Request
    from rawsse.policy.mercure_auth import MercureAuth
    from rawsse.policy.mercure_grants import MercureGrants
    from rawsse.server.shared import Shared

__all__ = ["HUB_PATH", "MercureRoutes", "read_selectors"]

_TEXT = b"text/plain; charset=utf-8"


#: 1.0's matcher parameters: exact matching (the bare name is the default type).
_EXACT_PARAMETERS = frozenset({"match", "match_exact", "matchExact"})
#: 1.0's URL pattern matchers (``matchURLPattern``, and the issue's spelling).
_URL_PATTERN_PARAMETERS = frozenset({"match_urlpattern", "matchURLPattern"})


def read_selectors(
    query: Query, max_selectors: int, base: str | None = None
) -> tuple[tuple[str, ...], frozenset[Selector], bool]:
    """A subscription's selectors: the exact topics, the others (``*``, URI templates,
    URL patterns, relative ones resolved against ``base``), and whether the request
    speaks 1.0 (``match*`` parameters) rather than 0.x (``topic``).

    Raises:
        RequestError: 400 for none, too many, a malformed one, an unknown ``match*``
            parameter or both generations at once (with the reason).
    """
    matchers = [name for name in query if name.lower().startswith("match")]
    if matchers and "topic" in query:
        raise RequestError("use topic (protocol 0.x) or match (1.0), not both")
    if not matchers:
        return (*_read_0x(query.get("topic", []), max_selectors), False)
    for name in matchers:
        if name not in _EXACT_PARAMETERS and name not in _URL_PATTERN_PARAMETERS:
            raise RequestError(f"unknown topic matcher parameter {name!r}")
    if sum(len(query[name]) for name in matchers) > max_selectors:
        raise RequestError(f"at most {max_selectors} topic matchers are allowed")
    exact: list[str] = []
    patterns: set[Selector] = set()
    for name in matchers:
        for text in query[name]:
            if text == "*":
                patterns.add(ANY)
            elif name in _EXACT_PARAMETERS:
                exact.append(text)
            else:
                try:
                    patterns.add(selector(Kind.URL_PATTERN, text, base))
                except InvalidSelector as exc:
                    raise RequestError(f"{name}: {exc}") from None
    return (parse_topics(exact, max_selectors) if exact else ()), frozenset(patterns), True


def _read_0x(texts: list[str], max_selectors: int) -> tuple[tuple[str, ...], frozenset[Selector]]:
    if not texts:
        raise RequestError("at least one topic selector is required: ?topic= (or ?match=)")
    if len(texts) > max_selectors:
        raise RequestError(f"at most {max_selectors} topic selectors are allowed")
    exact: list[str] = []
    patterns: set[Selector] = set()
    for text in texts:
        if text == "*" or "{" in text:
            try:
                patterns.add(selector(Kind.TEMPLATE, text))
            except InvalidSelector as exc:
                raise RequestError(str(exc)) from None
        else:
            exact.append(text)
    topics = parse_topics(exact, max_selectors) if exact else ()
    return topics, frozenset(patterns)


class MercureRoutes:
    """Subscribing and publishing at ``/.well-known/mercure``."""

    def __init__(self, server: Shared) -> None:
        self._server = server
        mercure = server.admission.mercure
        assert mercure is not None  # made when the config turns Mercure mode on
        self._auth: MercureAuth = mercure

    def subscriptions_api(self, registry: SubscriptionRegistry) -> SubscriptionsApi:
        """The subscription API over ``registry``, authorized as subscriptions are."""
        return SubscriptionsApi(self._server, self._auth, registry)

    def subscribe(
        self, request: Request, query: Query, *, client: str, trusted: bool, now: float
    ) -> Reply | StreamStart:
        """Admit a subscription (or answer a ``HEAD``).

        Raises:
            RequestError: bad selectors (400), draining (503), the backend down (503).
            AuthError: no token where one is required, or a bad one (401).
            Refused: over a stream cap.
        """
        server = self._server
        topics, patterns, modern = read_selectors(
            query, server.config.max_topics, self._auth.hub_url(request.headers)
        )
        if server.draining:
            raise RequestError("shutting down", 503, close=True, label="draining")
        if not server.hub.backend.healthy:
            raise server.admission.backend_unavailable()
        grants, expires_at = self._auth.subscriber(request.headers, query)
        if request.method == b"HEAD":
            return Reply(200, content_type=None, headers=tuple(SSE_HEADERS))
        key = server.admission.stream_slot(
            client=client, trusted=trusted, now=now, open_streams=server.hub.subscriber_count
        )
        last_event_id = _last_event_id(request, query)
        view = View(patterns, grants.reading)
        headers: tuple[tuple[bytes, bytes], ...] = ()
        if last_event_id is not None:
            anchor = self._anchor(topics, last_event_id, view)
            headers = ((b"last-event-id", anchor),)
            if modern:
                headers += ((b"mercure-last-event-id", anchor),)
        return StreamStart(
            topics,
            None if expires_at is None else Grants("mercure", expires_at=expires_at),
            last_event_id,
            key,
            server.hub.ready(topics, last_event_id, every=bool(patterns))
            if topics or patterns
            else None,
            view=view,
            path=HUB_PATH,
            headers=headers,
            subscriptions=() if server.subscriptions is None else _subscriptions(query, grants),
        )

    def _anchor(self, topics: tuple[str, ...], last_event_id: str, view: View) -> bytes:
        """The ``Last-Event-ID`` response header: the id the client asked to resume
        from when what follows it will be sent to it directly, else ``earliest`` (the
        client may have lost events, or may not learn of one it cannot read). With a
        backend that must be awaited (Redis), ``earliest``: the head goes out first."""
        hub = self._server.hub
        anchor = None
        if hub.backend.synchronous:
            anchor = hub.resume_anchor(topics, last_event_id, view)
        return (anchor or EARLIEST).encode("utf-8", "replace")

    def publish(self, request: Request, query: Query, now: float) -> Reply | Awaitable[Reply]:
        """Publish Mercure's form; answer with the update's id alone.

        Raises:
            RequestError: a malformed form (400, 415), a reserved topic (403),
                draining or the backend down (503).
            AuthError: no or a bad token (401), one that does not cover a topic (403).
            Refused: over the publisher's publish rate.
        """
        server = self._server
        if server.draining:
            raise RequestError("shutting down", 503)
        grants, subject = self._auth.publisher(request.headers, query)
        server.admission.take_publish(Grants(subject), now)
        update = parse_update(
            request.header(b"content-type"), request.body, max_topics=server.config.max_topics
        )
        if not grants.may_publish(update.topics):
            raise AuthError("this token may not publish to every topic of the update", 403)
        return publish_and_answer(
            server,
            update.topics,
            update.data,
            _published,
            event=update.type,
            id=update.id,
            retry=update.retry,
            private=update.private,
            reuse_id=True,  # Mercure lets a publisher give an id again
        )


def _subscriptions(query: Query, grants: MercureGrants) -> tuple[Subscription, ...]:
    """The subscriptions of a stream (admitted: its selectors were read): one per
    selector, in the order given, under one subscriber id the hub makes; each with the
    payload its token attaches to it."""
    subscriber = new_subscriber_id()
    pairs: list[tuple[str | None, str]] = []
    for name, texts in query.items():
        if name == "topic":
            pairs += ((None, text) for text in texts)
        elif name in _EXACT_PARAMETERS:
            pairs += (("Exact", text) for text in texts)
        elif name in _URL_PATTERN_PARAMETERS:
            pairs += (("URLPattern", text) for text in texts)
    return tuple(
        Subscription(text, subscriber, kind, grants.payload_for(text))
        for kind, text in dict.fromkeys(pairs)
    )


def _last_event_id(request: Request, query: Query) -> str | None:
    """The id to resume after: the header, else the ``lastEventID`` parameter (or 1.0's
    ``last_event_id``, or the older ``Last-Event-ID``)."""
    raw = request.header(b"last-event-id")
    if raw is not None:
        return raw.decode("utf-8", "replace")
    for name in ("lastEventID", "last_event_id", "Last-Event-ID"):
        values = query.get(name)
        if values:
            return values[0]
    return None


def _published(event_id: str) -> Reply:
    return Reply(200, event_id.encode("utf-8"), _TEXT)
