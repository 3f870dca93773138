"""Counters kept by the hub and the server, and their Prometheus text exposition.

Counting on the hot path is an integer add on a slotted object; anything per subscriber
is computed when ``/metrics`` is scraped.
"""

from __future__ import annotations

__all__ = ["DISCONNECT_REASONS", "Metrics"]

#: Why a subscriber's stream ended: the label values of ``rawsse_disconnects_total``.
DISCONNECT_REASONS = ("client_closed", "slow_buffer", "slow_timeout", "shutdown", "error")


class Metrics:
    """Monotonic counters; gauges are read from the hub at exposition time."""

    __slots__ = ("events_published", "deliveries", "bytes_sent", "disconnects", "requests")

    def __init__(self) -> None:
        self.events_published = 0
        self.deliveries = 0
        self.bytes_sent = 0
        self.disconnects: dict[str, int] = dict.fromkeys(DISCONNECT_REASONS, 0)
        self.requests: dict[tuple[str, int], int] = {}

    def count_request(self, endpoint: str, status: int) -> None:
        """Count one answered request by endpoint (a route, or ``other``) and status."""
        key = (endpoint, status)
        self.requests[key] = self.requests.get(key, 0) + 1

    def exposition(self, *, clients: int, paused: int, topics: int) -> bytes:
        """The Prometheus text format (version 0.0.4) of every counter and gauge."""
        lines = [
            "# HELP rawsse_connected_clients Subscribers with an open stream.",
            "# TYPE rawsse_connected_clients gauge",
            f"rawsse_connected_clients {clients}",
            "# HELP rawsse_paused_clients Subscribers whose write buffer is over the high-water mark.",
            "# TYPE rawsse_paused_clients gauge",
            f"rawsse_paused_clients {paused}",
            "# HELP rawsse_topics Topics with at least one subscriber.",
            "# TYPE rawsse_topics gauge",
            f"rawsse_topics {topics}",
            "# HELP rawsse_events_published_total Events accepted for publishing.",
            "# TYPE rawsse_events_published_total counter",
            f"rawsse_events_published_total {self.events_published}",
            "# HELP rawsse_deliveries_total Events written to a subscriber's transport.",
            "# TYPE rawsse_deliveries_total counter",
            f"rawsse_deliveries_total {self.deliveries}",
            "# HELP rawsse_bytes_sent_total Event bytes written to subscribers' transports.",
            "# TYPE rawsse_bytes_sent_total counter",
            f"rawsse_bytes_sent_total {self.bytes_sent}",
            "# HELP rawsse_disconnects_total Streams ended, by reason.",
            "# TYPE rawsse_disconnects_total counter",
        ]
        lines += [
            f'rawsse_disconnects_total{{reason="{reason}"}} {count}'
            for reason, count in self.disconnects.items()
        ]
        lines += [
            "# HELP rawsse_requests_total Answered HTTP requests, by endpoint and status.",
            "# TYPE rawsse_requests_total counter",
        ]
        lines += [
            f'rawsse_requests_total{{endpoint="{endpoint}",status="{status}"}} {count}'
            for (endpoint, status), count in sorted(self.requests.items())
        ]
        return ("\n".join(lines) + "\n").encode("ascii")
