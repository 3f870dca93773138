"""``python -m rawsse``: a ready hub with a demo page, configured by flags or
``RAWSSE_*`` environment variables (a flag wins over its variable)."""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import sys
from collections.abc import Sequence
from typing import Any

from rawsse import __version__
from rawsse.config import (
    DEFAULT_CONN_BURST,
    DEFAULT_CONN_RATE,
    DEFAULT_DEAD_PEER_TIMEOUT,
    DEFAULT_HEARTBEAT,
    DEFAULT_HISTORY,
    DEFAULT_HOST,
    DEFAULT_LIMIT_RETRY,
    DEFAULT_MAX_BUFFER,
    DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
    DEFAULT_MAX_EVENT_SIZE,
    DEFAULT_MAX_STREAMS,
    DEFAULT_MAX_STREAMS_PER_ADDRESS,
    DEFAULT_PORT,
    DEFAULT_PUBLISH_BURST,
    DEFAULT_PUBLISH_RATE,
    DEFAULT_SHUTDOWN_TIMEOUT,
    DEFAULT_SLOW_TIMEOUT,
    Config,
)
from rawsse.errors import ConfigError
from rawsse.logs import LOG_FORMATS, configure
from rawsse.loops import LOOP_CHOICES, loop_factory

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def _env(name: str, default: Any) -> Any:
    return os.environ.get("RAWSSE_" + name, default)


def _env_flag(name: str) -> bool:
    return os.environ.get("RAWSSE_" + name, "").lower() in ("1", "true", "yes", "on")


def _env_list(name: str) -> list[str]:
    value = os.environ.get("RAWSSE_" + name, "")
    return [item.strip() for item in value.split(",") if item.strip()]


