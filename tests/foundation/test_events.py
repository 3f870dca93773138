"""The wire format, table-driven and property-based, with no I/O at all."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rawsse.errors import InvalidEvent
from rawsse.events import (
    CHUNKED_END,
    HEARTBEAT,
    MAX_RETRY,
    check_event_name,
    chunk,
    encode_checked,
    encode_comment,
    encode_event,
    encode_retry,
)
from tests.support.sse_parser import dechunk, parse


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"data": "hello"}, b"data: hello\n\n"),
        ({"data": ""}, b"data: \n\n"),
        ({"data": "a\nb"}, b"data: a\ndata: b\n\n"),
        ({"data": "a\r\nb"}, b"data: a\ndata: b\n\n"),
        ({"data": "a\rb"}, b"data: a\ndata: b\n\n"),
        ({"data": "a\n"}, b"data: a\ndata: \n\n"),
        ({"data": " lead"}, b"data:  lead\n\n"),
        ({"data": "x", "event": "tick"}, b"event: tick\ndata: x\n\n"),
        ({"data": "x", "id": "0"}, b"id: 0\ndata: x\n\n"),
        ({"data": "x", "id": ""}, b"id: \ndata: x\n\n"),
        ({"data": "x", "retry": 2500}, b"retry: 2500\ndata: x\n\n"),
        (
            {"data": "x", "event": "e", "id": "7", "retry": 0},
            b"event: e\nid: 7\nretry: 0\ndata: x\n\n",
        ),
        ({"data": "héllo ☃"}, "data: héllo ☃\n\n".encode()),
        ({"data": "nul\0inside"}, b"data: nul\0inside\n\n"),
    ],
)
def test_encode_event_bytes(kwargs: dict[str, object], expected: bytes) -> None:
    assert encode_event(**kwargs) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["id", "event"])
@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\r\nb", "a\0b", "\n", "x\n\ndata: injected"])
def test_field_injection_is_refused(field: str, bad: str) -> None:
    with pytest.raises(InvalidEvent, match="CR, LF or NUL"):
        encode_event("data", **{field: bad})  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [-1, True, 1.5, "10"])
def test_retry_must_be_a_non_negative_int(bad: object) -> None:
    with pytest.raises(InvalidEvent, match="retry"):
        encode_event("x", retry=bad)  # type: ignore[arg-type]


def test_retry_up_to_what_a_browser_can_wait() -> None:
    assert encode_retry(MAX_RETRY) == b"retry: 2147483647\n\n"
    with pytest.raises(InvalidEvent, match="from 0 to 2147483647"):
        encode_event("x", retry=MAX_RETRY + 1)
    with pytest.raises(InvalidEvent):
        encode_retry(10**5000)


@pytest.mark.parametrize("name", ["rawsse-lost", "rawsse-auth-expiring", "rawsse-"])
def test_the_hubs_own_event_names_are_reserved(name: str) -> None:
    with pytest.raises(InvalidEvent, match="reserved"):
        check_event_name(name)


@pytest.mark.parametrize("name", ["tick", "rawsse", "RAWSSE-lost", "my-rawsse-lost"])
def test_other_event_names_are_the_publishers(name: str) -> None:
    assert check_event_name(name) == name


def test_unencodable_text_is_refused() -> None:
    with pytest.raises(InvalidEvent, match="UTF-8"):
        encode_event("lone surrogate \ud800")


def test_constants_and_helpers() -> None:
    assert HEARTBEAT == b":\n\n"
    assert CHUNKED_END == b"0\r\n\r\n"
    assert encode_retry(3000) == b"retry: 3000\n\n"
    assert encode_comment("a\nb") == b":a\n:b\n\n"
    assert chunk(b"hello") == b"5\r\nhello\r\n"
    assert chunk(b"x" * 26) == b"1a\r\n" + b"x" * 26 + b"\r\n"
    parsed = parse((encode_comment("hi") + encode_retry(5) + HEARTBEAT).decode())
    assert parsed.events == [] and parsed.retry == 5 and parsed.comments == 2


def normalised(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


field_text = st.text().filter(lambda s: not any(c in s for c in "\r\n\0"))


@given(data=st.text(), event=st.none() | field_text.filter(bool), id=st.none() | field_text)
def test_a_whatwg_parser_reads_back_what_was_encoded(
    data: str, event: str | None, id: str | None
) -> None:
    encoded = encode_event(data, event=event, id=id)
    parsed = parse(encoded.decode("utf-8"))
    assert len(parsed.events) == 1
    (got,) = parsed.events
    assert got.data == normalised(data)
    assert got.type == (event if event is not None else "message")
    assert got.last_event_id == (id if id is not None else "")


@given(st.lists(st.text(), min_size=1, max_size=8))
def test_many_events_split_anywhere_arrive_in_order(datas: list[str]) -> None:
    stream = b"".join(encode_event(d, id=str(i)) for i, d in enumerate(datas)).decode()
    parser = parse("")
    for start in range(0, len(stream), 7):
        parser.feed(stream[start : start + 7])
    assert [e.data for e in parser.events] == [normalised(d) for d in datas]
    assert [e.last_event_id for e in parser.events] == [str(i) for i in range(len(datas))]


@given(st.lists(st.binary(min_size=1), max_size=5))
def test_chunks_reassemble(payloads: list[bytes]) -> None:
    body = b"".join(chunk(p) for p in payloads) + CHUNKED_END
    assert dechunk(body) == (b"".join(payloads), True)


def test_sans_io_modules_do_not_import_asyncio() -> None:
    code = (
        "import sys; import rawsse, rawsse.events, rawsse.h1.parse, rawsse.errors, "
        "rawsse.config, rawsse.deflate, rawsse.text, rawsse.topics, rawsse.version, "
        "rawsse.h1.exchange, "
        "rawsse.h1.plainread, rawsse.h1.replies; "
        "bad = [m for m in ('asyncio', 'socket', 'selectors') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "bad", [" lead", "trail ", "a\x0bb", "a\x0cb", "a\x7fb", "a\tb", "café", "i" * 257]
)
def test_a_publishers_id_must_come_back_as_a_header(bad: str) -> None:
    with pytest.raises(InvalidEvent):
        encode_checked("x", event=None, id=bad, retry=None, max_size=1 << 20)


def test_ids_that_come_back_unchanged_are_accepted() -> None:
    for good in ("order-1", "a b", "~!@#$%^&*()_+{}|:<>?", "i" * 256):
        parts = encode_checked("x", event=None, id=good, retry=None, max_size=1 << 20)
        assert parts.frame(good).startswith(f"id: {good}\n".encode())
