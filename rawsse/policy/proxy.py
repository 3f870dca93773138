"""The real client address behind a reverse proxy, believed only from trusted proxies.

``X-Forwarded-For`` and ``X-Real-IP`` are whatever the sender wrote, so they are read
only when the connection comes from a configured trusted proxy. ``X-Forwarded-For`` is
then walked from the right (nearest hop first), skipping trusted proxies: the first
address that is not one is the client. An entry a client forged to the left of that is
never reached, so it cannot pick the address its limits are counted under.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

__all__ = ["ProxyResolver"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(text: str) -> _Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[v6]:port"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "v4:port"
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class ProxyResolver:
    """Decides which address a request comes from, given the trusted proxies."""

    def __init__(self, trusted: Sequence[str]) -> None:
        self._networks: tuple[_Network, ...] = tuple(
            ipaddress.ip_network(value, strict=False) for value in trusted
        )

    @property
    def enabled(self) -> bool:
        """Whether any proxy is trusted (else headers are never read)."""
        return bool(self._networks)

    def is_trusted(self, address: str) -> bool:
        """Whether ``address`` (as the socket reports it) is a trusted proxy."""
        if not self._networks:
            return False
        ip = _address(address)
        return ip is not None and self._trusted(ip)

    def _trusted(self, ip: _Address) -> bool:
        return any(ip in network for network in self._networks)

    def client(self, peer: str, headers: Sequence[tuple[bytes, bytes]]) -> str:
        """The client address of a request that came from ``peer``.

        ``peer`` itself unless it is trusted; then the nearest untrusted hop of
        ``X-Forwarded-For`` (all such headers, in order), else ``X-Real-IP``. An entry that
        is not an address ends the walk at the last trusted hop, so garbage from a client
        is never used as a key it could vary at will.
        """
        if not self.is_trusted(peer):
            return peer
        return self.forwarded_client(peer, headers)

    def forwarded_client(self, peer: str, headers: Sequence[tuple[bytes, bytes]]) -> str:
        """:meth:`client` for a ``peer`` already known to be trusted (the connection's
        peer is checked once, not on each of its requests)."""
        hops: list[str] = []
        real_ip: bytes | None = None
        for name, value in headers:
            if name == b"x-forwarded-for":
                hops.extend(value.decode("latin-1").split(","))
            elif name == b"x-real-ip" and real_ip is None:
                real_ip = value
        nearest = peer
        if hops:
            for hop in reversed(hops):
                ip = _address(hop)
                if ip is None:
                    return nearest
                if not self._trusted(ip):
                    return str(ip)
                nearest = str(ip)
            return nearest
        if real_ip is not None:
            ip = _address(real_ip.decode("latin-1"))
            if ip is not None:
                return str(ip)
        return peer
