"""``python -m rawsse``: a ready hub with a demo page, configured by flags or
``RAWSSE_*`` environment variables (a flag wins over its variable)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import secrets
import shlex
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from rawsse.cli.logs import LOG_FORMATS, configure
from rawsse.config import Config
from rawsse.errors import ConfigError
from rawsse.server.loops import LOOP_CHOICES, loop_factory
from rawsse.version import __version__

if TYPE_CHECKING:
    from rawsse.server.server import Server

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

#: The settings the ``token`` command takes from the hub's configuration.
JWT_SETTINGS = ("jwt_secret", "jwt_audience", "jwt_issuer")

_CONVERTERS: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "str": str}


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


def auto_or_seconds(value: str) -> float | None:
    """A setting that is a number or ``auto`` (``None``: the hub adapts it)."""
    if value.strip().lower() == "auto":
        return None
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is neither a number nor 'auto'") from None


def _flag(field: dataclasses.Field[Any]) -> str:
    """A setting's flag without its dashes: the field's name, unless it says otherwise."""
    return str(field.metadata.get("flag", field.name.replace("_", "-")))


def _env_name(field: dataclasses.Field[Any]) -> str:
    """A setting's variable without its ``RAWSSE_`` prefix: the flag's, in capitals."""
    return _flag(field).upper().replace("-", "_")


def add_config_options(parser: argparse.ArgumentParser, names: Sequence[str] | None = None) -> None:
    """One option per :class:`Config` field (or those named), each defaulting to its
    ``RAWSSE_*`` variable, then to the field's default; help from the field."""
    for field in dataclasses.fields(Config):
        if names is not None and field.name not in names:
            continue
        flag, env = "--" + _flag(field), _env_name(field)
        kind = str(field.type)
        help_text = str(field.metadata["help"])
        extra: dict[str, Any] = {}
        if "metavar" in field.metadata:
            extra["metavar"] = field.metadata["metavar"]
        if kind == "bool":
            parser.add_argument(
                flag, action="store_true", default=_env_flag(env), help=help_text, **extra
            )
        elif kind.startswith("tuple"):
            help_text += f" (repeatable, or comma-separated in RAWSSE_{env})"
            parser.add_argument(flag, action="append", default=None, help=help_text, **extra)
        elif field.metadata.get("auto"):
            parser.add_argument(
                flag, type=auto_or_seconds, default=_env(env, None), help=help_text, **extra
            )
        else:
            if field.default is not None:
                help_text += " (default %(default)s)"
            convert = _CONVERTERS[kind.split(" |")[0]]
            default = field.default
            alias = field.metadata.get("env_alias")
            if alias is not None:  # a name its users know from elsewhere (Mercure's)
                default = os.environ.get(alias, default)
            parser.add_argument(
                flag, type=convert, default=_env(env, default), help=help_text, **extra
            )


def _list_setting(field: dataclasses.Field[Any], flags: Sequence[str] | None) -> tuple[str, ...]:
    """A list setting: its flags, else its variable, else its default; ``none`` (as
    ``--trusted-proxy none``) for an empty list where the default is not."""
    if flags:
        values = _split_commas(flags)
    elif os.environ.get("RAWSSE_" + _env_name(field)) is not None:
        values = tuple(_env_list(_env_name(field)))
    else:
        default: tuple[str, ...] = field.default  # type: ignore[assignment]
        return default
    return () if values == ("none",) else values


