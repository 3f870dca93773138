"""``GET /.well-known/mercure/subscriptions[/...]``: the active subscriptions, to a
token whose read grants cover the path asked for (Mercure's subscription API).

The path's shape says what is asked: ``/subscriptions`` all of them; 0.x's
``/{topic}`` and ``/{topic}/{subscriber}``; 1.0's ``/{matchType}/{match}`` and
``/{matchType}/{match}/{subscriber}`` (a first segment naming a matcher type is
1.0's). A single subscription not active is 404; a collection may be empty. Every
answer carries ``lastEventID``: where a client that then subscribes to the
subscription events resumes from without missing one.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from rawsse.errors import BackendUnavailable, RequestError
from rawsse.h1.parse import Query
from rawsse.h1.replies import Reply
from rawsse.policy.auth import AuthError
from rawsse.policy.mercure_grants import ANONYMOUS
from rawsse.server.subscriptions import CONTEXT, SUBSCRIPTIONS_PATH

if TYPE_CHECKING:
    from rawsse.h1.exchange import Request
    from rawsse.policy.mercure_auth import MercureAuth
    from rawsse.server.shared import Shared
    from rawsse.server.subscriptions import SubscriptionRegistry

__all__ = ["MATCH_TYPES", "SubscriptionsApi"]

#: 1.0's matcher type names, as a path segment.
MATCH_TYPES = frozenset({"Exact", "URLPattern"})

_JSON_LD = b"application/ld+json"


def _single(path: str) -> bool | None:
    """Whether ``path`` (below ``/subscriptions``) names one subscription, a
    collection (``False``), or nothing the API serves (``None``)."""
    rest = path[len(SUBSCRIPTIONS_PATH) :]
    if not rest:
        return False
    segments = rest[1:].split("/")
    if not rest.startswith("/") or not all(segments):
        return None
    if segments[0] in MATCH_TYPES:
        return {2: False, 3: True}.get(len(segments))
    return {1: False, 2: True}.get(len(segments))


class SubscriptionsApi:
    """Answers the subscription API from a registry (and its roster)."""

    def __init__(self, server: Shared, auth: MercureAuth, registry: SubscriptionRegistry) -> None:
        self._server = server
        self._auth = auth
        self._registry = registry

    def answer(self, request: Request, query: Query) -> Reply | Awaitable[Reply]:
        """The documents the request's path names.

        Raises:
            RequestError: 404 for a path the API does not serve.
            AuthError: 401 without a token or with a bad one; 403 when its read grants
                do not cover the path.
        """
        path = request.target.partition(b"?")[0].decode("latin-1")
        single = _single(path)
        if single is None:
            raise RequestError("not found", 404)
        grants, _ = self._auth.subscriber(request.headers, query)
        if grants is ANONYMOUS:
            raise AuthError("the subscription API needs a token granting it", missing=True)
        if not grants.may_read([path]):
            raise AuthError("this token may not read these subscriptions", 403)
        roster = self._registry.roster
        if roster is None:
            return self._reply(path, single, self._registry.local())
        return self._from_roster(path, single, roster.listing())

    async def _from_roster(self, path: str, single: bool, pending: Awaitable[list[str]]) -> Reply:
        try:
            listed = [json.loads(document) for document in await pending]
        except BackendUnavailable as exc:
            raise self._server.admission.backend_unavailable(str(exc)) from None
        return self._reply(path, single, listed)

    def _reply(self, path: str, single: bool, documents: list[dict[str, Any]]) -> Reply:
        hub = self._server.hub
        last_event_id = hub.backend.position_id(hub.last_seq)
        if single:
            found = [d for d in documents if d.get("id") == path]
            if not found:
                raise RequestError("no such active subscription", 404)
            body: dict[str, Any] = {**found[0], "lastEventID": last_event_id}
        else:
            prefix = path + "/"
            chosen = [
                {k: v for k, v in d.items() if k != "@context"}
                for d in documents
                if path == SUBSCRIPTIONS_PATH or str(d.get("id", "")).startswith(prefix)
            ]
            chosen.sort(key=lambda d: str(d.get("id")))
            body = {
                "@context": CONTEXT,
                "id": path,
                "type": "Subscriptions",
                "lastEventID": last_event_id,
                "subscriptions": chosen,
            }
        encoded = json.dumps(body, separators=(",", ":")).encode("utf-8")
        etag = b'"' + last_event_id.encode("utf-8", "replace") + b'"'
        headers = ((b"etag", etag), (b"cache-control", b"must-revalidate"))
        return Reply(200, encoded, _JSON_LD, headers)
