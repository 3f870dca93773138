"""What a topic name is, wherever it comes from (a query, a form, JSON, a batch line, an
embedding program's call): 1 to ``MAX_TOPIC_LENGTH`` characters, none of them unsafe
(:mod:`rawsse.text`). Topics travel in URLs, logs and metric labels, never in the stream
itself.

Nothing here imports asyncio or touches a socket.
"""

from __future__ import annotations

from collections.abc import Iterable

from rawsse.config import MAX_TOPIC_LENGTH
from rawsse.errors import RequestError
from rawsse.text import has_unsafe

__all__ = ["parse_topics"]


def parse_topics(values: Iterable[str], max_topics: int) -> tuple[str, ...]:
    """Validate topic names; return them deduplicated, in first-seen order.

    A topic is 1 to 256 characters with no control, format or line-separator
    characters, nor lone surrogates (:mod:`rawsse.text`): topics travel in URLs, logs
    and metric labels, never in the stream itself.

    Raises:
        RequestError: 400 for no topic, too many, or a malformed one.
    """
    topics = tuple(dict.fromkeys(values))
    if not topics:
        raise RequestError("at least one topic is required")
    if len(topics) > max_topics:
        raise RequestError(f"at most {max_topics} topics are allowed")
    for topic in topics:
        if not topic or len(topic) > MAX_TOPIC_LENGTH:
            raise RequestError(f"a topic must be 1 to {MAX_TOPIC_LENGTH} characters")
        if has_unsafe(topic):
            raise RequestError(
                "a topic must not contain control, format or line-separator characters"
            )
    return topics
