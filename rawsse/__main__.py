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
    DEFAULT_HEARTBEAT,
    DEFAULT_HISTORY,
    DEFAULT_HOST,
    DEFAULT_MAX_BUFFER,
    DEFAULT_MAX_EVENT_SIZE,
    DEFAULT_PORT,
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


def banner(url: str, key: str, generated: bool, demo: bool, loop_name: str) -> str:
    """What a person starting the hub needs: where to look and how to publish."""
    auth = shlex.quote(f"Authorization: Bearer {key}")
    lines = [f"rawsse {__version__} listening on {url} ({loop_name})"]
    if demo:
        lines.append(f"  demo page:   {url}/")
    topic = "demo" if demo else "news"
    lines += [
        f"  subscribe:   curl -N '{url}/events?topic={topic}'",
        f"  publish:     curl -d topic={topic} -d data=hello -H {auth} {url}/publish",
        f"  publish key: {key}"
        + (
            " (generated; choose one with --publish-key or RAWSSE_PUBLISH_KEY)" if generated else ""
        ),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, print the banner, serve until a signal; return the exit status."""
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
        )
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
        print(banner(server.url, key, generated, demo, loop_name), flush=True)

    return run(config, loop=args.loop, demo_page=demo_page() if demo else None, on_start=on_start)


if __name__ == "__main__":
    sys.exit(main())
