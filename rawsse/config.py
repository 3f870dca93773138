"""The one frozen configuration object, with every default and the reason for it.

A :class:`Config` is built once, validated when built (the message names the field and
the offending value), and passed whole to the server, the connections and the hub.
The CLI derives a ``--flag`` and a ``RAWSSE_*`` environment variable from each field.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass
from typing import Any

from rawsse.errors import ConfigError
from rawsse.events import MAX_RETRY

KiB = 1024
MiB = 1024 * KiB

#: Loopback by default: exposing a hub is a decision, not an accident.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000

#: Events kept per topic for replay on reconnect. A browser reconnects within seconds;
#: 1000 events covers a minute at 16 events/s per topic at a few hundred KiB of memory.
DEFAULT_HISTORY = 1000

#: What the memory backend's history may hold in all, events and bookkeeping: per-user
#: topics, or a publisher inventing topics, cannot grow a process past it. 64 MiB is
#: about 200 000 kept events of 100 bytes, or 50 000 topics of one event each.
DEFAULT_HISTORY_BYTES = 64 * MiB

#: Events older than this are forgotten (a client back after longer is told what it
#: lost): an hour covers a laptop's lid closed over lunch.
DEFAULT_HISTORY_TTL = 3600.0

#: The largest publish body and encoded event, as Mercure's default (1 MiB).
DEFAULT_MAX_EVENT_SIZE = 1 * MiB

#: A batch publish's whole body: its answer holds a line per event until it ends, so
#: a request's size bounds that memory. A producer streaming events for longer opens a
#: new request when one ends (413 with every line up to there answered).
DEFAULT_MAX_BATCH_SIZE = 16 * MiB

#: Unsent bytes a subscriber may hold in its transport's write buffer before it is
#: dropped. Twice the largest event, so that a healthy client can receive a maximal
#: event while the previous one is still in flight; at 10 000 clients the worst case is
#: bounded (20 GiB only if every client stalls at once, which the slow timeout ends).
DEFAULT_MAX_BUFFER = 2 * MiB

#: Write-buffer level at which the transport calls ``pause_writing()``: the moment a
#: client counts as "behind" and its slow timeout starts. 64 KiB is asyncio's default
#: high-water mark; the low-water mark is a quarter of it, as in asyncio.
DEFAULT_WRITE_HIGH_WATER = 64 * KiB

#: How long a subscriber may stay paused (behind by more than the high-water mark)
#: before it is dropped. Half of nginx's default ``send_timeout`` (60 s).
DEFAULT_SLOW_TIMEOUT = 30.0

#: Seconds between heartbeat comments on idle streams. nginx's ``proxy_read_timeout``
#: and many load balancers close connections idle for 60 s; 15 s stays well under.
DEFAULT_HEARTBEAT = 15.0

#: Time to receive a whole request (headers and body) once its first byte arrived, and
#: the idle time allowed before it: slow-header (slowloris) clients are cut off after it.
DEFAULT_REQUEST_TIMEOUT = 10.0

#: Idle keep-alive connections are closed after this. Longer than nginx's upstream
#: ``keepalive_timeout`` (60 s) so that nginx, not rawsse, closes first and never sends a
#: request on a connection rawsse is closing.
DEFAULT_KEEPALIVE_TIMEOUT = 75.0

#: Headers larger than this are answered 431. h11's own default (16 KiB) is larger than
#: what browsers send and smaller than what any sane client needs.
DEFAULT_MAX_HEADER_SIZE = 16 * KiB

#: The cookie a Mercure 0.x browser sends its token in (Mercure's own default name).
DEFAULT_MERCURE_COOKIE = "mercureAuthorization"

#: Seconds from SIGTERM to exit, whatever clients do. systemd waits 90 s and Kubernetes
#: 30 s before SIGKILL; 10 s leaves room for both.
DEFAULT_SHUTDOWN_TIMEOUT = 10.0

#: On shutdown each stream is told to come back after a random delay in this window
#: (milliseconds), so that a restart of a busy hub does not cause a reconnect storm.
DEFAULT_SHUTDOWN_RETRY_WINDOW = 5000

#: A subscription may name at most this many topics: each is a dictionary entry and a
#: history merge on replay.
DEFAULT_MAX_TOPICS = 64

#: ``flush_delay``'s default: adaptive (``None``; ``auto`` on the command line). Events
#: that follow a flush wait at most as long as that flush took, so that writing never
#: takes more than about half of the loop: no delay at moderate load, and under heavy
#: load events are gathered into fewer, larger writes. A number is a fixed delay in
#: seconds (0: flush every loop iteration). See perf/README.md for the figures.
DEFAULT_FLUSH_DELAY = None

#: The adaptive delay's ceiling, however long a flush took: a latency bound.
MAX_ADAPTIVE_FLUSH_DELAY = 0.05

#: Topic names are bounded so that URLs and the history's keys stay small.
MAX_TOPIC_LENGTH = 256

# -- limits against abuse (0 turns a limit off) -------------------------------------------

#: New connections per second from one client address (token bucket), and the burst it
#: may spend at once. A browser page opens a handful and reconnects every few seconds;
#: 20/s with a burst of 40 leaves room for a NAT of busy users and none for a flood.
DEFAULT_CONN_RATE = 20.0
DEFAULT_CONN_BURST = 40

#: Open connections from one directly connected address (trusted proxies exempt), of any
#: kind: past it, a new connection is closed at once, before it costs a request timeout.
DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 256

#: Concurrent streams from one client address. Browsers open at most six HTTP/1.1
#: connections per host; 100 leaves room for NATs and offices.
DEFAULT_MAX_STREAMS_PER_ADDRESS = 100

#: Concurrent streams in all: the process's open-file limit (20 000 here) minus room for
#: publishers, probes and the listener.
DEFAULT_MAX_STREAMS = 10_000

#: Publishes per second per credential (the publish key, or a token's subject), and the
#: burst. A leaked credential cannot flood every subscriber faster than this.
DEFAULT_PUBLISH_RATE = 1000.0
DEFAULT_PUBLISH_BURST = 2000

#: A stream refused for a concurrency cap is told to come back after a random delay
#: between half and one and a half times this (milliseconds), so refused clients spread
#: out instead of returning together.
DEFAULT_LIMIT_RETRY = 10_000

#: A peer that stops acknowledging (cable pulled, laptop closed) is dropped by the
#: kernel once sent data has gone unacknowledged this long (``TCP_USER_TIMEOUT``); with
#: heartbeats every ``heartbeat`` seconds such a stream ends within both added together.
DEFAULT_DEAD_PEER_TIMEOUT = 30.0

#: How long before a subscriber's token expires its stream carries a
#: ``rawsse-auth-expiring`` event, so the page can refresh its credentials in time.
DEFAULT_TOKEN_EXPIRY_NOTICE = 30.0


#: Proxies whose ``X-Forwarded-For`` is believed: loopback, so that behind nginx on the
#: same machine limits and logs use the browser's address (the convention of uvicorn's
#: and gunicorn's ``forwarded-allow-ips``). A client on loopback cannot forge an
#: address without already being on the machine.
DEFAULT_TRUSTED_PROXIES = ("127.0.0.0/8", "::1")

#: Every key and channel rawsse uses in Redis begins with this.
DEFAULT_REDIS_PREFIX = "rawsse:"

#: A publish or a new stream that Redis does not serve within this is refused (503):
#: a loopback or LAN round trip takes well under a millisecond.
DEFAULT_REDIS_TIMEOUT = 1.0

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def _setting(default: Any, help: str, **cli: Any) -> Any:
    """A :class:`Config` field with what the CLI needs to offer it: its help, and (in
    ``cli``) a ``flag`` other than the field's name, a ``metavar``, or ``file=True`` for
    a value read from the file the flag names. The CLI derives every option from these
    (``rawsse.cli.main``), so a new setting is one edit here."""
    return dataclasses.field(default=default, metadata={"help": help, **cli})


@dataclass(frozen=True, kw_only=True)
class Config:
    """Everything that can be tuned, validated on construction.

    Sizes are in bytes, times in seconds except ``retry`` and ``shutdown_retry_window``
    (milliseconds, as the SSE ``retry:`` field).
    """

    host: str = _setting(DEFAULT_HOST, "address to listen on")
    port: int = _setting(DEFAULT_PORT, "TCP port; 0 picks a free one")
    history: int = _setting(
        DEFAULT_HISTORY, "events kept per topic for replay to reconnecting clients"
    )
    history_bytes: int = _setting(
        DEFAULT_HISTORY_BYTES,
        "bytes the in-memory history may hold in all (oldest events go first); 0 is no bound",
    )
    history_ttl: float = _setting(
        DEFAULT_HISTORY_TTL, "seconds an event stays in the in-memory history; 0 is no limit"
    )
    max_buffer: int = _setting(
        DEFAULT_MAX_BUFFER, "bytes a subscriber may leave unsent before it is dropped"
    )
    write_high_water: int = _setting(
        DEFAULT_WRITE_HIGH_WATER,
        "bytes of a client's write buffer past which it counts as behind (and its requests wait)",
    )
    slow_timeout: float = _setting(
        DEFAULT_SLOW_TIMEOUT,
        "seconds a subscriber may stay behind before it is dropped (and a closing "
        "connection may keep unsent bytes)",
    )
    heartbeat: float = _setting(
        DEFAULT_HEARTBEAT, "seconds between keep-alive comments on idle streams"
    )
    retry: int | None = _setting(
        None,
        "milliseconds clients wait before reconnecting, sent on connect "
        "(default: the browser's own, about 3 s)",
    )
    request_timeout: float = _setting(
        DEFAULT_REQUEST_TIMEOUT, "seconds to receive a whole request once it has begun (408)"
    )
    keepalive_timeout: float = _setting(
        DEFAULT_KEEPALIVE_TIMEOUT, "seconds an idle keep-alive connection stays open"
    )
    max_header_size: int = _setting(DEFAULT_MAX_HEADER_SIZE, "largest request head, in bytes (431)")
    max_event_size: int = _setting(
        DEFAULT_MAX_EVENT_SIZE, "largest publish body and encoded event, in bytes (413)"
    )
    max_batch_size: int = _setting(
        DEFAULT_MAX_BATCH_SIZE,
        "largest batch publish body (newline-delimited JSON), in bytes; past it the "
        "request ends with 413 and the lines published so far",
    )
    max_topics: int = _setting(DEFAULT_MAX_TOPICS, "topics one subscription or publish may name")
    shutdown_timeout: float = _setting(
        DEFAULT_SHUTDOWN_TIMEOUT, "seconds from SIGTERM to exit, whatever clients do"
    )
    shutdown_retry_window: int = _setting(
        DEFAULT_SHUTDOWN_RETRY_WINDOW,
        "milliseconds within which streams ended by a shutdown are told to come back",
    )
    publish_key: str | None = _setting(
        None,
        "bearer key that POST /publish requires; generated and printed at start when unset",
    )
    metrics_key: str | None = _setting(
        None, "bearer key that GET /metrics requires (default: none, /metrics is open)"
    )
    metrics_port: int | None = _setting(
        None, "serve /metrics (with /healthz and /readyz) on this port instead of the main one"
    )
    jwt_secret: str | None = _setting(
        None, "HS256 secret (at least 32 bytes) that publish and subscribe tokens are signed with"
    )
    jwt_public_key: str | None = _setting(
        None,
        "PEM public key (RSA: RS256, EC: ES256/384/512) that tokens are verified with",
        metavar="FILE",
        file=True,
    )
    jwt_audience: str | None = _setting(None, "accept only tokens whose aud claim is this")
    jwt_issuer: str | None = _setting(None, "accept only tokens whose iss claim is this")
    subscribe_auth: bool = _setting(
        False,
        "streams need a token whose rawsse.subscribe claim covers their topics "
        "(Authorization header or rawsse_authorization cookie)",
    )
    allow_query_token: bool = _setting(
        False,
        "also accept the subscribe token in an ?authorization= parameter (redacted from logs)",
    )
    token_expiry_notice: float = _setting(
        DEFAULT_TOKEN_EXPIRY_NOTICE,
        "seconds before a stream's token expires that it gets a rawsse-auth-expiring event",
    )
    conn_rate: float = _setting(
        DEFAULT_CONN_RATE, "new connections per second per client address; 0 is no limit"
    )
    conn_burst: int = _setting(
        DEFAULT_CONN_BURST, "new connections a client address may open at once"
    )
    max_connections_per_address: int = _setting(
        DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
        "open sockets per directly connected address, trusted proxies exempt",
    )
    max_streams_per_address: int = _setting(
        DEFAULT_MAX_STREAMS_PER_ADDRESS, "concurrent streams per client address"
    )
    max_streams: int = _setting(DEFAULT_MAX_STREAMS, "concurrent streams in all")
    publish_rate: float = _setting(DEFAULT_PUBLISH_RATE, "publishes per second per credential")
    publish_burst: int = _setting(DEFAULT_PUBLISH_BURST, "publishes a credential may make at once")
    limit_retry: int = _setting(
        DEFAULT_LIMIT_RETRY,
        "milliseconds a stream refused for a limit is told to wait, with ±50%% jitter",
    )
    trusted_proxies: tuple[str, ...] = _setting(
        DEFAULT_TRUSTED_PROXIES,
        "believe X-Forwarded-For / X-Real-IP from this proxy; 'none' trusts none "
        "(default: loopback, a proxy on the same machine)",
        flag="trusted-proxy",
        metavar="ADDRESS_OR_CIDR",
    )
    cors_origins: tuple[str, ...] = _setting(
        (),
        "let pages from this origin (https://host[:port], or * without credentials) "
        "read streams and publish",
        flag="cors-origin",
        metavar="ORIGIN",
    )
    dead_peer_timeout: float = _setting(
        DEFAULT_DEAD_PEER_TIMEOUT,
        "seconds unacknowledged data may wait before the kernel drops a vanished client; "
        "0 leaves the kernel's default",
    )
    flush_delay: float | None = _setting(
        DEFAULT_FLUSH_DELAY,
        "seconds events that follow a flush wait to be batched into one write per "
        "subscriber; 'auto' (the default) waits a share of the last flush's duration "
        "that the loop's load sets (none while it has time to spare, up to twice as long "
        "when it is short of time); 0 flushes every loop iteration",
        auto=True,
    )
    compress: bool = _setting(
        False,
        "send event streams gzip-compressed to clients that accept it: each group's events "
        "compressed once and shared, every event flushed at once",
    )
    redis: str | None = _setting(
        None,
        "Redis URL (redis://host:6379/0): order, keep and deliver events through it, "
        "shared by every worker and server using it; needs the 'redis' extra",
        metavar="URL",
    )
    redis_prefix: str = _setting(
        DEFAULT_REDIS_PREFIX, "prefix of rawsse's Redis keys and channels", metavar="PREFIX"
    )
    redis_timeout: float = _setting(
        DEFAULT_REDIS_TIMEOUT,
        "seconds Redis may take to answer before a publish or a new stream is refused (503)",
    )
    mercure: bool = _setting(
        False,
        "also serve the Mercure protocol (0.x: topic selectors, the mercure claim, private "
        "updates) at /.well-known/mercure; needs the 'mercure' extra",
    )
    publisher_jwt_key: str | None = _setting(
        None,
        "Mercure mode: the HS256 secret, or PEM public key, publishers' tokens are verified "
        "with (default: jwt_secret or jwt_public_key; MERCURE_PUBLISHER_JWT_KEY also read)",
        metavar="KEY",
        env_alias="MERCURE_PUBLISHER_JWT_KEY",
    )
    subscriber_jwt_key: str | None = _setting(
        None,
        "Mercure mode: the HS256 secret, or PEM public key, subscribers' tokens are verified "
        "with (default: jwt_secret or jwt_public_key; MERCURE_SUBSCRIBER_JWT_KEY also read)",
        metavar="KEY",
        env_alias="MERCURE_SUBSCRIBER_JWT_KEY",
    )
    publish_origins: tuple[str, ...] = _setting(
        (),
        "Mercure mode: an origin (https://host[:port]) a publish authenticated by cookie "
        "may come from; without one, such publishes are refused",
        flag="publish-origin",
        metavar="ORIGIN",
    )
    mercure_cookie: str = _setting(
        DEFAULT_MERCURE_COOKIE,
        "Mercure mode: the cookie a browser's token comes in",
        metavar="NAME",
    )
    mercure_subscriptions: bool = _setting(
        False,
        "Mercure mode: publish an update when a subscription begins and ends, and list the "
        "active ones at /.well-known/mercure/subscriptions (every server's, with redis)",
    )
    mercure_url: str | None = _setting(
        None,
        "Mercure mode: the hub's public URL (https://example.com/.well-known/mercure), "
        "against which relative URL patterns and topics are resolved (default: http://, "
        "the request's Host, and the hub's path)",
        metavar="URL",
    )

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0-65535, got {self.port!r}")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"metrics_port must be 0-65535, got {self.metrics_port!r}")
        _at_least("history", self.history, 0)
        _at_least("history_bytes", self.history_bytes, 0)
        _at_least("max_event_size", self.max_event_size, 1)
        _at_least("max_batch_size", self.max_batch_size, 1)
        _at_least("write_high_water", self.write_high_water, 1)
        _at_least("max_header_size", self.max_header_size, 1 * KiB)
        _at_least("max_topics", self.max_topics, 1)
        _at_least("shutdown_retry_window", self.shutdown_retry_window, 0)
        if self.max_buffer < self.write_high_water:
            raise ConfigError(
                f"max_buffer ({self.max_buffer}) must be at least "
                f"write_high_water ({self.write_high_water})"
            )
        for name in (
            "slow_timeout",
            "heartbeat",
            "request_timeout",
            "keepalive_timeout",
            "shutdown_timeout",
            "redis_timeout",
        ):
            value = getattr(self, name)
            if not value > 0:
                raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
        if self.retry is not None:
            _at_least("retry", self.retry, 0)
            if self.retry > MAX_RETRY:
                raise ConfigError(f"retry must be at most {MAX_RETRY} ms, got {self.retry!r}")
        for name in ("publish_key", "metrics_key", "jwt_secret", "jwt_public_key"):
            if getattr(self, name) == "":
                raise ConfigError(f"{name} must not be empty (use None for no key)")
        for name in (
            "conn_burst",
            "max_connections_per_address",
            "max_streams_per_address",
            "max_streams",
            "publish_burst",
            "limit_retry",
        ):
            _at_least(name, getattr(self, name), 0)
        for name in (
            "conn_rate",
            "publish_rate",
            "dead_peer_timeout",
            "token_expiry_notice",
            "flush_delay",
            "history_ttl",
        ):
            value = getattr(self, name)
            if value is None and name == "flush_delay":
                continue  # adaptive
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"{name} must be a number >= 0, got {value!r}")
        if self.conn_rate and self.conn_burst < 1:
            raise ConfigError("conn_burst must be at least 1 when conn_rate is set")
        if self.publish_rate and self.publish_burst < 1:
            raise ConfigError("publish_burst must be at least 1 when publish_rate is set")
        if self.jwt_secret is not None and self.jwt_public_key is not None:
            raise ConfigError("give jwt_secret (HS256) or jwt_public_key (RS256/ES256), not both")
        if self.subscribe_auth and self.jwt_secret is None and self.jwt_public_key is None:
            raise ConfigError("subscribe_auth needs jwt_secret or jwt_public_key")
        if self.redis is not None and not self.redis.startswith(_REDIS_SCHEMES):
            raise ConfigError(f"redis: {self.redis!r} is not a redis://, rediss:// or unix:// URL")
        if not self.redis_prefix:
            raise ConfigError("redis_prefix must not be empty")
        _check_networks(self.trusted_proxies)
        _check_origins("cors_origins", self.cors_origins)
        _check_origins("publish_origins", self.publish_origins)
        if self.mercure_url is not None and not self.mercure_url.startswith(
            ("http://", "https://")
        ):
            raise ConfigError(f"mercure_url: {self.mercure_url!r} is not an http(s):// URL")
        for name in ("publisher_jwt_key", "subscriber_jwt_key", "mercure_cookie"):
            if getattr(self, name) == "":
                raise ConfigError(f"{name} must not be empty (use None for no key)")
        if self.mercure and self.mercure_key("publisher") is None:
            raise ConfigError(
                "mercure needs a key for publishers' tokens: publisher_jwt_key, jwt_secret "
                "or jwt_public_key"
            )

    def mercure_key(self, role: str) -> str | None:
        """The key Mercure mode verifies ``role``'s tokens with (``publisher`` or
        ``subscriber``): its own, else the one native tokens use."""
        own: str | None = getattr(self, f"{role}_jwt_key")
        return own if own is not None else (self.jwt_secret or self.jwt_public_key)

    def replace(self, **changes: object) -> Config:
        """Return a copy with ``changes`` applied, validated again."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def _check_networks(values: tuple[str, ...]) -> None:
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ConfigError(
                f"trusted_proxies: {value!r} is not an address or CIDR network"
            ) from None


def _check_origins(name: str, values: tuple[str, ...]) -> None:
    for value in values:
        if value == "*":
            continue
        scheme, sep, rest = value.partition("://")
        if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
            raise ConfigError(f"{name}: {value!r} is not an origin like https://example.com or *")


def _at_least(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
