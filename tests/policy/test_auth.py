"""Publish and subscribe authorization: topic selectors, JWT verification (HS256, RS256,
ES256) against every kind of bad token, and the HTTP answers over real sockets, down to
a stream ended at its token's expiry and resumed without a lost event."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from rawsse.config import Config
from rawsse.errors import ConfigError
from rawsse.events import CHUNKED_END
from rawsse.policy.auth import AuthError, TokenVerifier, mint_token, selector_matches
from tests.conftest import make_config, running_server, scaled, wait_for
from tests.support.client import exchange, get, raw_stream
from tests.support.sse_parser import dechunk, parse

SECRET = "a-test-secret-that-is-long-enough-for-hs256"
OTHER_SECRET = "another-secret-that-is-long-enough-for-hs256"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(claims: dict[str, Any], alg: str = "none") -> str:
    header = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(claims).encode())}."


def grants(publish: list[str] | None = None, subscribe: list[str] | None = None) -> dict[str, Any]:
    return {"rawsse": {"publish": publish or [], "subscribe": subscribe or []}}


def pem(public_key: Any) -> str:
    return str(
        public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
    )


@pytest.mark.parametrize(
    ("selector", "topic", "matches"),
    [
        ("*", "anything/at/all", True),
        ("orders/*", "orders/42", True),
        ("orders/*", "orders/eu/7", True),
        ("orders/*", "orders", False),
        ("orders/*", "ordersx/1", False),
        ("news", "news", True),
        ("news", "news2", False),
        ("news*", "newsletter", True),
    ],
)
def test_selectors(selector: str, topic: str, matches: bool) -> None:
    assert selector_matches(selector, topic) is matches


def test_a_valid_token_gives_its_grants() -> None:
    verifier = TokenVerifier(secret=SECRET)
    token = mint_token(SECRET, publish=["orders/*"], subscribe=["*"], subject="billing", ttl=60)
    result = verifier.verify(token)
    assert (result.subject, result.publish, result.subscribe) == ("billing", ("orders/*",), ("*",))
    assert result.expires_at is not None and 50 < result.expires_at - time.time() <= 60
    result.check_publish(["orders/1", "orders/2"])
    with pytest.raises(AuthError) as refused:
        result.check_publish(["orders/1", "users/1"])
    assert refused.value.status == 403 and "users/1" in refused.value.reason
    # No subject: a digest of the token stands in for it (rate limits count per subject).
    anonymous = verifier.verify(mint_token(SECRET, publish=["x"]))
    assert anonymous.subject.startswith("token:")


def _bad_tokens() -> list[tuple[str, str, str]]:
    # Made when the tests are collected, which may be minutes before this one runs:
    # "not yet valid" and the other times are an hour away, not a minute.
    now = int(time.time())
    good = grants(["*"], ["*"])
    return [
        ("forged", jwt.encode({**good, "exp": now + 3600}, OTHER_SECRET, "HS256"), "bad signature"),
        ("expired", jwt.encode({**good, "exp": now - 10}, SECRET, "HS256"), "token expired"),
        (
            "not yet valid",
            jwt.encode({**good, "nbf": now + 3600}, SECRET, "HS256"),
            "not valid yet",
        ),
        ("alg none", unsigned({**good, "exp": now + 3600}), "only HS256"),
        ("alg none, no dot", unsigned({**good})[:-1], "malformed"),
        (
            "HS512",
            jwt.encode({**good}, SECRET + SECRET, "HS512"),
            "only HS256",
        ),
        ("garbage", "not.a.token", "malformed"),
        ("truncated", jwt.encode(good, SECRET, "HS256")[:-5], "malformed"),
        ("signature cut short", jwt.encode(good, SECRET, "HS256")[:-3], "bad signature"),
        (
            "tampered payload",
            _tamper(jwt.encode(grants(["news"]), SECRET, "HS256")),
            "bad signature",
        ),
        (
            "claim of the wrong shape",
            jwt.encode({"rawsse": {"publish": "*"}}, SECRET, "HS256"),
            "list of topic selectors",
        ),
    ]


def _tamper(token: str) -> str:
    header, _payload, signature = token.split(".")
    return ".".join([header, b64(json.dumps(grants(["*"], ["*"])).encode()), signature])


@pytest.mark.parametrize(("kind", "token", "reason"), _bad_tokens(), ids=lambda v: str(v)[:20])
def test_bad_tokens_are_refused_with_a_reason(kind: str, token: str, reason: str) -> None:
    verifier = TokenVerifier(secret=SECRET)
    with pytest.raises(AuthError) as refused:
        verifier.verify(token)
    assert refused.value.status == 401
    assert reason in refused.value.reason, (kind, refused.value.reason)


def test_audience_and_issuer_are_checked_when_configured() -> None:
    verifier = TokenVerifier(secret=SECRET, audience="hub", issuer="https://auth.example")
    good = mint_token(SECRET, publish=["*"], audience="hub", issuer="https://auth.example")
    assert verifier.verify(good).publish == ("*",)
    for token in (
        mint_token(SECRET, audience="other", issuer="https://auth.example"),
        mint_token(SECRET, issuer="https://auth.example"),  # no aud at all
        mint_token(SECRET, audience="hub", issuer="https://evil.example"),
        mint_token(SECRET, audience="hub"),  # no iss
    ):
        with pytest.raises(AuthError):
            verifier.verify(token)
    # Without an audience configured, a token naming one is still accepted.
    assert TokenVerifier(secret=SECRET).verify(mint_token(SECRET, audience="x")).subject


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_public_keys_accept_their_algorithm_only(kind: str) -> None:
    if kind == "rsa":
        private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        algorithm = "RS256"
    else:
        private = ec.generate_private_key(ec.SECP256R1())
        algorithm = "ES256"
    public_pem = pem(private.public_key())
    verifier = TokenVerifier(public_key=public_pem)
    assert verifier.algorithm == algorithm
    token = jwt.encode({**grants(["a"]), "sub": "s"}, private, algorithm)
    assert verifier.verify(token).publish == ("a",)
    # Algorithm confusion: an HS256 token whose HMAC key is the public key itself.
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps(grants(["*"], ["*"])).encode())
    signing_input = f"{header}.{payload}".encode()
    mac = hmac.new(public_pem.encode(), signing_input, hashlib.sha256).digest()
    with pytest.raises(AuthError) as refused:
        verifier.verify(f"{header}.{payload}.{b64(mac)}")
    assert f"only {algorithm}" in refused.value.reason
    with pytest.raises(AuthError):
        verifier.verify(unsigned(grants(["*"])))


def test_weak_keys_are_configuration_errors() -> None:
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        TokenVerifier(secret="short")
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ConfigError, match="under 2048"):
        TokenVerifier(public_key=pem(small.public_key()))
    with pytest.raises(ConfigError, match="PEM"):
        TokenVerifier(public_key="not a key")
    with pytest.raises(ConfigError, match="subscribe_auth"):
        Config(subscribe_auth=True)
    with pytest.raises(ConfigError, match="not both"):
        Config(jwt_secret=SECRET, jwt_public_key="x")


# -- over sockets ----------------------------------------------------------------------------


def post(path: str, body: bytes, *headers: str) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: t", f"Content-Length: {len(body)}", *headers, "", ""]
    return "\r\n".join(head).encode() + body


def bearer(token: str) -> str:
    return f"Authorization: Bearer {token}"


async def test_publishing_with_a_token_is_limited_to_its_topics() -> None:
    async with running_server(make_config(jwt_secret=SECRET)) as server:
        token = mint_token(SECRET, publish=["orders/*"], subscribe=["*"], subject="shop")
        ok = await exchange(
            server.port, post("/publish?topic=orders/1", b"x", bearer(token)), method=b"POST"
        )
        assert ok.status == 200
        denied = await exchange(
            server.port, post("/publish?topic=users/1", b"x", bearer(token)), method=b"POST"
        )
        assert denied.status == 403 and b"users/1" in denied.body
        assert denied.headers["www-authenticate"] == 'Bearer error="insufficient_scope"'
        reader = mint_token(SECRET, subscribe=["*"])
        denied = await exchange(
            server.port, post("/publish?topic=orders/1", b"x", bearer(reader)), method=b"POST"
        )
        assert denied.status == 403
        expired = jwt.encode({**grants(["*"]), "exp": int(time.time()) - 1}, SECRET, "HS256")
        refused = await exchange(
            server.port, post("/publish?topic=orders/1", b"x", bearer(expired)), method=b"POST"
        )
        assert (refused.status, refused.body) == (401, b"token expired\n")
        assert refused.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        # The static key still publishes anywhere.
        ok = await exchange(
            server.port, post("/publish?topic=users/1", b"x", bearer("test-key")), method=b"POST"
        )
        assert ok.status == 200
        assert server.hub.metrics.events_published == 2


async def test_a_jwt_alone_enables_publishing() -> None:
    async with running_server(make_config(publish_key=None, jwt_secret=SECRET)) as server:
        token = mint_token(SECRET, publish=["*"])
        ok = await exchange(
            server.port, post("/publish?topic=a", b"x", bearer(token)), method=b"POST"
        )
        assert ok.status == 200
        wrong = await exchange(
            server.port, post("/publish?topic=a", b"x", bearer("k")), method=b"POST"
        )
        assert wrong.status == 401


def subscribe_config(**changes: Any) -> Config:
    return make_config(jwt_secret=SECRET, subscribe_auth=True, **changes)


async def test_subscribing_needs_a_token_that_covers_every_topic() -> None:
    async with running_server(subscribe_config()) as server:
        token = mint_token(SECRET, subscribe=["news", "orders/*"])
        path = "/events?topic=news&topic=orders/9"
        missing = await exchange(server.port, get(path))
        assert missing.status == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert b"rawsse_authorization cookie" in missing.body
        denied = await exchange(server.port, get("/events?topic=news&topic=secret", bearer(token)))
        assert denied.status == 403 and b"'secret'" in denied.body
        forged = mint_token(OTHER_SECRET, subscribe=["*"])
        assert (await exchange(server.port, get(path, bearer(forged)))).status == 401
        assert server.hub.subscriber_count == 0
        assert server.hub.metrics.rejected["auth"] == 3
        # From the header, and from the cookie an EventSource sends.
        for header in (bearer(token), f"Cookie: theme=dark; rawsse_authorization={token}"):
            conn, head = await raw_stream(server.port, path, header)
            assert head.startswith(b"HTTP/1.1 200 OK")
            await wait_for(lambda: server.hub.subscriber_count == 1)
            await conn.close()
            await wait_for(lambda: server.hub.subscriber_count == 0)


async def test_query_tokens_only_when_allowed_and_never_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="rawsse.access")
    token = mint_token(SECRET, subscribe=["*"])
    async with running_server(subscribe_config()) as server:
        answer = await exchange(server.port, get(f"/events?topic=a&authorization={token}"))
        assert answer.status == 401
    async with running_server(subscribe_config(allow_query_token=True)) as server:
        for name in ("authorization", "authoriz%61tion"):
            conn, head = await raw_stream(server.port, f"/events?topic=a&{name}={token}")
            assert head.startswith(b"HTTP/1.1 200 OK")
            await wait_for(lambda: server.hub.subscriber_count == 1)
            await conn.close()
            await wait_for(lambda: server.hub.subscriber_count == 0)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "authorization=REDACTED" in logged and "authoriz%61tion=REDACTED" in logged
    assert token not in logged and token.split(".")[2] not in logged


async def test_a_stream_ends_at_its_tokens_expiry_after_a_notice() -> None:
    """The stream carries ``rawsse-auth-expiring`` ahead of expiry, ends at expiry, and a
    client reconnecting with a fresh token and its Last-Event-ID misses nothing."""
    config = subscribe_config(token_expiry_notice=1.0)
    async with running_server(config) as server:
        hub = server.hub
        short = jwt.encode({**grants(subscribe=["t"]), "exp": int(time.time()) + 3}, SECRET)
        conn, head = await raw_stream(server.port, "/events?topic=t", bearer(short))
        body = head.partition(b"\r\n\r\n")[2]
        await wait_for(lambda: hub.subscriber_count == 1)
        first = hub.publish("t", "before expiry")
        body += await conn.read_until_closed(timeout=6)
        closed_at = time.time()
        payload, terminated = dechunk(body)
        assert terminated and body.endswith(CHUNKED_END)
        events = parse(payload.decode()).events
        assert [e.type for e in events] == ["message", "rawsse-auth-expiring"]
        assert events[0].data == "before expiry" and events[1].last_event_id == first
        notice = json.loads(events[1].data)
        assert notice["reason"] == "token_expiring" and 0 < notice["expires_in_ms"] <= 1000
        # It ended at the token's expiry (whole seconds), not before.
        assert closed_at >= jwt.decode(short, SECRET, ["HS256"], options={"verify_exp": False})[
            "exp"
        ] - scaled(0.05)
        await conn.close()
        await wait_for(lambda: hub.subscriber_count == 0)
        assert hub.metrics.disconnects["auth_expired"] == 1
        missed = hub.publish("t", "while away")
        fresh = mint_token(SECRET, subscribe=["t"])
        conn, head = await raw_stream(
            server.port, "/events?topic=t", bearer(fresh), f"Last-Event-ID: {first}"
        )
        body = head.partition(b"\r\n\r\n")[2]
        while b"while away" not in body:
            body += await conn.read_some()
        replayed = parse(dechunk(body)[0].decode()).events
        assert [(e.last_event_id, e.data) for e in replayed] == [(missed, "while away")]
        await conn.close()
        await wait_for(lambda: hub.subscriber_count == 0)


async def test_tokens_without_expiry_keep_streaming() -> None:
    async with running_server(subscribe_config(heartbeat=0.1)) as server:
        token = mint_token(SECRET, subscribe=["t"], ttl=None)
        conn, _ = await raw_stream(server.port, "/events?topic=t", bearer(token))
        await wait_for(lambda: server.hub.subscriber_count == 1)
        received = b""
        while received.count(b":\n\n") < 3:  # heartbeats keep coming; nothing ends it
            received += await conn.read_some()
        assert server.hub.subscriber_count == 1
        await conn.close()


def test_token_command_mints_what_the_hub_accepts() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "rawsse", "token", "--publish", "orders/*", "--subscribe", "*"],
        capture_output=True,
        text=True,
        env={"RAWSSE_JWT_SECRET": SECRET, "PATH": ""},
        check=True,
    )
    claims = TokenVerifier(secret=SECRET).verify(result.stdout.strip())
    assert claims.publish == ("orders/*",) and claims.subscribe == ("*",)
    refused = subprocess.run(
        [sys.executable, "-m", "rawsse", "token", "--jwt-secret", "short"],
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2 and "at least 32 bytes" in refused.stderr
