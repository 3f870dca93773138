"""``python -m rawsse``: flags, environment variables, banner, demo page and producer."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from httpx_sse import connect_sse

from rawsse.cli.main import build_parser
from tests.conftest import require_program, scaled
from tests.support.cli import start_hub

FLAGS = [
    "--host",
    "--port",
    "--history",
    "--max-buffer",
    "--slow-timeout",
    "--heartbeat",
    "--retry",
    "--shutdown-timeout",
    "--max-event-size",
    "--no-demo",
    "--log-level",
    "--publish-key",
    "--loop",
    "--jwt-secret",
    "--jwt-public-key",
    "--jwt-audience",
    "--jwt-issuer",
    "--subscribe-auth",
    "--allow-query-token",
    "--conn-rate",
    "--conn-burst",
    "--max-connections-per-address",
    "--max-streams-per-address",
    "--max-streams",
    "--publish-rate",
    "--publish-burst",
    "--limit-retry",
    "--trusted-proxy",
    "--cors-origin",
    "--dead-peer-timeout",
    "--flush-delay",
    "--write-high-water",
    "--request-timeout",
    "--keepalive-timeout",
    "--max-header-size",
    "--max-topics",
    "--shutdown-retry-window",
    "--token-expiry-notice",
]


def test_help_explains_every_flag() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rawsse", "--help"], capture_output=True, text=True, check=True
    )
    for flag in FLAGS:
        assert flag in result.stdout
    for unit in ("seconds", "bytes", "milliseconds"):
        assert unit in result.stdout


def test_environment_variables_set_defaults_and_flags_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAWSSE_HISTORY", "7")
    monkeypatch.setenv("RAWSSE_HEARTBEAT", "2.5")
    monkeypatch.setenv("RAWSSE_NO_DEMO", "1")
    args = build_parser().parse_args([])
    assert (args.history, args.heartbeat, args.no_demo) == (7, 2.5, True)
    assert build_parser().parse_args(["--history", "9"]).history == 9
    # Lists: comma-separated in the variable; the flag (repeatable) replaces it.
    from rawsse.cli.main import _env_list, _split_commas

    monkeypatch.setenv("RAWSSE_TRUSTED_PROXY", "10.0.0.0/8, 127.0.0.1")
    assert _env_list("TRUSTED_PROXY") == ["10.0.0.0/8", "127.0.0.1"]
    args = build_parser().parse_args(["--trusted-proxy", "::1", "--trusted-proxy", "a,b"])
    assert _split_commas(args.trusted_proxy) == ("::1", "a", "b")


def test_mercure_s_own_variables_give_its_keys_and_rawsse_s_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MERCURE_PUBLISHER_JWT_KEY", "from-mercure-publisher")
    monkeypatch.setenv("MERCURE_SUBSCRIBER_JWT_KEY", "from-mercure-subscriber")
    args = build_parser().parse_args([])
    assert args.publisher_jwt_key == "from-mercure-publisher"
    assert args.subscriber_jwt_key == "from-mercure-subscriber"
    monkeypatch.setenv("RAWSSE_PUBLISHER_JWT_KEY", "from-rawsse")
    assert build_parser().parse_args([]).publisher_jwt_key == "from-rawsse"
    flagged = build_parser().parse_args(["--publisher-jwt-key", "from-the-flag"])
    assert flagged.publisher_jwt_key == "from-the-flag"


def test_the_flush_delay_is_adaptive_unless_a_number_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert build_parser().parse_args([]).flush_delay is None
    assert build_parser().parse_args(["--flush-delay", "auto"]).flush_delay is None
    assert build_parser().parse_args(["--flush-delay", "0"]).flush_delay == 0.0
    monkeypatch.setenv("RAWSSE_FLUSH_DELAY", "0.005")
    assert build_parser().parse_args([]).flush_delay == 0.005
    monkeypatch.setenv("RAWSSE_FLUSH_DELAY", "AUTO")
    assert build_parser().parse_args([]).flush_delay is None


def test_every_config_field_has_a_flag_and_a_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI is derived from Config: each field has a --flag and a RAWSSE_* variable,
    both reaching the Config that main() builds; and the token command is in --help."""
    from rawsse.cli.main import config_values
    from rawsse.config import Config

    helped = build_parser().format_help()
    assert "python -m rawsse token" in helped
    samples = {"int": "7", "float": "2.5", "str": "x"}
    for field in dataclasses.fields(Config):
        flag = field.metadata.get("flag", field.name.replace("_", "-"))
        assert f"--{flag}" in helped, flag
        variable = "RAWSSE_" + flag.upper().replace("-", "_")
        kind = str(field.type)
        if kind == "bool":
            monkeypatch.setenv(variable, "1")
            expected: object = True
        elif kind.startswith("tuple"):
            monkeypatch.setenv(variable, "a, b")
            expected = ("a", "b")
        elif field.metadata.get("file"):
            continue  # read from a file: test_bad_values covers the flag
        else:
            base = kind.split(" |")[0]
            monkeypatch.setenv(variable, samples[base])
            expected = {"int": 7, "float": 2.5, "str": "x"}[base]
        assert config_values(build_parser().parse_args([]))[field.name] == expected, field.name
        monkeypatch.delenv(variable)


