"""What a subscription yields: the events published, and the hub's two notices as
types of their own (never as data a consumer might take for an event)."""

from __future__ import annotations

import json
from dataclasses import dataclass

__all__ = ["AuthExpiring", "Event", "Lost", "Notice", "read_notice"]

#: The hub's notices (``rawsse-`` event names are reserved for them: no publisher can
#: forge one).
LOST = "rawsse-lost"
AUTH_EXPIRING = "rawsse-auth-expiring"


@dataclass(frozen=True, slots=True)
class Event:
    """One published event.

    Attributes:
        id: its id (what the client resumes after).
        event: its type (``message`` by default).
        data: its data, lines joined by ``\\n``.
    """

    id: str
    event: str
    data: str


@dataclass(frozen=True, slots=True)
class Lost:
    """Events the client should have received are gone (``rawsse-lost``).

    Attributes:
        reason: ``expired`` (older than the history), ``epoch`` (from before the hub
            lost its history), ``unknown`` (an id the hub does not know).
        last_event_id: where the client asked to resume.
        resume_id: where it resumes from now on.
    """

    reason: str
    last_event_id: str
    resume_id: str


@dataclass(frozen=True, slots=True)
class AuthExpiring:
    """The subscription's token expires in ``expires_in`` seconds
    (``rawsse-auth-expiring``); a fresh one keeps the stream going."""

    expires_in: float


Notice = Lost | AuthExpiring


def read_notice(event: str, data: str) -> Notice | None:
    """The notice an event of type ``event`` carries, or ``None`` for a published
    event (or a notice this client does not know, read as ``None`` too)."""
    if event not in (LOST, AUTH_EXPIRING):
        return None
    try:
        fields = json.loads(data)
    except ValueError:
        return None
    if not isinstance(fields, dict):
        return None
    if event == LOST:
        return Lost(
            str(fields.get("reason", "")),
            str(fields.get("last_event_id", "")),
            str(fields.get("resume_id", "")),
        )
    return AuthExpiring(float(fields.get("expires_in_ms", 0)) / 1000)
