"""Counters kept by the hub and the server, and their Prometheus text exposition.

Counting on the hot path is an integer add on a slotted object; anything per subscriber
(write-buffer sizes, clients per topic) is computed when ``/metrics`` is scraped.
"""

from __future__ import annotations

import asyncio
import bisect
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rawsse.version import __version__

__all__ = [
    "BUFFER_BUCKETS",
    "DISCONNECT_REASONS",
    "LATENCY_BUCKETS",
    "REJECT_REASONS",
    "TOPIC_LABEL_LIMIT",
    "HubGauges",
    "ProcessGauges",
    "process_gauges",
    "Histogram",
    "Metrics",
]

#: Why a subscriber's stream ended: the label values of ``rawsse_disconnects_total``.
DISCONNECT_REASONS = (
    "client_closed",
    "slow_buffer",
    "slow_timeout",
    "shutdown",
    "auth_expired",
    "dead_peer",
    "limit",
    "error",
    "history_gap",
    "backend_unavailable",
)

#: Why a stream request was refused: the label values of ``rawsse_rejected_total``.
REJECT_REASONS = ("bad_request", "draining", "limit", "auth", "backend")

#: Topics beyond this many (the largest by clients are kept) are summed under the label
#: ``topic="_other"``, so a hub with a million topics does not make a million series.
TOPIC_LABEL_LIMIT = 50

#: Seconds from ``publish()`` to the last write of its flush: a loop iteration is well
#: under a millisecond when idle, and a fan-out to 10 000 clients tens of milliseconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

#: Unsent bytes per subscriber, from idle (0) through the 64 KiB high-water mark to the
#: 2 MiB default ``max_buffer``.
BUFFER_BUCKETS = (0, 1024, 4096, 16384, 65536, 262144, 1048576, 2097152, 4194304)


class Histogram:
    """A cumulative histogram with fixed upper bounds, as Prometheus exposes them."""

    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float, times: int = 1) -> None:
        """Count ``value``, ``times`` over."""
        self.counts[bisect.bisect_left(self.bounds, value)] += times
        self.sum += value * times
        self.count += times

    @classmethod
    def of(cls, bounds: Sequence[float], values: Iterable[float]) -> Histogram:
        """A histogram of ``values`` (sampled now, e.g. at scrape time)."""
        histogram = cls(bounds)
        for value in values:
            histogram.observe(value)
        return histogram

    def lines(self, name: str) -> list[str]:
        """Exposition lines: cumulative ``_bucket``, then ``_sum`` and ``_count``."""
        out = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            le = "+Inf" if bound == float("inf") else _number(bound)
            out.append(f'{name}_bucket{{le="{le}"}} {running}')
        out.append(f"{name}_sum {_number(self.sum)}")
        out.append(f"{name}_count {self.count}")
        return out


def resident_bytes() -> int:
    """This process's resident memory: /proc on Linux, else the peak from getrusage."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _number(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@dataclass(frozen=True)
class HubGauges:
    """What is read from the hub at scrape time (:meth:`rawsse.hub.hub.Hub.gauges`)."""

    clients: int
    paused: int
    topic_clients: Sequence[tuple[str, int]]
    buffered: Iterable[int]
    history_events: int
    backend_up: bool


@dataclass(frozen=True, slots=True)
class ProcessGauges:
    """What is read from the process and its server at scrape time: not the hub's to
    know (:func:`process_gauges`)."""

    draining: bool
    version: str
    loop: str
    resident_bytes: int


def process_gauges(*, draining: bool) -> ProcessGauges:
    """The process's gauges now: whether its server is ``draining``, the version, the
    running event loop's kind and the resident memory."""
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    return ProcessGauges(draining, __version__, loop, resident_bytes())


