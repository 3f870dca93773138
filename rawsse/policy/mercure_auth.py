"""Who may publish and subscribe at ``/.well-known/mercure``: Mercure 0.x tokens, found
where Mercure's clients put them and verified with the publishers' or the subscribers'
key, read into :class:`~rawsse.policy.mercure_grants.MercureGrants`.

A token comes from the ``Authorization: Bearer`` header, else the ``authorization``
query parameter, else the cookie (``mercureAuthorization`` unless configured), the
first one present being the only one read. A subscriber without a token is anonymous
(public updates only) unless ``subscribe_auth``; a token that fails verification, or
whose claim is malformed, is refused (401) either way. A publisher needs a token whose
``mercure.publish`` covers every topic of the update (401 without or with a bad one,
403 not covered); one authenticated by cookie must also come from a ``publish_origins``
origin (its ``Origin``, else its ``Referer``'s), since a browser sends cookies with
requests other sites make it send.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rawsse.errors import ConfigError
from rawsse.h1.mercure import hub_url
from rawsse.h1.parse import Query, bearer_token, cookie_value, header_value
from rawsse.matching import engine
from rawsse.policy.auth import AuthError, TokenVerifier, expiry, verifier_for
from rawsse.policy.mercure_grants import ANONYMOUS, InvalidGrants, MercureGrants, grants_from_claims

if TYPE_CHECKING:
    from rawsse.config import Config

__all__ = ["COOKIES_1_0", "MercureAuth", "QUERY_PARAMETERS"]

#: The cookies protocol 1.0 clients put a token in (besides the configured one).
COOKIES_1_0 = ("mercureAccessToken", "__Secure-mercure_access_token")

#: The query parameters a token may come in: 0.x's, then RFC 6750's (1.0).
QUERY_PARAMETERS = ("authorization", "access_token")

Headers = Sequence[tuple[bytes, bytes]]


class MercureAuth:
    """The Mercure-mode decisions of one server, from its configuration."""

    def __init__(self, config: Config) -> None:
        if not engine.AVAILABLE:
            raise ConfigError(
                "Mercure mode needs RE2 for its URI templates and URL patterns: pip install "
                "'rawsse[mercure]' "
                "(from a checkout: pip install '.[mercure]')"
            )
        publisher_key = config.mercure_key("publisher")
        assert publisher_key is not None  # Config refuses mercure without one
        options = {"audience": config.jwt_audience, "issuer": config.jwt_issuer}
        self._publishers = verifier_for(publisher_key, **options)
        subscriber_key = config.mercure_key("subscriber")
        self._subscribers: TokenVerifier | None = (
            None if subscriber_key is None else verifier_for(subscriber_key, **options)
        )
        self.subscribe_auth = config.subscribe_auth
        self._cookies = tuple(
            dict.fromkeys(name.encode("latin-1") for name in (config.mercure_cookie, *COOKIES_1_0))
        )
        self._origins = frozenset(config.publish_origins)
        self._hub_url = config.mercure_url

    def hub_url(self, headers: Headers) -> str:
        """The hub's URL for this request: relative URL patterns and topics are
        resolved against it (:func:`rawsse.h1.mercure.hub_url`)."""
        return hub_url(self._hub_url, header_value(headers, b"host"))

    def _token(self, headers: Headers, query: Query) -> tuple[str | None, bool]:
        """The request's token and whether it came in the cookie."""
        token = bearer_token(headers)
        if token is not None:
            return token, False
        for name in QUERY_PARAMETERS:
            values = query.get(name)
            if values and values[0]:
                return values[0], False
        for cookie in self._cookies:
            token = cookie_value(headers, cookie)
            if token is not None:
                return token, True
        return None, False

    def _claims(self, verifier: TokenVerifier, token: str) -> dict[str, Any]:
        """A verified token's claims; one with ``authorization_details`` must also be an
        access token (RFC 9068: ``typ`` ``at+jwt``, an ``exp``)."""
        claims = verifier.claims(token)
        if "authorization_details" in claims:
            typ = str(verifier.header(token).get("typ", "")).lower()
            if typ not in ("at+jwt", "application/at+jwt"):
                raise AuthError("token rejected: an access token's typ must be at+jwt")
            if "exp" not in claims:
                raise AuthError("token rejected: an access token must expire (exp)")
        return claims

    def subscriber(self, headers: Headers, query: Query) -> tuple[MercureGrants, float | None]:
        """A subscriber's grants, and its token's ``exp`` (Unix time) if it has one.

        Raises:
            AuthError: 401 without a token when ``subscribe_auth``, or with a token
                that fails verification or whose claim is malformed.
        """
        token, _ = self._token(headers, query)
        if token is None:
            if self.subscribe_auth:
                raise AuthError(
                    "missing token: send Authorization: Bearer, the authorization parameter, "
                    "or the cookie",
                    missing=True,
                )
            return ANONYMOUS, None
        if self._subscribers is None:
            raise AuthError("this hub verifies no subscriber tokens")
        claims = self._claims(self._subscribers, token)
        try:
            return grants_from_claims(claims, self.hub_url(headers)), expiry(claims)
        except InvalidGrants as exc:
            raise AuthError(f"token rejected: {exc}") from None

    def publisher(self, headers: Headers, query: Query) -> tuple[MercureGrants, str]:
        """A publisher's grants (which topics, checked once the form is read), and who
        it is for its publish rate (the token's ``sub``, or a digest of the token).

        Raises:
            AuthError: 401 without a token or with a bad one; 403 when it grants no
                publishing, or came by cookie from an origin not allowed.
        """
        token, by_cookie = self._token(headers, query)
        if token is None:
            raise AuthError("missing token: send Authorization: Bearer <token>", missing=True)
        if by_cookie and _origin(headers) not in self._origins:
            raise AuthError(
                "a publish authenticated by cookie must come from a publish origin", 403
            )
        claims = self._claims(self._publishers, token)
        try:
            grants = grants_from_claims(claims, self.hub_url(headers))
        except InvalidGrants as exc:
            raise AuthError(f"token rejected: {exc}") from None
        if grants.publish is None:
            raise AuthError("this token may not publish", 403)
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            subject = "token:" + hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]
        return grants, subject


def _origin(headers: Headers) -> str | None:
    """Where a browser request comes from: its ``Origin``, else its ``Referer``'s."""
    origin = header_value(headers, b"origin")
    if origin is not None and origin != b"null":
        return origin.decode("latin-1")
    referer = header_value(headers, b"referer")
    if referer is None:
        return None
    scheme, sep, rest = referer.decode("latin-1").partition("://")
    if not sep:
        return None
    return f"{scheme}://{rest.split('/', 1)[0].split('?', 1)[0].split('#', 1)[0]}"
