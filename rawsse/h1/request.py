"""A request as the server sees it (:class:`Request`), and the checks of its head that
h11 leaves to a server facing the internet: the version, the head's size however it
arrived, the framing headers that make request smuggling, and whether the connection
stays open. Sans I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import h11

from rawsse.errors import RequestError
from rawsse.h1.parse import header_value

__all__ = ["Head", "Request", "check_head", "fatal", "request_of"]

Headers = Sequence[tuple[bytes, bytes]]


@dataclass(slots=True)
class Request:
    """A complete request: its head as h11 gave it, and its body. (Not frozen: one is
    made per request, and a frozen dataclass pays a call per field to be built.)"""

    method: bytes
    target: bytes
    headers: Headers
    http_version: bytes
    body: bytes = b""

    def header(self, name: bytes) -> bytes | None:
        """The first header called ``name`` (lower-case)."""
        return header_value(self.headers, name)


def request_of(head: h11.Request) -> Request:
    """The request of an h11 head, its headers as one plain tuple with lower-case names:
    h11's are a Sequence whose every iteration costs a Python call per header, and a
    request is looked at often."""
    headers = tuple([(name.lower(), value) for name, value in head.headers.raw_items()])
    return Request(head.method, head.target, headers, head.http_version)


#: What a checked head says (a plain tuple: it is made once per request):
#: ``keep_alive`` (HTTP/1.1 without ``Connection: close``: the connection stays open),
#: ``chunked`` (h11 allows no other transfer coding), ``length`` (the declared
#: ``Content-Length``, 0 without one) and the header ``names`` (lower-case).
Head = tuple[bool, bool, int, set[bytes]]


def check_head(request: Request, max_header_size: int) -> Head:
    """The facts of a head h11 accepted (:data:`Head`), once it passes what this
    server adds.

    Raises:
        RequestError: HTTP other than 1.0 and 1.1 (505), a head over
            ``max_header_size`` (431), both Content-Length and Transfer-Encoding, or
            Transfer-Encoding in HTTP/1.0 (400); each closes the connection.
    """
    headers, version = request.headers, request.http_version
    if version not in (b"1.0", b"1.1"):
        raise fatal(505, "only HTTP/1.0 and HTTP/1.1 are supported")
    # h11 bounds only a head that is still incomplete; one that arrived whole in a
    # single read is measured here, so the limit holds however the bytes arrive.
    head_size = len(request.target) + sum([len(k) + len(v) + 4 for k, v in headers])
    if head_size > max_header_size:
        raise fatal(431, "request header fields too large")
    names = {name for name, _value in headers}
    if b"content-length" in names and b"transfer-encoding" in names:
        # The shape of request smuggling: refused, and the connection closed (RFC
        # 9112 6.1). h11 already refuses differing Content-Lengths, and repeated or
        # unknown transfer codings (501).
        raise fatal(400, "both Content-Length and Transfer-Encoding")
    chunked = b"transfer-encoding" in names
    if version == b"1.0" and chunked:
        # HTTP/1.0 has no chunked framing: RFC 9112 6.1 calls this faulty framing.
        raise fatal(400, "Transfer-Encoding in an HTTP/1.0 request")
    # As h11 decides it: every Connection header counts.
    keep_alive = version == b"1.1" and (
        b"connection" not in names
        or not any(b"close" in _tokens(value) for name, value in headers if name == b"connection")
    )
    length = header_value(headers, b"content-length")
    # h11 has checked it is digits, and made repeated equal ones one.
    size = int(length) if length is not None and length.isdigit() else 0
    return keep_alive, chunked, size, names


def _tokens(value: bytes) -> list[bytes]:
    """The lower-case items of a comma-separated header value."""
    return [item.strip() for item in value.lower().split(b",")]


def fatal(status: int, reason: str) -> RequestError:
    """The error for a request answered with ``status`` (4xx or 5xx, else 400), after
    which the connection closes."""
    status = status if 400 <= status < 600 else 400
    return RequestError(reason, status, close=True)
