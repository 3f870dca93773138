"""Who may publish and who may read which topics: the static publish key and JWTs.

A JWT's ``rawsse`` claim lists topic *selectors* in the manner of Mercure's
``mercure.publish`` / ``mercure.subscribe``::

    {"sub": "billing", "exp": 1767225600,
     "rawsse": {"publish": ["orders/*"], "subscribe": ["orders/*", "news"]}}

A selector is ``*`` (every topic), a prefix ending in ``*`` (``orders/*`` matches
``orders/42`` and ``orders/eu/7``, not ``orders``) or an exact topic name.

Only the algorithm that fits the configured key is accepted: HS256 with ``jwt_secret``,
RS256 with an RSA ``jwt_public_key``, ES256/ES384/ES512 with an EC one. ``none`` is never
accepted, and a token signed with HMAC using the public key as secret (the classic
algorithm-confusion forgery) fails because HS256 is not in the list for a public key.

PyJWT is imported only when a JWT key is configured (``pip install 'rawsse[jwt]'``), so
the core keeps h11 as its only dependency.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rawsse.errors import ConfigError, RequestError

if TYPE_CHECKING:
    from rawsse.config import Config

__all__ = [
    "AuthError",
    "Grants",
    "Authorizer",
    "TokenVerifier",
    "selector_matches",
    "mint_token",
    "expiry",
    "verifier_for",
    "key_matches",
    "KEY_GRANTS",
    "CLAIM",
    "MIN_SECRET_BYTES",
]

#: The JWT claim that carries rawsse's grants.
CLAIM = "rawsse"

#: RFC 7518 (3.2): an HS256 key must be at least as long as the hash, 256 bits.
MIN_SECRET_BYTES = 32

_INSTALL_HINT = (
    "JWT support needs PyJWT: pip install 'rawsse[jwt]' (from a checkout: pip install '.[jwt]')"
)


class AuthError(RequestError):
    """A request without the right credentials: 401 (no or bad token) or 403 (a valid
    credential that does not cover what was asked).

    ``challenge`` is the ``WWW-Authenticate`` value RFC 6750 asks for: a bare ``Bearer``
    when no credential was sent, ``invalid_token`` for a bad one, ``insufficient_scope``
    for a good one that does not cover the topic.
    """

    def __init__(self, reason: str, status: int = 401, *, missing: bool = False) -> None:
        super().__init__(reason, status, label="auth")
        if missing:
            self.challenge = b"Bearer"
        elif status == 403:
            self.challenge = b'Bearer error="insufficient_scope"'
        else:
            self.challenge = b'Bearer error="invalid_token"'


def selector_matches(selector: str, topic: str) -> bool:
    """Whether ``selector`` (``*``, ``prefix*`` or an exact name) covers ``topic``."""
    if selector.endswith("*"):
        return topic.startswith(selector[:-1])
    return selector == topic


def _first_uncovered(selectors: Sequence[str], topics: Iterable[str]) -> str | None:
    for topic in topics:
        if not any(selector_matches(s, topic) for s in selectors):
            return topic
    return None


@dataclass(frozen=True, slots=True)
class Grants:
    """What one verified credential may do.

    Attributes:
        subject: who it is, for rate limits and logs (the token's ``sub``, or a digest
            of the token when it has none).
        publish: topic selectors it may publish to.
        subscribe: topic selectors it may read.
        expires_at: Unix time the token expires, or ``None`` if it never does.
    """

    subject: str
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    expires_at: float | None = None

    def check_publish(self, topics: Iterable[str]) -> None:
        """Raise 403 naming the first topic this credential may not publish to."""
        denied = _first_uncovered(self.publish, topics)
        if denied is not None:
            raise AuthError(f"this token may not publish to topic {denied!r}", 403)

    def check_subscribe(self, topics: Iterable[str]) -> None:
        """Raise 403 naming the first topic this credential may not read."""
        denied = _first_uncovered(self.subscribe, topics)
        if denied is not None:
            raise AuthError(f"this token may not read topic {denied!r}", 403)


def key_matches(token: str | None, key: str) -> bool:
    """Whether ``token`` is the static ``key``, compared in constant time."""
    return token is not None and hmac.compare_digest(
        token.encode("utf-8", "surrogateescape"), key.encode("utf-8")
    )


def _import_jwt() -> Any:
    try:
        import jwt
    except ImportError:
        raise ConfigError(_INSTALL_HINT) from None
    return jwt


def _public_key_algorithm(pem: str) -> str:
    """The one JWS algorithm that fits a PEM public key."""
    try:
        from cryptography.hazmat.primitives.asymmetric import ec, rsa
        from cryptography.hazmat.primitives.serialization import load_pem_public_key
    except ImportError:
        raise ConfigError(_INSTALL_HINT) from None
    try:
        key = load_pem_public_key(pem.encode("utf-8"))
    except ValueError as exc:
        raise ConfigError(f"jwt_public_key is not a PEM public key: {exc}") from None
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise ConfigError(
                f"jwt_public_key: RSA keys under 2048 bits are refused ({key.key_size})"
            )
        return "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey):
        by_curve = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
        algorithm = by_curve.get(key.curve.name)
        if algorithm is not None:
            return algorithm
        raise ConfigError(f"jwt_public_key: unsupported curve {key.curve.name}")
    raise ConfigError("jwt_public_key must be an RSA or EC (P-256/384/521) public key")


def _selectors(claims: dict[str, Any], field: str) -> tuple[str, ...]:
    grants = claims.get(CLAIM)
    if grants is None:
        return ()
    if not isinstance(grants, dict):
        raise AuthError(f"the {CLAIM!r} claim must be an object")
    value = grants.get(field, [])
    if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
        raise AuthError(f"{CLAIM}.{field} must be a list of topic selectors")
    return tuple(value)


class TokenVerifier:
    """Verifies JWTs against the configured key, algorithm, audience and issuer."""

    def __init__(
        self,
        *,
        secret: str | None = None,
        public_key: str | None = None,
        audience: str | None = None,
        issuer: str | None = None,
    ) -> None:
        self._jwt = _import_jwt()
        if secret is not None:
            if len(secret.encode("utf-8")) < MIN_SECRET_BYTES:
                raise ConfigError(f"jwt_secret must be at least {MIN_SECRET_BYTES} bytes long")
            self._key: Any = secret
            self.algorithm = "HS256"
        elif public_key is not None:
            self.algorithm = _public_key_algorithm(public_key)
            self._key = public_key
        else:
            raise ConfigError("a TokenVerifier needs a secret or a public key")
        self._audience = audience
        self._issuer = issuer

    def verify(self, token: str) -> Grants:
        """Check signature, algorithm, ``exp``, ``nbf``, and ``aud``/``iss`` when set;
        the token's rawsse grants.

        Raises:
            AuthError: 401 with a short reason for any failure.
        """
        claims = self.claims(token)
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            subject = "token:" + hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]
        return Grants(
            subject=subject,
            publish=_selectors(claims, "publish"),
            subscribe=_selectors(claims, "subscribe"),
            expires_at=expiry(claims),
        )

    def header(self, token: str) -> dict[str, Any]:
        """The JOSE header of ``token`` (read, not verified: call after :meth:`claims`)."""
        try:
            header = self._jwt.get_unverified_header(token)
        except self._jwt.InvalidTokenError:
            raise AuthError("malformed token") from None
        return header if isinstance(header, dict) else {}

    def claims(self, token: str) -> dict[str, Any]:
        """The claims of ``token`` once its signature, algorithm, ``exp``, ``nbf``, and
        ``aud``/``iss`` (when set) are checked.

        Raises:
            AuthError: 401 with a short reason for any failure.
        """
        jwt = self._jwt
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[self.algorithm],
                audience=self._audience,
                issuer=self._issuer,
                options={"verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("token not valid yet") from None
        except (jwt.InvalidAudienceError, jwt.MissingRequiredClaimError) as exc:
            raise AuthError(f"token rejected: {exc}") from None
        except jwt.InvalidIssuerError:
            raise AuthError("token rejected: wrong issuer") from None
        except jwt.InvalidAlgorithmError:
            raise AuthError(f"token rejected: only {self.algorithm} is accepted") from None
        except jwt.InvalidSignatureError:
            raise AuthError("token rejected: bad signature") from None
        except jwt.InvalidTokenError:
            raise AuthError("malformed token") from None
        except (OverflowError, ValueError):
            # PyJWT converts time claims with int(): an Infinity raises OverflowError.
            raise AuthError("token rejected: malformed time claim") from None
        if not isinstance(claims, dict):
            raise AuthError("malformed token")
        return claims


def verifier_for(
    key: str, *, audience: str | None = None, issuer: str | None = None
) -> TokenVerifier:
    """A verifier for ``key``: a PEM public key (RS256, ES256/384/512), else an HS256
    secret."""
    if key.lstrip().startswith("-----BEGIN"):
        return TokenVerifier(public_key=key, audience=audience, issuer=issuer)
    return TokenVerifier(secret=key, audience=audience, issuer=issuer)


def expiry(claims: dict[str, Any]) -> float | None:
    """The token's ``exp`` as Unix time, or ``None`` without one.

    RFC 7519 makes ``exp`` a JSON number. PyJWT also accepts a numeric string (it
    checks ``int(exp)``), which a stream would then outlive, since its end is timed
    from this value: such a token is refused, as is an ``exp`` beyond a float's range.

    Raises:
        AuthError: 401 for an ``exp`` that is not a number, or out of range.
    """
    exp = claims.get("exp")
    if exp is None:
        return None
    if isinstance(exp, bool) or not isinstance(exp, (int, float)):
        raise AuthError("token rejected: exp must be a number")
    try:
        return float(exp)
    except OverflowError:
        raise AuthError("token rejected: exp out of range") from None


#: What the static publish key may do: publish to any topic.
KEY_GRANTS = Grants(subject="key", publish=("*",))


class Authorizer:
    """The publish and subscribe decisions of one server, from its configuration."""

    def __init__(self, config: Config) -> None:
        self._publish_key = config.publish_key
        self.subscribe_auth = config.subscribe_auth
        self.verifier: TokenVerifier | None = None
        if config.jwt_secret is not None or config.jwt_public_key is not None:
            self.verifier = TokenVerifier(
                secret=config.jwt_secret,
                public_key=config.jwt_public_key,
                audience=config.jwt_audience,
                issuer=config.jwt_issuer,
            )

    @property
    def can_publish(self) -> bool:
        """Whether any publish credential is configured (else publishing is off: 403)."""
        return self._publish_key is not None or self.verifier is not None

    def publisher(self, token: str | None) -> Grants:
        """The grants of a publisher's credential: the static key may publish anywhere,
        a token where its ``rawsse.publish`` selectors say (checked per topic by
        :meth:`Grants.check_publish` once the body is read).

        Raises:
            RequestError: 403 when publishing is off (no key or JWT key configured).
            AuthError: 401 without a credential, or with a wrong key or an invalid token.
        """
        if not self.can_publish:
            raise RequestError(
                "publishing over HTTP is disabled: no publish key is configured", 403
            )
        if token is None:
            raise AuthError(
                "missing credentials: send Authorization: Bearer <key or token>", missing=True
            )
        key = self._publish_key
        if key is not None and key_matches(token, key):
            return KEY_GRANTS
        if self.verifier is None or token.count(".") != 2:
            raise AuthError("missing or wrong publish key")
        grants = self.verifier.verify(token)
        if not grants.publish:
            # Refused here, before any body is read: a batch is admitted by its head.
            raise AuthError("this token may not publish", 403)
        return grants

    def subscriber(self, token: str | None, topics: Sequence[str]) -> Grants | None:
        """The grants of a subscriber to ``topics``; ``None`` when subscribe auth is off.

        Raises:
            AuthError: 401 without a valid token, 403 when it does not cover a topic.
        """
        if not self.subscribe_auth:
            return None
        assert self.verifier is not None  # Config refuses subscribe_auth without a key
        if token is None:
            raise AuthError(
                "missing token: send Authorization: Bearer, or the rawsse_authorization cookie",
                missing=True,
            )
        grants = self.verifier.verify(token)
        grants.check_subscribe(topics)
        return grants


def mint_token(
    secret: str,
    *,
    publish: Sequence[str] = (),
    subscribe: Sequence[str] = (),
    ttl: float | None = 3600.0,
    subject: str | None = None,
    audience: str | None = None,
    issuer: str | None = None,
) -> str:
    """An HS256 token carrying rawsse grants, for tests and for trying a hub out."""
    jwt = _import_jwt()
    if len(secret.encode("utf-8")) < MIN_SECRET_BYTES:
        raise ConfigError(f"jwt_secret must be at least {MIN_SECRET_BYTES} bytes long")
    now = int(time.time())
    claims: dict[str, Any] = {
        "iat": now,
        CLAIM: {"publish": list(publish), "subscribe": list(subscribe)},
    }
    if ttl is not None:
        claims["exp"] = now + int(ttl)
    for name, value in (("sub", subject), ("aud", audience), ("iss", issuer)):
        if value is not None:
            claims[name] = value
    return str(jwt.encode(claims, secret, algorithm="HS256"))
