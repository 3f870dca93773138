"""``python -m rawsse probe``: checks the path from a hub to browsers, as a browser sees it.

It subscribes through the public URL (through the proxy or CDN, asking for compression
as browsers do), publishes straight to the hub, and checks that:

1. a response head arrives at once (a proxy that buffers the response holds it);
2. events arrive one by one, promptly, not held back or in bursts (proxy buffering,
   compression that waits for a full buffer; compression that sends each event at once
   passes);
3. the stream survives an idle period longer than common proxy timeouts;
4. a reconnection with ``Last-Event-ID`` gets exactly what was missed;
5. the hub sees the client's own address, not the proxy's (a proxy that sends no
   ``X-Forwarded-For``, or that the hub does not trust).

Each failure comes with the configuration line that fixes it; the exit status is 0
when every check passes, 1 otherwise. Standard library only (``http.client``), so that
it runs wherever rawsse does.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import secrets
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["Finding", "main", "run_probe"]

#: Events published for the delivery check, and the pause between them: long enough
#: that events held back and released together are told from events on time.
EVENTS = 5
SPACING = 0.3

#: An event that has not arrived this long after its publish counts as held back.
LATE = 2.0

#: A response head that has not arrived this long after the request is held by
#: something between (a hub answers a stream at once).
HEAD_WAIT = 5.0

#: What the probe reads of a stream at most, decompressed, and the longest line: a
#: few events of its own and comments are far less, and a path that sends more (a
#: compressed bomb, a stream without line ends) is not to be read into memory.
MAX_STREAM_BYTES = 4 * 1024 * 1024
MAX_LINE = 64 * 1024

#: What ends a line in an event stream: CRLF, LF or CR alone (WHATWG HTML, "Server-sent
#: events", interpreting an event stream).
_LINE_END = re.compile(b"\r\n|\r|\n")

_HOLDING_PROXY_FIX = (
    "proxy_buffering off;  and no  proxy_ignore_headers X-Accel-Buffering;  (nginx, in the "
    "location of /events; rawsse's X-Accel-Buffering: no turns buffering off by itself)"
)


@dataclass
class Finding:
    """One check's result: passed, what was seen, and the fix when it failed."""

    check: str
    passed: bool
    seen: str
    fix: str = ""


