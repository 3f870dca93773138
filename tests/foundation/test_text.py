"""Characters a client may not put where people read: topics refuse them (over HTTP, in
every form a topic arrives), and the CLI's log formats escape them."""

from __future__ import annotations

import json
import logging
from urllib.parse import quote

import pytest

from rawsse.cli.logs import JsonFormatter, TextFormatter
from rawsse.errors import RequestError
from rawsse.topics import parse_topics
from tests.conftest import TEST_KEY, running_server
from tests.support.client import exchange, get

#: One of each kind refused: C0, DEL, C1 (NEL), the line and paragraph separators,
#: format characters (right-to-left override, zero-width space, BOM), a lone surrogate.
UNSAFE = ["\n", "\x7f", "\x85", "\x9b", "\u2028", "\u2029", "\u202e", "\u200b", "\ufeff", "\ud800"]


@pytest.mark.parametrize("char", UNSAFE, ids=[f"U+{ord(c):04X}" for c in UNSAFE])
def test_topics_with_unsafe_characters_are_refused(char: str) -> None:
    with pytest.raises(RequestError, match="control, format or line-separator"):
        parse_topics([f"orders{char}1"], 64)


def test_other_unicode_topics_are_kept() -> None:
    assert parse_topics(["café", "注文/1", "emoji-\U0001f600"], 64) == (
        "café",
        "注文/1",
        "emoji-\U0001f600",
    )


async def test_every_form_of_a_topic_refuses_them() -> None:
    """Query (percent-encoded UTF-8), form, JSON (a ``\\u`` escape, lone surrogates
    included) and a batch line: 400 with the reason, nothing published."""
    auth = f"Authorization: Bearer {TEST_KEY}"
    async with running_server() as server:
        for char in ("\u2028", "\x85", "\u202e"):
            answer = await exchange(server.port, get(f"/events?topic=a{quote(char)}b"))
            assert answer.status == 400 and b"line-separator" in answer.body
        for content_type, body in (
            ("application/x-www-form-urlencoded", f"topic=a{quote(chr(0x2029))}&data=x"),
            ("application/json", '{"topic": "a\\ud800", "data": "x"}'),
            ("application/json", '{"topic": ["ok", "a\\u0085b"], "data": "x"}'),
        ):
            raw = (
                f"POST /publish HTTP/1.1\r\nHost: t\r\n{auth}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n{body}"
            ).encode()
            answer = await exchange(server.port, raw, method=b"POST")
            assert answer.status == 400 and b"line-separator" in answer.body, answer.body
        lines = b'{"topic": "a\\ud800", "data": "x"}\n{"topic": "ok", "data": "y"}\n'
        raw = (
            f"POST /publish HTTP/1.1\r\nHost: t\r\n{auth}\r\n"
            f"Content-Type: application/x-ndjson\r\nContent-Length: {len(lines)}\r\n\r\n"
        ).encode() + lines
        answer = await exchange(server.port, raw, method=b"POST")
        first, second = (json.loads(line) for line in answer.body.splitlines())
        assert first["status"] == 400 and "id" in second
        assert server.hub.metrics.events_published == 1


def record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("rawsse.access", logging.INFO, __file__, 1, message, args, None)


def test_the_text_log_keeps_one_line_per_message() -> None:
    """A client's string (here as an argument, as log calls pass them) cannot start a
    forged line or reverse what follows; a traceback keeps its own lines."""
    formatter = TextFormatter()
    forged = "x\n2026-12-01 00:00:00 INFO rawsse.access: admin logged in\u2028\u202eevil\x85"
    line = formatter.format(record("stream closed topics=%s", forged))
    assert "\n" not in line and "\u2028" not in line and "\u202e" not in line
    assert line.endswith(
        "stream closed topics=x\\n2026-12-01 00:00:00 INFO rawsse.access: admin logged in"
        "\\u2028\\u202eevil\\x85"
    )
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        failed = record("error on %s", "café")
        failed.exc_info = sys.exc_info()
    text = formatter.format(failed)
    assert text.splitlines()[0].endswith("error on café") and "Traceback" in text


def test_the_json_log_escapes_them_and_means_the_same() -> None:
    message = "a\u2028b\x85c\u202ed\ud800é"
    line = JsonFormatter().format(record("%s", message))
    assert line.isascii() or set(line) - set(map(chr, range(128))) == {"é"}
    assert json.loads(line)["message"] == message