def config_values(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`Config` fields from parsed options: lists split on commas (the
    variable's when no flag was given), empty keys as none, files read."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(Config):
        value = getattr(args, _flag(field).replace("-", "_"))
        if str(field.type).startswith("tuple"):
            value = _list_setting(field, value)
        elif field.metadata.get("file"):
            value = _read_key_file(value)
        elif isinstance(value, str) and not value and field.default is None:
            value = None
        values[field.name] = value
    return values


def build_parser() -> argparse.ArgumentParser:
    """The command line: one option per :class:`Config` field, and the CLI's own."""
    parser = argparse.ArgumentParser(
        prog="python -m rawsse",
        description="rawsse: a Server-Sent Events hub. Every option can also be set "
        "with the environment variable named after it (RAWSSE_PORT for --port). Sizes "
        "are in bytes, times in seconds unless an option says milliseconds.",
        epilog="commands: 'python -m rawsse token ...' prints a JWT signed with "
        "--jwt-secret, carrying publish and subscribe grants (see 'python -m rawsse "
        "token --help'); 'python -m rawsse probe ...' checks the path from a hub to "
        "browsers through a proxy (see 'python -m rawsse probe --help').",
    )
    add_config_options(parser)
    add = parser.add_argument
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
    add(
        "--workers",
        type=int,
        default=int(_env("WORKERS", 1)),
        help="processes serving the port (SO_REUSEPORT), sharing events through --redis; "
        "worker i serves metrics on --metrics-port + i (default %(default)s)",
    )
    add("--version", action="version", version=f"rawsse {__version__}")
    return parser


def banner(
    url: str,
    key: str,
    generated: bool,
    demo: bool,
    loop_name: str,
    token_recipe: str | None = None,
    workers: str | None = None,
) -> str:
    """What a person starting the hub needs: where to look and how to publish
    (``token_recipe``: how to get a subscribe token, when streams need one).

    Standard output goes to the journal under systemd: a secret is printed only when
    the hub made it up (nobody else knows it), never one that was given (a flag, the
    environment); the commands then read it from ``RAWSSE_PUBLISH_KEY``.
    """
    if generated:
        auth = shlex.quote(f"Authorization: Bearer {key}")
    else:
        auth = '"Authorization: Bearer $RAWSSE_PUBLISH_KEY"'
    lines = [f"rawsse {__version__} listening on {url} ({loop_name})"]
    if workers is not None:
        lines.append(f"  workers:     {workers}")
    if demo:
        lines.append(f"  demo page:   {url}/")
    topic = "demo" if demo else "news"
    subscribe = f"  subscribe:   curl -N '{url}/events?topic={topic}'"
    if token_recipe is not None:
        subscribe += ' -H "Authorization: Bearer $TOKEN"'
    lines += [subscribe]
    if token_recipe is not None:
        lines.append(f"  token:       {token_recipe}")
    if generated:
        shown = f"{key} (generated; choose one with --publish-key or RAWSSE_PUBLISH_KEY)"
    else:
        shown = "the one given (--publish-key or RAWSSE_PUBLISH_KEY), not printed"
    lines += [
        f"  publish:     curl -d topic={topic} -d data=hello -H {auth} {url}/publish",
        f"  publish key: {shown}",
    ]
    return "\n".join(lines)


def token_recipe(config: Config, topic: str) -> str | None:
    """The banner's line to get a subscribe token for ``topic`` (``None`` when streams
    need none). It carries the settings given as flags, since ``python -m rawsse
    token`` reads only those in its environment, but never the secret: the command
    reads that from ``RAWSSE_JWT_SECRET``, and the line says so."""
    if not config.subscribe_auth:
        return None
    if config.jwt_secret is None:
        return f'sign one with your private key, with the grant {{"rawsse": {{"subscribe": ["{topic}"]}}}}'
    flags: list[str] = []
    for name in JWT_SETTINGS:
        value = getattr(config, name)
        if name == "jwt_secret" or value is None:
            continue
        if os.environ.get("RAWSSE_" + name.upper()) != value:
            flags += ["--" + name.replace("_", "-"), shlex.quote(value)]
    command = f"TOKEN=$(python -m rawsse token {' '.join([*flags, '--subscribe', topic])})"
    return command + "\n               (it reads the hub's secret from RAWSSE_JWT_SECRET)"


def build_token_parser() -> argparse.ArgumentParser:
    """``python -m rawsse token``: mint an HS256 token from the configured secret."""
    parser = argparse.ArgumentParser(
        prog="python -m rawsse token",
        description="Print a JWT carrying rawsse grants, signed with --jwt-secret "
        "(or RAWSSE_JWT_SECRET), for testing a hub.",
    )
    add_config_options(parser, JWT_SETTINGS)
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
    from rawsse.policy.auth import mint_token

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
    if argv[:1] == ["probe"]:
        from rawsse.cli.probe import main as probe

        return probe(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        hub = _HubSettings.from_args(args)
    except (ConfigError, ImportError, ValueError) as exc:
        parser.error(str(exc))
    refused = _workers_refused(args.workers, hub.config)
    if refused is not None:
        if args.workers < 1:
            parser.error(refused)
        print(f"rawsse: error: {refused}", file=sys.stderr)
        return 2
    configure(args.log_level, args.log_format)
    if args.workers == 1:
        return hub.serve(0)
    from rawsse.cli.workers import can_bind, supervise

    try:
        can_bind(hub.config.host, hub.config.port)
    except OSError as exc:
        return _cannot_listen(exc)
    return supervise(args.workers, hub.serve, shutdown_timeout=hub.config.shutdown_timeout)


@dataclasses.dataclass(frozen=True)
class _HubSettings:
    """What the command line decided: the configuration (with the publish key, made up
    when none was given), and how to serve it."""

    config: Config
    key: str
    generated: bool
    demo: bool
    loop: str
    loop_name: str
    workers: int

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> _HubSettings:
        """Build and check the configuration now, so that a bad value, a bad key or a
        missing extra is a usage error before anything starts.

        Raises:
            ConfigError, ImportError, ValueError: the offending setting, with why.
        """
        values = config_values(args)
        key, generated = values["publish_key"], False
        if not key:
            key, generated = secrets.token_urlsafe(24), True
        config = Config(**{**values, "publish_key": key})
        if config.jwt_secret is not None or config.jwt_public_key is not None:
            from rawsse.policy.auth import Authorizer

            Authorizer(config)  # a bad key or a missing PyJWT
        if config.mercure:
            from rawsse.policy.mercure_auth import MercureAuth

            MercureAuth(config)  # a bad key, or a missing extra
        if config.redis is not None:
            from rawsse.backends.factory import backend_for

            backend_for(config)  # a missing extra or a malformed URL
        loop_name = loop_factory(args.loop).__module__.split(".")[0]
        return cls(config, key, generated, not args.no_demo, args.loop, loop_name, args.workers)

    def serve(self, index: int) -> int:
        """Serve as worker ``index`` (the first prints the banner and runs the demo)
        until a signal; the exit status."""
        from rawsse.cli.demo import demo_page
        from rawsse.server.server import run

        config = self.config
        if config.metrics_port:
            config = config.replace(metrics_port=config.metrics_port + index)
        try:
            return run(
                config,
                loop=self.loop,
                demo_page=demo_page() if self.demo else None,
                on_start=self._on_start if index == 0 else None,
                reuse_port=self.workers > 1,
            )
        except OSError as exc:
            return _cannot_listen(exc)

    def _on_start(self, server: Server) -> None:
        from rawsse.cli.demo import demo_producer, stats_producer

        if self.demo:
            server.spawn(demo_producer(server.hub), name="demo-producer")
            server.spawn(stats_producer(server.hub), name="stats-producer")
        topic = "demo" if self.demo else "news"
        print(
            banner(
                server.url,
                self.key,
                self.generated,
                self.demo,
                self.loop_name,
                token_recipe(self.config, topic),
                _workers_line(self.workers, self.config.metrics_port),
            ),
            flush=True,
        )


def _workers_refused(workers: int, config: Config) -> str | None:
    """Why ``--workers`` cannot be served with ``config``, or ``None``."""
    if workers < 1:
        return f"--workers must be at least 1, got {workers}"
    if workers > 1 and config.redis is None:
        return "--workers needs --redis: separate processes share events only through Redis"
    if workers > 1 and config.port == 0:
        return "--workers needs a fixed --port, not 0"
    return None


def _cannot_listen(exc: OSError) -> int:
    """A port in use (or not ours to bind) is one line and exit status 1."""
    print(f"rawsse: error: {exc.strerror or exc}", file=sys.stderr)
    return 1


def _workers_line(workers: int, metrics_port: int | None) -> str | None:
    if workers == 1:
        return None
    line = f"{workers} processes sharing events through Redis"
    if metrics_port:
        line += f"; metrics of worker i on port {metrics_port}+i"
    return line


if __name__ == "__main__":
    sys.exit(main())
