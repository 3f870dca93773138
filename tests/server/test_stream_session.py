"""A stream's session with numbers: its token's expiry (no notice without ``exp``; the
notice, then the end), its shutdown and its close, on a recording transport."""

from __future__ import annotations

from typing import Any

import pytest

from rawsse.config import Config
from rawsse.events import CHUNKED_END
from rawsse.hub import Hub
from rawsse.policy.auth import Grants
from rawsse.server.stream import AUTH_EXPIRING_EVENT, Expiry, StreamSession, StreamStart
from tests.support.fakes import RecordingTransport


def session(grants: Grants | None, **config: Any) -> tuple[Hub, StreamSession, RecordingTransport]:
    hub = Hub(Config(**config))
    transport = RecordingTransport()
    start = StreamStart(("t",), grants, None, "key-1")
    stream = StreamSession(
        hub, transport, start, head=b"HEAD", chunked=True, retry=None, now=100.0,
        wall_now=5000.0, spawn=lambda coro: coro.close(),
    )  # fmt: skip
    return hub, stream, transport


def test_a_stream_without_expiry_has_no_timer() -> None:
    hub, stream, transport = session(Grants("anyone", subscribe=("*",)))
    assert (stream.expiry, stream.first_timer(100.0, 30.0), stream.key) == (None, None, "key-1")
    assert transport.writes == [b"HEAD"] and hub.subscriber_count == 1
    assert stream.timer_fired(200.0) is None and not transport.closed


def test_the_notice_comes_ahead_of_expiry_then_the_stream_ends() -> None:
    """Token expiring at wall time 5600 (600 s from wall_now), notice 30 s before."""
    _, stream, transport = session(Grants("u", subscribe=("*",), expires_at=5600.0))
    assert stream.expiry is not None and stream.expiry.state is Expiry.NOTICE_DUE
    assert stream.first_timer(100.0, 30.0) == pytest.approx(570.0)
    assert stream.timer_fired(670.0) == pytest.approx(30.0)  # the notice, 30 s ahead
    assert stream.expiry.state is Expiry.NOTICE_SENT
    assert AUTH_EXPIRING_EVENT.encode() in transport.writes[-1]
    assert b'"expires_in_ms": 30000' in transport.writes[-1]
    assert stream.timer_fired(700.0) is None  # expiry: the stream ends cleanly
    assert transport.closed and transport.writes[-1].endswith(CHUNKED_END)
    assert stream.close_reason == "auth_expired"


def test_a_token_already_past_its_notice_gets_it_at_once_and_ends_at_expiry() -> None:
    _, stream, transport = session(Grants("u", subscribe=("*",), expires_at=5010.0))
    assert stream.first_timer(100.0, 30.0) == 0.0
    assert stream.timer_fired(100.0) == pytest.approx(10.0)
    assert stream.timer_fired(110.0) is None and transport.closed


def test_close_leaves_the_hub_and_counts_the_reason() -> None:
    hub, stream, _ = session(None)
    stream.close(hub, timed_out=True, who="127.0.0.1:5555", now=160.0)
    assert hub.subscriber_count == 0
    assert {k: v for k, v in hub.metrics.disconnects.items() if v} == {"dead_peer": 1}