def _split_commas(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(item.strip() for value in values for item in value.split(",") if item.strip())


def _read_key_file(path: str | None) -> str | None:
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except OSError as exc:
        raise ConfigError(f"cannot read --jwt-public-key {path}: {exc.strerror}") from None


def _add_jwt_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--jwt-secret",
        default=_env("JWT_SECRET", None),
        help="HS256 secret (at least 32 bytes) that publish and subscribe tokens are signed with",
    )
    add(
        "--jwt-audience",
        default=_env("JWT_AUDIENCE", None),
        help="accept only tokens whose aud claim is this",
    )
    add(
        "--jwt-issuer",
        default=_env("JWT_ISSUER", None),
        help="accept only tokens whose iss claim is this",
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line, every option defaulting to its ``RAWSSE_*`` variable."""
    parser = argparse.ArgumentParser(
        prog="python -m rawsse",
        description="rawsse: a Server-Sent Events hub. Every option can also be set "
        "with the environment variable named after it (RAWSSE_PORT for --port).",
    )
    add = parser.add_argument
    add(
        "--host",
        default=_env("HOST", DEFAULT_HOST),
        help="address to listen on (default %(default)s)",
    )
    add(
        "--port",
        type=int,
        default=_env("PORT", DEFAULT_PORT),
        help="TCP port; 0 picks a free one (default %(default)s)",
    )
    add(
        "--publish-key",
        default=_env("PUBLISH_KEY", None),
        help="bearer key that POST /publish requires; generated and printed at start when unset",
    )
    add(
        "--metrics-key",
        default=_env("METRICS_KEY", None),
        help="bearer key that GET /metrics requires (default: none, /metrics is open)",
    )
    add(
        "--metrics-port",
        type=int,
        default=_env("METRICS_PORT", None),
        help="serve /metrics (with /healthz and /readyz) on this port instead of the main one",
    )
    _add_jwt_options(parser)
    add(
        "--jwt-public-key",
        metavar="FILE",
        default=_env("JWT_PUBLIC_KEY", None),
        help="PEM public key (RSA: RS256, EC: ES256/384/512) that tokens are verified with",
    )
    add(
        "--subscribe-auth",
        action="store_true",
        default=_env_flag("SUBSCRIBE_AUTH"),
        help="streams need a token whose rawsse.subscribe claim covers their topics "
        "(Authorization header or rawsse_authorization cookie)",
    )
    add(
        "--allow-query-token",
        action="store_true",
        default=_env_flag("ALLOW_QUERY_TOKEN"),
        help="also accept the subscribe token in an ?authorization= parameter (redacted from logs)",
    )
    add(
        "--conn-rate",
        type=float,
        default=_env("CONN_RATE", DEFAULT_CONN_RATE),
        help="new connections per second per client address; 0 is no limit (default %(default)s)",
    )
    add(
        "--conn-burst",
        type=int,
        default=_env("CONN_BURST", DEFAULT_CONN_BURST),
        help="new connections a client address may open at once (default %(default)s)",
    )
    add(
        "--max-connections-per-address",
        type=int,
        default=_env("MAX_CONNECTIONS_PER_ADDRESS", DEFAULT_MAX_CONNECTIONS_PER_ADDRESS),
        help="open sockets per directly connected address, trusted proxies exempt (default %(default)s)",
    )
    add(
        "--max-streams-per-address",
        type=int,
        default=_env("MAX_STREAMS_PER_ADDRESS", DEFAULT_MAX_STREAMS_PER_ADDRESS),
        help="concurrent streams per client address (default %(default)s)",
    )
    add(
        "--max-streams",
        type=int,
        default=_env("MAX_STREAMS", DEFAULT_MAX_STREAMS),
        help="concurrent streams in all (default %(default)s)",
    )
    add(
        "--publish-rate",
        type=float,
        default=_env("PUBLISH_RATE", DEFAULT_PUBLISH_RATE),
        help="publishes per second per credential (default %(default)s)",
    )
    add(
        "--publish-burst",
        type=int,
        default=_env("PUBLISH_BURST", DEFAULT_PUBLISH_BURST),
        help="publishes a credential may make at once (default %(default)s)",
    )
    add(
        "--limit-retry",
        type=int,
        default=_env("LIMIT_RETRY", DEFAULT_LIMIT_RETRY),
        help="milliseconds a stream refused for a limit is told to wait, with ±50%% jitter "
        "(default %(default)s)",
    )
    add(
        "--trusted-proxy",
        action="append",
        default=None,
        metavar="ADDRESS_OR_CIDR",
        help="believe X-Forwarded-For / X-Real-IP from this proxy (repeatable, or comma-separated)",
    )
    add(
        "--cors-origin",
        action="append",
        default=None,
        metavar="ORIGIN",
        help="let pages from this origin (https://host[:port], or * without credentials) "
        "read streams and publish (repeatable, or comma-separated)",
    )
    add(
        "--dead-peer-timeout",
        type=float,
        default=_env("DEAD_PEER_TIMEOUT", DEFAULT_DEAD_PEER_TIMEOUT),
        help="seconds unacknowledged data may wait before the kernel drops a vanished client; "
        "0 leaves the kernel's default (default %(default)s)",
    )
    add(
        "--history",
        type=int,
        default=_env("HISTORY", DEFAULT_HISTORY),
        help="events kept per topic for replay to reconnecting clients (default %(default)s)",
    )
    add(
        "--max-buffer",
        type=int,
        default=_env("MAX_BUFFER", DEFAULT_MAX_BUFFER),
        help="bytes a subscriber may leave unsent before it is dropped (default %(default)s)",
    )
    add(
        "--slow-timeout",
        type=float,
        default=_env("SLOW_TIMEOUT", DEFAULT_SLOW_TIMEOUT),
        help="seconds a subscriber may stay behind (write buffer over 64 KiB) before it is dropped (default %(default)s)",
    )
    add(
        "--heartbeat",
        type=float,
        default=_env("HEARTBEAT", DEFAULT_HEARTBEAT),
        help="seconds between keep-alive comments on idle streams (default %(default)s)",
    )
    add(
        "--retry",
        type=int,
        default=_env("RETRY", None),
        help="milliseconds clients wait before reconnecting, sent on connect (default: browser's own, about 3 s)",
    )
    add(
        "--shutdown-timeout",
        type=float,
        default=_env("SHUTDOWN_TIMEOUT", DEFAULT_SHUTDOWN_TIMEOUT),
        help="seconds from SIGTERM to exit, whatever clients do (default %(default)s)",
    )
    add(
        "--max-event-size",
        type=int,
        default=_env("MAX_EVENT_SIZE", DEFAULT_MAX_EVENT_SIZE),
        help="largest publish body and encoded event, in bytes (default %(default)s)",
    )
    add(
        "--flush-delay",
        type=float,
        default=_env("FLUSH_DELAY", 0.0),
        help="seconds events that follow a flush closely wait to be batched into one write "
        "(0: every loop iteration; 0.005 quadruples HTTP publish capacity, see perf/README.md)",
    )
    add(
        "--no-demo",
        action="store_true",
        default=_env_flag("NO_DEMO"),
        help="serve no demo page at / and run no demo producer (RAWSSE_NO_DEMO=1)",
    )
    add(
        "--loop",
        choices=LOOP_CHOICES,
        default=_env("LOOP", "auto"),
        help="event loop: uvloop when installed (auto), or force one (default %(default)s)",
    )
    add(
        "--log-level",
        choices=LOG_LEVELS,
        default=_env("LOG_LEVEL", "info"),
        help="logging threshold; 'warning' silences the access log (default %(default)s)",
    )
    add(
        "--log-format",
        choices=LOG_FORMATS,
        default=_env("LOG_FORMAT", "text"),
        help="'json' writes one JSON object per line, for log shippers (default %(default)s)",
    )
    add("--version", action="version", version=f"rawsse {__version__}")
    return parser


def banner(
    url: str, key: str, generated: bool, demo: bool, loop_name: str, subscribe_auth: bool = False
) -> str:
    """What a person starting the hub needs: where to look and how to publish."""
    auth = shlex.quote(f"Authorization: Bearer {key}")
    lines = [f"rawsse {__version__} listening on {url} ({loop_name})"]
    if demo:
        lines.append(f"  demo page:   {url}/")
    topic = "demo" if demo else "news"
    subscribe = f"  subscribe:   curl -N '{url}/events?topic={topic}'"
    if subscribe_auth:
        subscribe += ' -H "Authorization: Bearer $TOKEN"'
    lines += [subscribe]
    if subscribe_auth:
        lines.append(f"  token:       TOKEN=$(python -m rawsse token --subscribe {topic})")
    lines += [
        f"  publish:     curl -d topic={topic} -d data=hello -H {auth} {url}/publish",
        f"  publish key: {key}"
        + (
            " (generated; choose one with --publish-key or RAWSSE_PUBLISH_KEY)" if generated else ""
        ),
    ]
    return "\n".join(lines)


def build_token_parser() -> argparse.ArgumentParser:
    """``python -m rawsse token``: mint an HS256 token from the configured secret."""
    parser = argparse.ArgumentParser(
        prog="python -m rawsse token",
        description="Print a JWT carrying rawsse grants, signed with --jwt-secret "
        "(or RAWSSE_JWT_SECRET), for testing a hub.",
    )
    _add_jwt_options(parser)
    add = parser.add_argument
    add(
        "--publish",
        action="append",
        default=[],
        help="topic selector it may publish to (repeatable)",
    )
    add("--subscribe", action="append", default=[], help="topic selector it may read (repeatable)")
    add("--ttl", type=float, default=3600.0, help="seconds until it expires (default %(default)s)")
    add("--subject", default=None, help="its sub claim (rate limits count per subject)")
    return parser


def mint(argv: Sequence[str]) -> int:
    """The ``token`` command: print one token and return 0."""
    parser = build_token_parser()
    args = parser.parse_args(argv)
    if not args.jwt_secret:
        parser.error("--jwt-secret (or RAWSSE_JWT_SECRET) is required")
    from rawsse.auth import mint_token

    try:
        token = mint_token(
            args.jwt_secret,
            publish=_split_commas(args.publish),
            subscribe=_split_commas(args.subscribe),
            ttl=args.ttl,
            subject=args.subject,
            audience=args.jwt_audience,
            issuer=args.jwt_issuer,
        )
    except ConfigError as exc:
        parser.error(str(exc))
    print(token)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, print the banner, serve until a signal; return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["token"]:
        return mint(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    key, generated = args.publish_key, False
    if not key:
        key, generated = secrets.token_urlsafe(24), True
    demo = not args.no_demo
    try:
        config = Config(
            host=args.host,
            port=args.port,
            publish_key=key,
            metrics_key=args.metrics_key or None,
            metrics_port=args.metrics_port,
            history=args.history,
            max_buffer=args.max_buffer,
            slow_timeout=args.slow_timeout,
            heartbeat=args.heartbeat,
            retry=args.retry,
            shutdown_timeout=args.shutdown_timeout,
            max_event_size=args.max_event_size,
            flush_delay=args.flush_delay,
            jwt_secret=args.jwt_secret or None,
            jwt_public_key=_read_key_file(args.jwt_public_key),
            jwt_audience=args.jwt_audience or None,
            jwt_issuer=args.jwt_issuer or None,
            subscribe_auth=args.subscribe_auth,
            allow_query_token=args.allow_query_token,
            conn_rate=args.conn_rate,
            conn_burst=args.conn_burst,
            max_connections_per_address=args.max_connections_per_address,
            max_streams_per_address=args.max_streams_per_address,
            max_streams=args.max_streams,
            publish_rate=args.publish_rate,
            publish_burst=args.publish_burst,
            limit_retry=args.limit_retry,
            trusted_proxies=_split_commas(args.trusted_proxy or _env_list("TRUSTED_PROXY")),
            cors_origins=_split_commas(args.cors_origin or _env_list("CORS_ORIGIN")),
            dead_peer_timeout=args.dead_peer_timeout,
        )
        if config.jwt_secret is not None or config.jwt_public_key is not None:
            from rawsse.auth import Authorizer

            Authorizer(config)  # a bad key or a missing PyJWT is a usage error, now
        new_loop = loop_factory(args.loop)
    except (ConfigError, ImportError) as exc:
        parser.error(str(exc))
    configure(args.log_level, args.log_format)
    from rawsse.demo import demo_page, demo_producer, stats_producer
    from rawsse.server import Server, run

    loop_name = new_loop.__module__.split(".")[0]

    def on_start(server: Server) -> None:
        if demo:
            server.spawn(demo_producer(server.hub), name="demo-producer")
            server.spawn(stats_producer(server.hub), name="stats-producer")
        print(
            banner(server.url, key, generated, demo, loop_name, config.subscribe_auth),
            flush=True,
        )

    return run(config, loop=args.loop, demo_page=demo_page() if demo else None, on_start=on_start)


if __name__ == "__main__":
    sys.exit(main())
