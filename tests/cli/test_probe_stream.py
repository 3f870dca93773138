"""The probe reads what a path sends it within bounds, as a browser would parse it: a
compression bomb, an endless line and a lone CR in an id, each from a real socket."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import zlib
from collections.abc import Iterator, Sequence

from rawsse.cli.probe import MAX_LINE, MAX_STREAM_BYTES, _open_stream, _Stream, _wait
from tests.conftest import scaled


@contextlib.contextmanager
def canned_hub(head: bytes, parts: Sequence[bytes]) -> Iterator[str]:
    """A server that answers one request with ``head`` then each of ``parts`` in a
    send of its own, and keeps the connection open until the test ends."""
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            conn.sendall(head)
            for part in parts:
                with contextlib.suppress(OSError):
                    conn.sendall(part)
                time.sleep(0.02)  # pacing: each part its own read on the other side
            done.wait(scaled(10))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        done.set()
        thread.join(scaled(10))
        listener.close()


def head(*extra: bytes) -> bytes:
    lines = [b"HTTP/1.1 200 OK", b"Content-Type: text/event-stream", *extra, b"", b""]
    return b"\r\n".join(lines)


def read(url: str) -> _Stream:
    stream = _open_stream(url, "t", None, scaled(10))
    assert stream.status == 200
    _wait(stream, lambda: stream.ended_at is not None, scaled(10))
    return stream


def test_a_compression_bomb_is_read_no_further_than_the_bound() -> None:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = packer.compress(b"\0" * (64 * 1024 * 1024)) + packer.flush()
    assert len(bomb) < 100_000  # 64 MiB of zeros: a few dozen kilobytes
    with canned_hub(head(b"Content-Encoding: gzip"), [bomb]) as url:
        stream = read(url)
    assert stream.error == f"the stream inflates past {MAX_STREAM_BYTES} bytes"


def test_a_line_without_end_is_cut_off() -> None:
    with canned_hub(head(), [b"data: " + b"x" * (MAX_LINE + 10)]) as url:
        stream = read(url)
    assert stream.error == f"a line of the stream is over {MAX_LINE} bytes"


def test_lines_end_at_cr_lf_or_crlf_even_across_reads() -> None:
    """A lone CR ends the ``id`` line (its rest is a line of its own, a field the
    parser ignores), and a CRLF split between two reads is one line end, not two (a
    blank line would end the event early)."""
    parts = [b"id: a\rb\ndata: one\n\n", b"id: c\r", b"\ndata: two\r", b"\n\r", b"\n"]
    with canned_hub(head(), parts) as url:
        stream = _open_stream(url, "t", None, scaled(10))
        assert _wait(stream, lambda: len(stream.events) >= 2, scaled(10))
    assert [(event_id, data) for _, event_id, data in stream.events] == [
        ("a", "one"),
        ("c", "two"),
    ]
    assert stream.error is None