def test_bad_values_are_refused_with_the_field_named() -> None:
    for args, env, word in [
        (["--port", "70000"], {}, "port"),
        (["--history", "-1"], {}, "history"),
        ([], {"RAWSSE_SLOW_TIMEOUT": "soon"}, "slow-timeout"),
        (["--loop", "tokio"], {}, "loop"),
        (["--trusted-proxy", "not-an-address"], {}, "trusted_proxies"),
        (["--cors-origin", "https://a.example/"], {}, "cors_origins"),
        (["--jwt-secret", "short"], {}, "32 bytes"),
        (["--subscribe-auth"], {}, "subscribe_auth"),
        (["--jwt-public-key", "/nonexistent.pem"], {}, "jwt-public-key"),
        (["--conn-rate", "-1"], {}, "conn_rate"),
        (["--flush-delay", "-1"], {}, "flush_delay"),
        (["--flush-delay", "soon"], {}, "neither a number nor 'auto'"),
        (["--redis", "http://127.0.0.1:6379"], {}, "redis"),
        (["--redis-timeout", "0"], {}, "redis_timeout"),
        (["--redis-prefix", ""], {}, "redis_prefix"),
        (["--workers", "0"], {}, "--workers"),
        (["--workers", "2", "--redis", "redis://127.0.0.1:1/0", "--port", "0"], {}, "fixed --port"),
    ]:
        result = subprocess.run(
            [sys.executable, "-m", "rawsse", *args],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            timeout=scaled(30),
        )
        assert result.returncode == 2, result
        assert word in result.stderr