class Metrics:
    """Monotonic counters and histograms; gauges are read at exposition time."""

    __slots__ = (
        "events_published",
        "deliveries",
        "bytes_sent",
        "disconnects",
        "rejected",
        "requests",
        "publish_latency",
        "started_at",
    )

    def __init__(self) -> None:
        self.events_published = 0
        self.deliveries = 0
        self.bytes_sent = 0
        self.disconnects: dict[str, int] = dict.fromkeys(DISCONNECT_REASONS, 0)
        self.rejected: dict[str, int] = dict.fromkeys(REJECT_REASONS, 0)
        self.requests: dict[tuple[str, int], int] = {}
        self.publish_latency = Histogram(LATENCY_BUCKETS)
        self.started_at = time.time()

    def count_request(self, endpoint: str, status: int) -> None:
        """Count one answered request by endpoint (a route, or ``other``) and status."""
        key = (endpoint, status)
        self.requests[key] = self.requests.get(key, 0) + 1

    def exposition(self, hub: HubGauges, process: ProcessGauges) -> bytes:
        """The Prometheus text format (version 0.0.4) of every metric."""
        out: list[str] = []
        for name, kind, help, samples in (
            *self._process_families(process),
            *_client_families(hub),
            *self._traffic_families(),
            *_state_families(hub, process),
        ):
            out.append(f"# HELP {name} {help}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(samples)
        return ("\n".join(out) + "\n").encode("utf-8")

    def _process_families(self, gauges: ProcessGauges) -> list[_Family]:
        info = (
            f'rawsse_info{{version="{_label(gauges.version)}",loop="{_label(gauges.loop)}",'
            f'pid="{os.getpid()}"}} 1'
        )
        started = _number(round(self.started_at, 3))
        return [
            ("rawsse_info", "gauge", "Version, event loop and PID of this process.", [info]),
            (
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
                [f"process_resident_memory_bytes {gauges.resident_bytes}"],
            ),
            (
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since the Unix epoch.",
                [f"process_start_time_seconds {started}"],
            ),
        ]

    def _traffic_families(self) -> list[_Family]:
        requests = [
            f'rawsse_requests_total{{endpoint="{_label(e)}",status="{s}"}} {n}'
            for (e, s), n in sorted(self.requests.items())
        ]
        return [
            _counter(
                "rawsse_events_published_total",
                "Events accepted for publishing.",
                self.events_published,
            ),
            _counter(
                "rawsse_deliveries_total",
                "Events written to a subscriber's transport.",
                self.deliveries,
            ),
            _counter(
                "rawsse_bytes_sent_total",
                "Event bytes written to subscribers' transports (compressed, as sent, for compressed streams).",
                self.bytes_sent,
            ),
            (
                "rawsse_disconnects_total",
                "counter",
                "Streams ended, by reason.",
                [
                    f'rawsse_disconnects_total{{reason="{r}"}} {n}'
                    for r, n in self.disconnects.items()
                ],
            ),
            (
                "rawsse_rejected_total",
                "counter",
                "Requests refused, by reason.",
                [f'rawsse_rejected_total{{reason="{r}"}} {n}' for r, n in self.rejected.items()],
            ),
            (
                "rawsse_requests_total",
                "counter",
                "Answered HTTP requests, by endpoint and status.",
                requests,
            ),
            (
                "rawsse_publish_latency_seconds",
                "histogram",
                "From publish() to the last write of its flush.",
                self.publish_latency.lines("rawsse_publish_latency_seconds"),
            ),
        ]


#: One metric family: name, type, help, sample lines.
_Family = tuple[str, str, str, list[str]]


def _counter(name: str, help: str, value: int) -> _Family:
    return (name, "counter", help, [f"{name} {value}"])


def _gauge(name: str, help: str, value: int) -> _Family:
    return (name, "gauge", help, [f"{name} {value}"])


def _client_families(gauges: HubGauges) -> list[_Family]:
    topics = [
        f'rawsse_topic_clients{{topic="{_label(topic)}"}} {count}'
        for topic, count in gauges.topic_clients
    ]
    return [
        _gauge("rawsse_connected_clients", "Subscribers with an open stream.", gauges.clients),
        (
            "rawsse_topic_clients",
            "gauge",
            f'Subscribers per topic, for the {TOPIC_LABEL_LIMIT} largest topics; the rest under topic="_other".',
            topics,
        ),
        _gauge(
            "rawsse_paused_clients",
            "Subscribers whose write buffer is over the high-water mark.",
            gauges.paused,
        ),
        (
            "rawsse_write_buffer_bytes",
            "histogram",
            "Unsent bytes per subscriber, sampled at scrape.",
            Histogram.of(BUFFER_BUCKETS, gauges.buffered).lines("rawsse_write_buffer_bytes"),
        ),
    ]


def _state_families(gauges: HubGauges, process: ProcessGauges) -> list[_Family]:
    return [
        _gauge(
            "rawsse_history_events",
            "Events kept in the history for replay (all topics).",
            gauges.history_events,
        ),
        _gauge("rawsse_backend_up", "1 while the backend is connected.", int(gauges.backend_up)),
        _gauge("rawsse_draining", "1 while shutting down.", int(process.draining)),
    ]