@dataclass
class _Stream:
    """One event stream read on a thread: its headers, and its events as they come."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    events: list[tuple[float, str, str]] = field(default_factory=list)  # (time, id, data)
    comments: list[str] = field(default_factory=list)
    ended_at: float | None = None
    error: str | None = None
    sent: bool = False  # the request went out (a connection was made)
    changed: threading.Condition = field(default_factory=threading.Condition)


def _connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    return cls(parts.hostname or "", parts.port, timeout=timeout), parts.path.rstrip("/")


def _open_stream(url: str, topic: str, last_event_id: str | None, timeout: float) -> _Stream:
    """Subscribe on a thread of its own; return at once (the stream fills as it reads)."""
    stream = _Stream()
    ready = threading.Event()

    def read() -> None:
        try:
            conn, prefix = _connection(url, timeout)
            headers = {
                "Accept": "text/event-stream",
                "Accept-Encoding": "gzip, deflate",  # as browsers ask
                "Cache-Control": "no-cache",
            }
            if last_event_id is not None:
                headers["Last-Event-ID"] = last_event_id
            conn.request("GET", f"{prefix}/events?topic={topic}&probe=1", headers=headers)
            stream.sent = True
            response = conn.getresponse()
            stream.status = response.status
            stream.headers = {k.lower(): v for k, v in response.getheaders()}
            ready.set()
            _read_events(response, stream)
        except (OSError, ValueError, http.client.HTTPException, zlib.error) as exc:
            stream.error = str(exc) or type(exc).__name__
        finally:
            ready.set()
            with stream.changed:
                stream.ended_at = time.monotonic()
                stream.changed.notify_all()

    threading.Thread(target=read, daemon=True).start()
    ready.wait(min(timeout, HEAD_WAIT))
    return stream


def _read_events(response: http.client.HTTPResponse, stream: _Stream) -> None:
    """Parse events as they come, within ``MAX_STREAM_BYTES`` and ``MAX_LINE``.

    Raises:
        ValueError: the stream is larger, or has a longer line.
    """
    encoding = stream.headers.get("content-encoding", "")
    inflate = zlib.decompressobj(zlib.MAX_WBITS | 32) if encoding in ("gzip", "deflate") else None
    left = MAX_STREAM_BYTES
    pending = b""
    event_id, data = "", []
    while True:
        chunk = response.read1(65536)
        if not chunk:
            return
        if inflate is not None:
            chunk = inflate.decompress(chunk, left + 1)
            if inflate.unconsumed_tail:
                raise ValueError(f"the stream inflates past {MAX_STREAM_BYTES} bytes")
        left -= len(chunk)
        if left < 0:
            raise ValueError(f"the stream sent over {MAX_STREAM_BYTES} bytes")
        pending += chunk
        held_cr = pending.endswith(b"\r")  # its LF may come in the next read
        *lines, pending = _LINE_END.split(pending[:-1] if held_cr else pending)
        if held_cr:
            pending += b"\r"
        if len(pending) > MAX_LINE:
            raise ValueError(f"a line of the stream is over {MAX_LINE} bytes")
        for raw in lines:
            line = raw.decode("utf-8", "replace")
            if line.startswith(":"):
                with stream.changed:
                    stream.comments.append(line[1:].strip())
            elif line.startswith("id:"):
                event_id = line[3:].removeprefix(" ")
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            elif not line and data:
                with stream.changed:
                    stream.events.append((time.monotonic(), event_id, "\n".join(data)))
                    stream.changed.notify_all()
                data = []


def _wait(stream: _Stream, predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    with stream.changed:
        while not predicate():  # type: ignore[operator]
            left = deadline - time.monotonic()
            if left <= 0 or stream.ended_at is not None:
                return bool(predicate())  # type: ignore[operator]
            stream.changed.wait(left)
        return True


def _publish(url: str, key: str, topic: str, data: str, timeout: float) -> str:
    conn, prefix = _connection(url, timeout)
    try:
        body = json.dumps({"topic": topic, "data": data})
        conn.request(
            "POST",
            f"{prefix}/publish",
            body=body,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        text = response.read().decode("utf-8", "replace").strip()
        if response.status != 200:
            raise RuntimeError(f"publish answered {response.status}: {text}")
        return text
    finally:
        conn.close()


def _delivery(stream: _Stream, publish: str, key: str, topic: str, timeout: float) -> Finding:
    sent: list[float] = []
    for n in range(EVENTS):
        sent.append(time.monotonic())
        _publish(publish, key, topic, f"probe {n}", timeout)
        time.sleep(SPACING)
    _wait(stream, lambda: len(stream.events) >= EVENTS, LATE)
    arrived = [at for at, _, data in stream.events if data.startswith("probe ")]
    compressed = stream.headers.get("content-encoding")
    fixes = ["proxy_buffering off;  (nginx, in the location of /events)"]
    if compressed:
        fixes.insert(
            0, f"gzip off;  (the stream came {compressed}-compressed, which holds events back)"
        )
    if len(arrived) < EVENTS:
        return Finding(
            "events arrive as published",
            False,
            f"{len(arrived)} of {EVENTS} events arrived within {LATE:g} s of their publish",
            "; ".join(fixes),
        )
    delays = [(at - at_sent) * 1000 for at, at_sent in zip(arrived, sent, strict=False)]
    spread = arrived[-1] - arrived[0]
    # Compression that holds events back shows here (late or bunched); compression
    # that flushes each event is no fault, and saves bandwidth.
    if spread < SPACING * (EVENTS - 1) / 2:
        return Finding(
            "events arrive as published",
            False,
            f"{EVENTS} events published {SPACING:g} s apart arrived within {spread * 1000:.0f} ms "
            "of each other (held back, then released together)",
            "; ".join(fixes),
        )
    seen = "delays " + ", ".join(f"{d:.0f}" for d in delays) + " ms"
    if compressed:
        seen += f" ({compressed}-compressed, each event flushed at once)"
    return Finding("events arrive as published", True, seen)


def _idle(
    stream: _Stream, publish: str, key: str, topic: str, idle: float, timeout: float
) -> Finding:
    start = time.monotonic()
    ended = _wait(stream, lambda: stream.ended_at is not None, idle)
    if ended:
        assert stream.ended_at is not None
        after = stream.ended_at - start
        seen = "the stream ended " + (
            f"after {after:.1f} s without events" if after >= 0 else "before the idle period"
        )
        if stream.error:
            seen += f" ({stream.error})"
        if after < 0 and stream.error:  # it was cut short, not timed out
            fix = "something on the path sends what no hub sends: the error says what"
        else:
            fix = (
                "proxy_read_timeout 1h;  (nginx, in the location of /events: longer than "
                "rawsse's --heartbeat, 15 s)"
            )
        return Finding("the stream survives an idle period", False, seen, fix)
    count = len(stream.events)
    _publish(publish, key, topic, "after idle", timeout)
    arrived = _wait(stream, lambda: len(stream.events) > count, LATE)
    return Finding(
        "the stream survives an idle period",
        arrived,
        f"open after {idle:g} s idle" + ("" if arrived else ", but the next event did not arrive"),
        "" if arrived else "proxy_read_timeout 1h;  (nginx, in the location of /events)",
    )


def _replay(
    public: str, publish: str, key: str, topic: str, last_id: str, timeout: float
) -> Finding:
    missed = [_publish(publish, key, topic, f"missed {n}", timeout) for n in range(2)]
    stream = _open_stream(public, topic, last_id, timeout)
    _wait(stream, lambda: len(stream.events) >= 2, LATE)
    got = [event_id for _, event_id, _ in stream.events[:2]]
    passed = got == missed
    if passed:
        seen = f"reconnected after {last_id}: replayed {', '.join(got)}, published while away"
    else:
        seen = f"reconnected after {last_id}: got {got or 'nothing'}, expected {missed}"
    return Finding(
        "Last-Event-ID replay through the path",
        passed,
        seen,
        ""
        if passed
        else "the proxy must pass the Last-Event-ID header and not cache /events "
        "(nginx: proxy_cache off;)",
    )


def _address(stream: _Stream, *, proxied: bool) -> Finding:
    greeting = next((c for c in stream.comments if c.startswith("rawsse-probe ")), None)
    if greeting is None:
        return Finding(
            "the hub sees the client's address", False, "the hub did not say (rawsse < 0.1?)"
        )
    seen = dict(re.findall(r"(\w+)=(\S+)", greeting))
    client = seen.get("client", "?")
    if seen.get("forwarded") == "yes" and seen.get("trusted") == "no":
        return Finding(
            "the hub sees the client's address",
            False,
            f"the hub sees {client}, the proxy's address: it does not trust the proxy",
            f"start rawsse with --trusted-proxy {client}",
        )
    if proxied and seen.get("forwarded") == "no":
        return Finding(
            "the hub sees the client's address",
            False,
            f"the hub sees {client}: the proxy in front of it sends no X-Forwarded-For, so "
            "every client looks like the proxy (one address for every limit)",
            "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;  (nginx, in each "
            "location that reaches the hub)",
        )
    return Finding("the hub sees the client's address", True, f"the hub sees {client}")


def run_probe(
    public: str,
    publish: str,
    key: str,
    *,
    idle: float,
    progress: Callable[[str], None] = lambda _line: None,
) -> list[Finding]:
    """Run every check; their findings, in order. ``progress`` is told what is being
    checked before each check that takes a while."""
    timeout = idle + 30
    topic = "rawsse-probe-" + secrets.token_hex(4)
    stream = _open_stream(public, topic, None, timeout)
    opening = "a stream opens through the public URL"
    if stream.status == 0 and stream.error is None and stream.sent:
        return [
            Finding(
                opening,
                False,
                f"the request went out but no response head came within {HEAD_WAIT:g} s: "
                "something between holds the response back (a proxy buffering it, or "
                "compressing it until a buffer fills)",
                _HOLDING_PROXY_FIX + "; gzip off; or compression that flushes each event",
            )
        ]
    if stream.status != 200 or not stream.headers.get("content-type", "").startswith(
        "text/event-stream"
    ):
        return [
            Finding(
                opening,
                False,
                stream.error or f"status {stream.status}, {stream.headers.get('content-type')}",
                "the public URL must reach the hub's /events",
            )
        ]
    # The delivery check first: a compressed stream brings the hub's greeting only
    # once later bytes push it out of the compressor.
    progress(f"publishing {EVENTS} events {SPACING:g} s apart")
    findings = [_delivery(stream, publish, key, topic, timeout)]
    findings.append(_address(stream, proxied=_origin(public) != _origin(publish)))
    progress(f"waiting {idle:g} s without events (proxies close idle streams)")
    findings.append(_idle(stream, publish, key, topic, idle, timeout))
    last_id = stream.events[-1][1] if stream.events else ""
    if last_id:
        findings.append(_replay(public, publish, key, topic, last_id, timeout))
    return findings


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port


def main(argv: Sequence[str]) -> int:
    """The ``probe`` command: print the findings; 0 when all passed, else 1."""
    parser = argparse.ArgumentParser(
        prog="python -m rawsse probe",
        description="Check the path from a hub to browsers: events on time, not buffered "
        "or compressed, a stream that survives idle periods, replay, client addresses.",
    )
    parser.add_argument("--public", required=True, metavar="URL",
                        help="the hub as browsers reach it (scheme://host:port[/prefix])")  # fmt: skip
    parser.add_argument("--publish", required=True, metavar="URL",
                        help="the hub as publishers reach it")  # fmt: skip
    key = os.environ.get("RAWSSE_PUBLISH_KEY")
    parser.add_argument("--key", required=key is None, default=key,
                        help="a publish key or token (default: $RAWSSE_PUBLISH_KEY)")  # fmt: skip
    parser.add_argument("--idle", type=float, default=75.0,
                        help="seconds of the idle check (default %(default)s, longer than "
                        "nginx's 60 s proxy_read_timeout)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        findings = run_probe(
            args.public, args.publish, args.key, idle=args.idle, progress=_print_progress
        )
    except (OSError, RuntimeError, http.client.HTTPException) as exc:
        print(f"rawsse probe: {exc}")
        return 1
    for finding in findings:
        print(f"{'ok  ' if finding.passed else 'FAIL'} {finding.check}: {finding.seen}")
        if not finding.passed and finding.fix:
            print(f"     fix: {finding.fix}")
    return 0 if all(finding.passed for finding in findings) else 1


def _print_progress(line: str) -> None:
    print(f"...  {line}", flush=True)