@pytest.mark.parametrize("workers", [[], ["--workers", "2", "--redis", "redis://127.0.0.1:1/0"]])
def test_a_port_in_use_is_one_line_and_status_1(workers: list[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "rawsse", "--port", str(port), *workers],
            capture_output=True,
            text=True,
            timeout=scaled(30),
        )
    assert result.returncode == 1
    assert (
        result.stderr
        == f"rawsse: error: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    )


@pytest.mark.parametrize(
    ("module", "argv", "extra"),
    [
        ("redis", ["--redis", "redis://127.0.0.1:1/0"], "redis"),
        ("jwt", ["--jwt-secret", "x" * 32, "--subscribe-auth"], "jwt"),
        ("re2", ["--mercure", "--jwt-secret", "x" * 32], "mercure"),
    ],
)
def test_a_missing_extra_says_how_to_install_it(module: str, argv: list[str], extra: str) -> None:
    """As on a machine without the extra's package: its import is blocked. The hint
    names both the package index's form and a checkout's."""
    script = (
        f"import sys; sys.modules[{module!r}] = None; from rawsse.cli.main import main; "
        f"sys.exit(main({argv!r}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=scaled(30)
    )
    assert result.returncode == 2, result.stderr
    assert f"pip install 'rawsse[{extra}]' (from a checkout: pip install '.[{extra}]')" in (
        result.stderr
    )


def test_banner_commands_work_and_the_demo_ticks() -> None:
    hub = start_hub()
    try:
        assert "demo page:" in hub.banner and "(generated;" in hub.banner
        page = httpx.get(hub.url + "/")
        assert page.status_code == 200 and b"EventSource" in page.content
        # The subscribe URL shows the demo topic ticking.
        with (
            httpx.Client(timeout=scaled(10)) as client,
            connect_sse(client, "GET", f"{hub.url}/events?topic=demo") as source,
        ):
            first = next(iter(source.iter_sse()))
            assert first.event == "tick" and '"sent_ms"' in first.data
        # The printed curl publish command, run as printed, answers an event id.
        publish = next(line for line in hub.banner.splitlines() if "publish:" in line)
        command = shlex.split(publish.split("publish:", 1)[1])
        command[0] = require_program("curl")
        result = subprocess.run(
            [*command, "-s"], capture_output=True, text=True, timeout=scaled(10)
        )
        assert result.returncode == 0 and result.stdout.strip().count("-") == 1, result
    finally:
        status, err = hub.stop(signal.SIGINT)
    assert status == 0, err


@pytest.mark.parametrize("given_by", ["environment", "flag"])
def test_a_given_key_is_never_printed_and_the_banner_command_reads_it(given_by: str) -> None:
    """Standard output is the journal under systemd: a key that was given (not made up
    by the hub) stays out of it; the banner's publish command takes it from
    RAWSSE_PUBLISH_KEY, and works run as printed with that set."""
    key = "a-given-key-nobody-should-see"
    if given_by == "environment":
        hub = start_hub("--no-demo", env={"RAWSSE_PUBLISH_KEY": key})
    else:
        hub = start_hub("--no-demo", "--publish-key", key)
    try:
        assert key not in hub.banner and "generated" not in hub.banner
        assert "publish key: the one given" in hub.banner
        publish = next(line for line in hub.banner.splitlines() if "publish:" in line)
        result = subprocess.run(
            ["bash", "-c", publish.split("publish:", 1)[1] + " -s"],
            capture_output=True,
            text=True,
            env={**os.environ, "RAWSSE_PUBLISH_KEY": key},
            timeout=scaled(10),
        )
        assert result.returncode == 0 and result.stdout.strip().count("-") == 1, result
    finally:
        status, err = hub.stop()
    assert status == 0, err
    assert key not in err


def test_key_from_the_environment_and_no_demo() -> None:
    hub = start_hub("--no-demo", env={"RAWSSE_PUBLISH_KEY": "from-env"})
    try:
        assert hub.key == "from-env" and "generated" not in hub.banner
        assert httpx.get(hub.url + "/").status_code == 404
        answer = httpx.post(
            hub.url + "/publish",
            data={"topic": "news", "data": "x"},
            headers={"Authorization": "Bearer from-env"},
        )
        assert answer.status_code == 200
    finally:
        status, err = hub.stop()
    assert status == 0, err


def test_json_logs() -> None:
    hub = start_hub("--log-format", "json", "--no-demo")
    try:
        assert httpx.get(hub.url + "/healthz").status_code == 200
    finally:
        status, err = hub.stop()
    assert status == 0, err
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    access = [entry for entry in lines if entry["logger"] == "rawsse.access"]
    assert any('"GET /healthz HTTP/1.1" 200' in entry["message"] for entry in access)


@pytest.mark.parametrize("secret_in", ["environment", "flag"])
def test_subscribe_auth_from_the_command_line_with_a_minted_token(secret_in: str) -> None:
    """The banner's token line, run as printed (the secret given as a flag or in the
    environment), then curl with the token: a stream; without it: 401."""
    curl = require_program("curl")
    secret = "a-cli-secret-that-is-long-enough-for-hs256"
    if secret_in == "environment":
        hub = start_hub("--no-demo", "--subscribe-auth", env={"RAWSSE_JWT_SECRET": secret})
    else:
        hub = start_hub("--no-demo", "--subscribe-auth", "--jwt-secret", secret)
    try:
        (recipe,) = re.findall(r"token:\s+(TOKEN=.*)", hub.banner)
        assert "--subscribe news" in recipe
        # The secret is never printed, however it was given: the recipe reads it from
        # the environment, and says so.
        assert secret not in hub.banner
        assert "reads the hub's secret from RAWSSE_JWT_SECRET" in hub.banner
        environment = {k: v for k, v in os.environ.items() if k != "RAWSSE_JWT_SECRET"}
        environment["RAWSSE_JWT_SECRET"] = secret
        environment["PATH"] = f"{Path(sys.executable).parent}:{environment['PATH']}"
        minted = subprocess.run(
            [
                "bash",
                "-c",
                f'{recipe.replace("python ", sys.executable + " ", 1)} && echo "$TOKEN"',
            ],
            capture_output=True,
            text=True,
            env=environment,
            check=True,
        )
        token = minted.stdout.strip()
        refused = subprocess.run(
            [curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", f"{hub.url}/events?topic=news"],
            capture_output=True,
            text=True,
            timeout=scaled(10),
        )
        assert refused.stdout == "401"
        with subprocess.Popen(
            [curl, "-sN", "-H", f"Authorization: Bearer {token}", f"{hub.url}/events?topic=news"],
            stdout=subprocess.PIPE,
            text=True,
        ) as reader:
            try:
                deadline = time.monotonic() + scaled(10)
                while "rawsse_connected_clients 1\n" not in httpx.get(hub.url + "/metrics").text:
                    assert time.monotonic() < deadline, "curl never subscribed"
                    time.sleep(0.05)
                answer = httpx.post(
                    hub.url + "/publish",
                    data={"topic": "news", "data": "for token holders"},
                    headers={"Authorization": f"Bearer {hub.key}"},
                )
                assert answer.status_code == 200
                assert reader.stdout is not None
                assert reader.stdout.readline() == f"id: {answer.text.strip()}\n"
                assert reader.stdout.readline() == "data: for token holders\n"
            finally:
                reader.terminate()
    finally:
        status, err = hub.stop()
    assert status == 0, err
