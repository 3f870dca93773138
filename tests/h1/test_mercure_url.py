"""The hub's URL, against which relative URL patterns and topics are resolved: the
configured one, else the request's Host, never anything a Host header could smuggle
into a URL."""

from __future__ import annotations

import pytest

from rawsse.h1.mercure import HUB_PATH, hub_url


def test_the_configured_url_wins() -> None:
    assert hub_url("https://example.com/hub", b"other:8000") == "https://example.com/hub"


@pytest.mark.parametrize(
    ("host", "url"),
    [
        (b"example.com", "http://example.com" + HUB_PATH),
        (b"127.0.0.1:8000", "http://127.0.0.1:8000" + HUB_PATH),
        (b"[::1]:8000", "http://[::1]:8000" + HUB_PATH),
        (None, "http://localhost" + HUB_PATH),
        (b"", "http://localhost" + HUB_PATH),
        (b"evil.example/path?", "http://localhost" + HUB_PATH),
        (b"user@evil.example", "http://localhost" + HUB_PATH),
        (b"a b", "http://localhost" + HUB_PATH),
    ],
)
def test_without_one_the_requests_host_names_the_hub(host: bytes | None, url: str) -> None:
    assert hub_url(None, host) == url
