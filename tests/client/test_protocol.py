"""The clients' I/O-free part: the SSE blocks a stream is cut into, where a
subscription resumes, how long it waits, and how answers read."""

from __future__ import annotations

import random

import pytest

from rawsse.client import AuthExpiring, Event, Lost
from rawsse.client.errors import (
    ClientError,
    DuplicateId,
    Forbidden,
    InvalidEvent,
    RateLimited,
    TooLarge,
    Unauthorized,
    Unavailable,
    error_for,
)
from rawsse.client.protocol import (
    Backoff,
    Block,
    Decoder,
    Resumption,
    answered_id,
    batch_line,
    batch_results,
    stream_url,
)


def blocks(*lines: str) -> list[Block]:
    decoder = Decoder()
    return [b for b in (decoder.line(line) for line in lines) if b is not None]


def test_the_decoder_cuts_blocks_as_the_sse_format_says() -> None:
    assert blocks(
        ": a heartbeat",
        "",
        "id: 1",
        "event: note",
        "data: two",
        "data:lines",
        "",
        "retry: 1500",
        "",
        "data: no id",
        "id: bad\0id",
        "retry: soon",
        "",
    ) == [
        Block("two\nlines", "note", "1", None),
        Block(None, "", None, 1500),
        Block("no id", "", None, None),
    ]


def test_a_resumption_remembers_ids_and_tells_events_from_notices() -> None:
    state = Resumption(None)
    assert state.read(Block("x", "", "a-1", 3000)) == Event("a-1", "message", "x")
    assert state.retry == 3.0 and state.last_event_id == "a-1"
    assert state.headers()["Last-Event-ID"] == "a-1"
    lost = '{"reason": "expired", "last_event_id": "a-1", "resume_id": "a-9"}'
    assert state.read(Block(lost, "rawsse-lost", "a-9", None)) == Lost("expired", "a-1", "a-9")
    assert state.last_event_id == "a-9"
    notice = '{"reason": "token_expiring", "expires_in_ms": 1500}'
    assert state.read(Block(notice, "rawsse-auth-expiring", None, None)) == AuthExpiring(1.5)
    assert state.read(Block("{}", "rawsse-future", None, None)) is None  # not data
    assert state.read(Block(None, "", None, 500)) is None and state.retry == 0.5


def test_waits_grow_with_failures_spread_by_jitter_and_honour_the_hub() -> None:
    backoff = Backoff(first=0.25, most=4.0, rng=random.Random(7))
    waits = [backoff.next() for _ in range(8)]
    for failures, wait in enumerate(waits):
        bound = min(4.0, 0.25 * 2**failures)
        assert bound / 2 <= wait <= bound
    backoff.reset()
    assert backoff.next() <= 0.25
    assert 10.0 <= backoff.next(asked=10.0) <= 12.5  # the hub's wait is a floor


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, InvalidEvent),
        (401, Unauthorized),
        (403, Forbidden),
        (409, DuplicateId),
        (413, TooLarge),
        (429, RateLimited),
        (503, Unavailable),
        (502, Unavailable),
        (418, ClientError),
    ],
)
def test_each_status_is_its_own_error(status: int, kind: type[ClientError]) -> None:
    error = error_for(status, "why\n", "2")
    assert type(error) is kind and error.status == status
    assert error.reason == "why" and error.retry_after == 2.0


def test_a_409_is_success_only_for_a_retry_of_the_clients_id() -> None:
    assert answered_id(200, "a-1\n", None, chosen=None, retried=False) == "a-1"
    assert answered_id(409, "dup", None, chosen="mine", retried=True) == "mine"
    with pytest.raises(DuplicateId):
        answered_id(409, "dup", None, chosen="mine", retried=False)


def test_batch_lines_and_answers() -> None:
    assert batch_line({"topic": "a", "data": "é"}) == '{"topic":"a","data":"é"}\n'.encode()
    with pytest.raises(ValueError, match="topic"):
        batch_line({"data": "x"})
    results = batch_results(409, '{"id":"a-1"}\n{"error":"dup","status":409}\n', None)
    assert results[0] == "a-1" and isinstance(results[1], DuplicateId)
    with pytest.raises(Unauthorized):
        batch_results(401, "missing key\n", None)
    assert stream_url("http://h/", ["a", "b c"]) == "http://h/events?topic=a&topic=b+c"
