"""CORS: an allowlist of origins, preflights answered, credentials only for allowed
origins, never ``*`` with credentials and never an arbitrary origin reflected."""

from __future__ import annotations

from tests.conftest import make_config, running_server, wait_for
from tests.support.client import exchange, get, raw_stream

APP = "https://app.example"
EVIL = "https://evil.example"


def preflight(path: str, origin: str, method: str = "GET") -> bytes:
    return (
        f"OPTIONS {path} HTTP/1.1\r\nHost: t\r\nOrigin: {origin}\r\n"
        f"Access-Control-Request-Method: {method}\r\n"
        "Access-Control-Request-Headers: last-event-id, authorization\r\n\r\n"
    ).encode()


def cors_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.startswith("access-control-") or k == "vary"}


async def test_without_origins_no_cors_header_is_ever_sent() -> None:
    async with running_server() as server:
        answer = await exchange(server.port, get("/healthz", f"Origin: {EVIL}"))
        assert answer.status == 200 and cors_headers(answer.headers) == {}
        refused = await exchange(server.port, preflight("/events?topic=t", EVIL), method=b"OPTIONS")
        assert (refused.status, refused.body) == (403, b"origin not allowed\n")
        assert cors_headers(refused.headers) == {}
        plain = await exchange(server.port, b"OPTIONS /publish HTTP/1.1\r\nHost: t\r\n\r\n")
        assert plain.status == 204 and plain.headers["allow"] == "POST, OPTIONS"
        # RFC 9110 8.6: a 204 has no Content-Length (and no body to describe).
        assert "content-length" not in plain.headers and plain.body == b""


async def test_allowed_origins_get_credentials_others_get_nothing() -> None:
    async with running_server(make_config(cors_origins=(APP,))) as server:
        ok = await exchange(server.port, preflight("/publish", APP, "POST"), method=b"OPTIONS")
        assert ok.status == 204 and "content-length" not in ok.headers
        assert cors_headers(ok.headers) == {
            "access-control-allow-origin": APP,
            "access-control-allow-credentials": "true",
            "vary": "Origin",
            "access-control-allow-methods": "POST",
            "access-control-allow-headers": "authorization, cache-control, content-type, last-event-id",
            "access-control-max-age": "600",
        }
        evil = await exchange(server.port, preflight("/publish", EVIL, "POST"), method=b"OPTIONS")
        assert evil.status == 403 and "access-control-allow-origin" not in evil.headers
        # The stream's head carries them for the allowed origin...
        conn, head = await raw_stream(server.port, "/events?topic=t", f"Origin: {APP}")
        lowered = head.lower()
        assert f"access-control-allow-origin: {APP}".encode() in lowered
        assert b"access-control-allow-credentials: true" in lowered
        await wait_for(lambda: server.hub.subscriber_count == 1)
        await conn.close()
        # ...and not for another, which only learns that the answer varies by origin.
        conn, head = await raw_stream(server.port, "/events?topic=t", f"Origin: {EVIL}")
        assert b"access-control-allow" not in head.lower() and b"vary: origin" in head.lower()
        await conn.close()
        await wait_for(lambda: server.hub.subscriber_count == 0)
        # Errors carry them too, so the page can read why it was refused.
        answer = await exchange(server.port, get("/events", f"Origin: {APP}"))
        assert answer.status == 400 and answer.headers["access-control-allow-origin"] == APP


async def test_star_is_public_and_never_with_credentials() -> None:
    async with running_server(make_config(cors_origins=("*", APP))) as server:
        public = await exchange(server.port, get("/healthz", f"Origin: {EVIL}"))
        assert public.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in public.headers
        own = await exchange(server.port, get("/healthz", f"Origin: {APP}"))
        assert own.headers["access-control-allow-origin"] == APP
        assert own.headers["access-control-allow-credentials"] == "true"
        none = await exchange(server.port, get("/healthz"))
        assert none.headers["access-control-allow-origin"] == "*"
