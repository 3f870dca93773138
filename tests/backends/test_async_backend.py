"""A backend that must await, as a remote one does: publish and replay yield to the loop
before answering. The hub, the HTTP layer and the stream hand-over must then keep
every promise they keep with the memory backend: ids in the publisher's answers, every
event once and in order across a reconnect, nothing left behind."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence

import pytest

from rawsse.backends.base import Record, Replay
from rawsse.backends.memory import MemoryBackend
from rawsse.config import Config
from rawsse.events import EventParts
from rawsse.hub.hub import Hub
from tests.conftest import TEST_KEY, make_config, running_server
from tests.support.client import RawConnection
from tests.support.streams import read_with_reconnects

#: Loop iterations each call waits before it is answered.
ROUND_TRIP = 3


class YieldingBackend(MemoryBackend):
    """The memory backend behind a pretend round trip."""

    synchronous = False

    def __init__(self, history: int) -> None:
        super().__init__(history)
        self.replays = 0

    def publish(
        self, topics: tuple[str, ...], parts: EventParts, *, id: str | None
    ) -> Awaitable[Record]:  # type: ignore[override]
        async def later() -> Record:
            for _ in range(ROUND_TRIP):
                await asyncio.sleep(0)
            return MemoryBackend.publish(self, topics, parts, id=id)

        return later()

    def replay(  # type: ignore[override]
        self, topics: Sequence[str], last_event_id: str | None, *, upto: int | None = None
    ) -> Awaitable[Replay]:
        async def later() -> Replay:
            self.replays += 1
            for _ in range(ROUND_TRIP):
                await asyncio.sleep(0)  # events go on being published meanwhile
            return MemoryBackend.replay(self, topics, last_event_id, upto=upto)

        return later()


def yielding_hub(config: Config) -> Hub:
    return Hub(config, backend=YieldingBackend(config.history))


async def test_the_seam_holds_when_replay_awaits() -> None:
    """A producer publishes without pause while a client reads, drops and reconnects
    with its last id three times; each replay yields while events keep coming: every
    event arrives exactly once, in order."""
    config = make_config()
    hub = yielding_hub(config)
    async with running_server(config, hub=hub) as server:
        stop = asyncio.Event()

        async def produce() -> None:
            n = 0
            while not stop.is_set() and n < 20000:
                n += 1
                await hub.publish_async("t", str(n))

        producer = asyncio.create_task(produce())
        seen = await read_with_reconnects(f"{server.url}/events?topic=t", rounds=4)
        stop.set()
        await producer
        assert seen == list(range(seen[0], seen[0] + len(seen)))
        assert isinstance(hub.backend, YieldingBackend) and hub.backend.replays >= 3


async def test_publishing_over_http_awaits_the_backend_and_answers_in_order() -> None:
    """Pipelined publishes to a backend that awaits: each answer carries its event's id,
    in the order asked, and the connection goes on serving."""
    config = make_config()
    hub = yielding_hub(config)
    async with running_server(config, hub=hub) as server:
        conn = await RawConnection.open(server.port)
        body = b"x"
        request = (
            f"POST /publish?topic=t HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n"
            f"Authorization: Bearer {TEST_KEY}\r\n\r\n"
        ).encode() + body
        await conn.send(request * 3 + b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        answers = [await conn.answer(head_only_for=b"POST") for _ in range(3)]
        assert [a.body for a in answers] == [
            f"{hub.backend.epoch}-{n}\n".encode() for n in (1, 2, 3)
        ]
        assert (await conn.answer()).body == b"ok\n"
        await conn.close()
        assert hub.metrics.events_published == 3


async def test_the_synchronous_api_refuses_a_backend_that_awaits() -> None:
    hub = yielding_hub(Config())
    with pytest.raises(RuntimeError, match="publish_async"):
        hub.publish("t", "x")
    assert await hub.publish_async("t", "x") == f"{hub.backend.epoch}-1"
