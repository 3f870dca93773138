"""Mercure mode with the clients Mercure's users have: the browser's ``EventSource`` in
Chromium (a page on another origin, the token in the hub's ``mercureAuthorization``
cookie, ``withCredentials``) and the npm ``eventsource`` client under Node with the same
cookie, against updates published as ``symfony/mercure``'s ``Hub`` publishes them.
Private updates reach the granted client and not the anonymous one; a client whose
stream drops comes back with its ``Last-Event-ID`` and gets exactly what it missed."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt

from rawsse import Config, ServerThread
from rawsse.h1.mercure import HUB_PATH
from tests.conftest import scaled
from tests.e2e.test_browser import app_origin, ms
from tests.e2e.test_interop import INTEROP, require_npm_eventsource
from tests.support.browser import chromium

SECRET = "!ChangeThisMercureHubJWTSecretKey!"
BOOKS = "https://example.com/books/{id}"

#: The page's recorder: what its EventSource sees, opened with the hub's cookie.
RECORDER = """
window.seen = {open: 0, events: []};
window.source = new EventSource(%r, {withCredentials: %s});
source.onopen = () => { seen.open++; };
source.onmessage = e => seen.events.push([e.data, e.lastEventId]);
null;  // evaluated last: Playwright would call a function, so not the handler
"""


def token(**grants: list[str]) -> str:
    claims = {"mercure": grants, "exp": int(time.time() + 3600)}
    return str(jwt.encode(claims, SECRET, algorithm="HS256"))


def publish(hub: str, topic: str, data: str, *, private: bool = False) -> str:
    """A form POSTed with a Bearer token, as symfony/mercure's Hub sends it."""
    fields = [("topic", topic), ("data", data)] + ([("private", "on")] if private else [])
    answer = httpx.post(
        hub + HUB_PATH,
        content=urlencode(fields),
        headers={
            "Authorization": f"Bearer {token(publish=['*'])}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        timeout=scaled(5),
    )
    assert answer.status_code == 200, answer.text
    return answer.text


def mercure_server(**changes: Any) -> ServerThread:
    return ServerThread(
        config=Config(port=0, mercure=True, jwt_secret=SECRET, retry=300, **changes)
    )


def test_event_source_in_chromium_with_the_mercure_cookie() -> None:
    reader = token(subscribe=[BOOKS])
    with app_origin() as app, mercure_server(cors_origins=(app,)) as server, chromium() as browser:
        stream = f"{server.url}{HUB_PATH}?" + urlencode({"topic": BOOKS})
        context = browser.new_context()
        context.add_cookies([{"name": "mercureAuthorization", "value": reader, "url": server.url}])
        granted = context.new_page()
        granted.goto(f"{app}/")
        granted.evaluate(RECORDER % (stream, "true"))
        anonymous = browser.new_page()  # another context: no cookie
        anonymous.goto(f"{app}/")
        anonymous.evaluate(RECORDER % (stream, "false"))
        for page in (granted, anonymous):
            page.wait_for_function("seen.open === 1", timeout=ms(10))
        one = publish(server.url, "https://example.com/books/1", "public")
        secret = publish(server.url, "https://example.com/books/2", "SECRET", private=True)
        other = publish(server.url, "https://example.com/authors/1", "not a book")
        granted.wait_for_function("seen.events.length === 2", timeout=ms(10))
        anonymous.wait_for_function("seen.events.length === 1", timeout=ms(10))
        assert granted.evaluate("seen.events") == [["public", one], ["SECRET", secret]]
        assert anonymous.evaluate("seen.events") == [["public", one]]
        assert other  # published, and read by neither
        # The stream drops; updates are published before the browser is back; it
        # resumes with its Last-Event-ID (and its cookie) and gets exactly those.
        missed = server.call(
            lambda: [
                server.hub.end_streams(None, "test"),
                server.hub.publish("https://example.com/books/3", "missed"),
                server.hub.publish("https://example.com/books/4", "missed SECRET", private=True),
            ][1:]
        )
        granted.wait_for_function("seen.open === 2 && seen.events.length === 4", timeout=ms(10))
        anonymous.wait_for_function("seen.open === 2 && seen.events.length === 2", timeout=ms(10))
        assert granted.evaluate("seen.events")[2:] == [
            ["missed", missed[0]],
            ["missed SECRET", missed[1]],
        ]
        assert anonymous.evaluate("seen.events")[1:] == [["missed", missed[0]]]


def test_the_npm_eventsource_client_with_the_mercure_cookie() -> None:
    node = require_npm_eventsource()
    cookie = "mercureAuthorization=" + token(subscribe=["https://example.com/books/1"])
    with mercure_server() as server:
        url = f"{server.url}{HUB_PATH}?" + urlencode({"topic": BOOKS})
        reader = subprocess.Popen(
            [node, str(INTEROP / "mercure.mjs"), url, "3", cookie],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert reader.stderr is not None
            assert reader.stderr.readline().strip() == "open"
            ids = [
                publish(server.url, "https://example.com/books/1", "public"),
                publish(server.url, "https://example.com/books/1", "granted", private=True),
                publish(server.url, "https://example.com/books/2", "not granted", private=True),
                publish(server.url, "https://example.com/books/2", "public two"),
            ]
            out, _ = reader.communicate(timeout=scaled(15))
        finally:
            if reader.poll() is None:
                reader.kill()
        events = [json.loads(line) for line in out.splitlines()]
        assert [(e["data"], e["id"]) for e in events] == [
            ("public", ids[0]),
            ("granted", ids[1]),
            ("public two", ids[3]),
        ]
