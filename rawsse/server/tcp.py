"""Socket options of every accepted connection: low latency, and dead peers found.

A peer that vanishes without a FIN (cable pulled, laptop lid closed, NAT entry expired)
leaves a connection that looks open forever: nothing arrives, and what we send sits
unacknowledged in the kernel, below the write buffer that rawsse's own slow-client
limits watch. Two kernel timers end such connections:

* ``TCP_USER_TIMEOUT`` (Linux): once sent data has stayed unacknowledged this long, the
  kernel drops the connection and reports ``ETIMEDOUT``. Heartbeats guarantee a stream
  always has something in flight at least every ``heartbeat`` seconds, so a dead stream
  ends within ``heartbeat + dead_peer_timeout``.
* TCP keepalive probes, for a connection with nothing to send: first probe after
  ``dead_peer_timeout / 2``, then every few seconds; unanswered probes drop it (bounded
  by the same user timeout where it exists).

Options the platform lacks are skipped: the bound then falls back to the kernel's
retransmission limit (about 15 minutes on Linux by default).
"""

from __future__ import annotations

import math
import socket
import sys

__all__ = ["INHERITS_SOCKET_OPTIONS", "KEEPALIVE_PROBES", "tune_socket"]

#: Whether accepted sockets inherit these options from the listening one (Linux does,
#: all of them): the server then sets them once, on the listener, rather than asking
#: each connection's transport for a socket object, which it keeps (72 bytes, and a
#: weak reference, per connection).
INHERITS_SOCKET_OPTIONS = sys.platform == "linux"

#: Unanswered keepalive probes before the kernel gives up.
KEEPALIVE_PROBES = 3


def tune_socket(sock: socket.socket, dead_peer_timeout: float) -> None:
    """Set ``TCP_NODELAY`` and, when ``dead_peer_timeout`` is positive, the dead-peer
    timers above. Only for TCP sockets; errors from exotic platforms are ignored."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    # Events are small and latency-bound: never wait for Nagle's timer.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if dead_peer_timeout <= 0:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        idle = max(1, math.ceil(dead_peer_timeout / 2))
        interval = max(1, math.ceil(dead_peer_timeout / (2 * KEEPALIVE_PROBES)))
        if hasattr(socket, "TCP_KEEPIDLE"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
        if hasattr(socket, "TCP_KEEPINTVL"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval)
        if hasattr(socket, "TCP_KEEPCNT"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_PROBES)
        if hasattr(socket, "TCP_USER_TIMEOUT"):
            sock.setsockopt(
                socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, math.ceil(dead_peer_timeout * 1000)
            )
    except OSError:  # pragma: no cover - platforms without these options
        pass
