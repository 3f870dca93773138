"""Whether a request's ``Accept-Encoding`` accepts gzip (RFC 9110, 12.5.3), for the
values browsers, tools and careless clients send."""

from __future__ import annotations

import pytest

from rawsse.h1.parse import accepts_gzip


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        (b"gzip, deflate, br, zstd", True),  # Chromium
        (b"gzip, deflate", True),  # httpx, the probe
        (b"deflate, gzip", True),  # curl --compressed
        (b"GZip", True),
        (b"x-gzip", True),
        (b"gzip;q=0.5, br", True),
        (b" gzip ; q=1 ", True),
        (b"*", True),
        (b"br;q=1.0, *;q=0.1", True),
        (None, False),
        (b"", False),
        (b"identity", False),
        (b"br, zstd", False),
        (b"gzip;q=0", False),
        (b"gzip;q=0.000", False),
        (b"*;q=0", False),
        (b"gzip;q=0, *", False),  # gzip named: the star does not reach it
        (b"gzip;q=nonsense", False),
        (b"gzipped", False),
        (b",,,", False),
    ],
)
def test_accepts_gzip(value: bytes | None, accepted: bool) -> None:
    assert accepts_gzip(value) is accepted
