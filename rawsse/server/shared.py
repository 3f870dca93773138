"""What the routes read of the state every connection of a server shares, and the
publish both APIs make of it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from rawsse.errors import BackendUnavailable, InvalidEvent, refusal_of
from rawsse.h1.replies import Reply

if TYPE_CHECKING:
    from rawsse.config import Config
    from rawsse.hub.hub import Hub
    from rawsse.policy.admission import Admission
    from rawsse.policy.cors import CorsPolicy
    from rawsse.server.subscriptions import SubscriptionRegistry

__all__ = ["Shared", "publish_and_answer"]


class Shared(Protocol):
    """What the routes read of the state every connection of a server shares (the
    server's :class:`~rawsse.server.connection.ServerState`)."""

    config: Config
    hub: Hub
    admission: Admission
    cors: CorsPolicy
    demo_page: bytes | None
    draining: bool
    #: Mercure's active subscriptions (``None`` unless ``mercure_subscriptions``).
    subscriptions: SubscriptionRegistry | None


def publish_and_answer(
    server: Shared,
    topics: tuple[str, ...],
    data: str,
    answer: Callable[[str], Reply],
    *,
    event: str | None,
    id: str | None,
    retry: int | None,
    private: bool = False,
    reuse_id: bool = False,
) -> Reply | Awaitable[Reply]:
    """Publish an event whose topics are checked, and ``answer`` with its id: at once,
    or once a backend that must await has answered.

    ``reuse_id``: a publisher's id already kept is taken again (Mercure's rule), not
    refused as a duplicate.

    Raises (at once or from the awaitable):
        RequestError: the event is refused (400: a reserved id, ...; 409: a duplicate
            id).
        Refused: the backend cannot publish now (503 with ``Retry-After``).
    """
    try:
        result = server.hub.start_publish_to(
            topics, data, event=event, id=id, retry=retry, private=private, reuse_id=reuse_id
        )
    except InvalidEvent as exc:
        raise refusal_of(exc) from None
    except BackendUnavailable as exc:
        raise server.admission.backend_unavailable(str(exc)) from None
    server.hub.publish_awaited()
    if isinstance(result, str):
        return answer(result)
    return _answer_later(server, result, answer)


async def _answer_later(
    server: Shared, pending: Awaitable[str], answer: Callable[[str], Reply]
) -> Reply:
    try:
        return answer(await pending)
    except InvalidEvent as exc:
        raise refusal_of(exc) from None
    except BackendUnavailable as exc:
        raise server.admission.backend_unavailable(str(exc)) from None
