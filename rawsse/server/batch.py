"""A batch publish: ``POST /publish`` with newline-delimited JSON, one event per line,
published as its lines arrive.

The request's body is not gathered: each complete line is published as soon as it is
read, so a producer can keep one chunked request open and stream events into the hub,
and events published in one read go out to subscribers in one flush. A line has the
keys of the JSON form (``topic``, ``data``, ``event``, ``id``, ``retry``).

The answer comes once the request ends: one line per non-blank line of the request, in
order, ``{"id": ...}`` for an event published or ``{"error": ..., "status": ...}`` for
one refused. A refused line does not stop the others. The status is 200 when every line
was published, else that of the first line refused, so that a client reading only the
status knows. The limits hold line by line: a line over ``max_event_size`` is refused
(and skipped unread), each line spends one of the credential's publish tokens, and a
body over ``max_batch_size`` ends the request with what was answered so far and 413.
"""

from __future__ import annotations

import json
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, cast

from rawsse.errors import BackendUnavailable, InvalidEvent, RequestError, refusal_of
from rawsse.h1.parse import parse_json_event
from rawsse.h1.replies import Reply

if TYPE_CHECKING:
    from rawsse.hub.hub import Hub
    from rawsse.policy.admission import Admission
    from rawsse.policy.auth import Grants

__all__ = ["NDJSON", "BatchPublish"]

NDJSON = b"application/x-ndjson"

#: Bytes of a batch published per loop iteration (see ``BatchPublish.work``).
STEP = 64 * 1024

#: Topic names a batch remembers as checked (see ``BatchPublish._known``).
KNOWN_TOPICS = 1024

#: Publishes a batch may have awaiting a remote backend before its reading pauses until
#: they are answered: what a batch holds for its answers stays bounded by its size.
MAX_IN_FLIGHT = 1024

#: Lines of one batch refused before the batch itself is (with the status of the first
#: refusal, its answers so far and the connection closed). A 2-byte bad line costs an
#: error of about 50 bytes and 10 us: a 16 MiB body of them held 424 MiB of answers and
#: a core for a minute. A producer whose thousandth line is refused has a bug or is
#: over its rate; either way, going on helps nobody.
MAX_REFUSED_LINES = 1000


class BatchPublish:
    """The lines of one batch request: fed its body as it arrives, then finished.

    Args:
        hub: where events are published.
        admission: the publish rate and refusals.
        grants: the publisher's credential.
        clock: the loop's time, for the rate.
        draining: whether the server is shutting down (later lines get 503).
    """

    __slots__ = (
        "_hub",
        "_admission",
        "_grants",
        "_clock",
        "_draining",
        "_max_line",
        "_max_topics",
        "_unread",
        "_partial",
        "_skipping",
        "_answered",
        "_later",
        "_pending",
        "_refusals",
        "failed",
        "_status",
        "_known",
    )

    def __init__(
        self,
        hub: Hub,
        admission: Admission,
        grants: Grants,
        clock: Callable[[], float],
        draining: Callable[[], bool],
    ) -> None:
        self._hub = hub
        self._admission = admission
        self._grants = grants
        self._clock = clock
        self._draining = draining
        self._max_line = hub.config.max_event_size
        self._max_topics = hub.config.max_topics
        # What was fed and is not published yet (see work).
        self._unread: deque[bytes] = deque()
        # The start of a line whose end has not arrived yet.
        self._partial = b""
        # The rest of a line over the size limit is being skipped, unread.
        self._skipping = False
        # The answers of the lines so far, in one buffer; from the first line whose
        # publish awaits a remote backend on, in ``_later`` (``None`` while awaited)
        # until they are all answered (:meth:`settle`).
        self._answered = bytearray()
        self._later: list[bytes | None] = []
        # Those awaiting a remote backend: their answer's place in ``_later``, and the
        # awaitable.
        self._pending: list[tuple[int, Awaitable[str]]] = []
        self._status = 200
        self._refusals = 0
        #: Why the whole batch is refused (``MAX_REFUSED_LINES``), once it is: the
        #: connection answers with :meth:`refuse` and reads no more of it.
        self.failed: RequestError | None = None
        # Topics this batch has published to with this credential, by name: lines to
        # them take the short path. None: every line takes the long one (a publish
        # rate to spend per line, or a backend that answers later).
        self._known: dict[str, tuple[str, ...]] | None = None
        if hub.backend.synchronous and not admission.limits.publish_rate.rate:
            self._known = {}

    # -- reading ------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Take more of the body; its lines are published by :meth:`work`."""
        self._unread.append(data)

    def work(self, budget: int = STEP) -> bool:
        """Publish the lines of about ``budget`` bytes of what was fed; whether some is
        left for the next loop iteration.

        A read can bring hundreds of kilobytes: published at once, their fan-out would
        be one write per subscriber too large for its socket to take in the loop
        iteration, and a publisher streaming without pause would have subscribers'
        buffers grow until they are dropped. In steps, subscribers' sockets are
        written between steps, and the publisher is read no faster than they drain.
        """
        unread = self._unread
        while unread and budget > 0 and self.failed is None:
            data = unread[0]
            if len(data) > budget:
                cut = data.rfind(b"\n", 0, budget) + 1 or data.find(b"\n", budget) + 1
                if cut and cut < len(data):
                    unread[0] = data[cut:]
                    data = data[:cut]
                else:
                    unread.popleft()
            else:
                unread.popleft()
            budget -= len(data)
            self._take(data)
        return bool(unread)

    def _take(self, data: bytes) -> None:
        """Publish every line ``data`` completes."""
        lines = data.split(b"\n")
        last = lines.pop()  # the start of the next line (b"" after a newline)
        if lines:
            if self._skipping:
                self._skipping = False
                lines[0] = b""  # the end of a line already refused: skipped
            elif self._partial:
                lines[0] = self._partial + lines[0]
                self._partial = b""
            self._lines(lines)
        if last:
            if self._skipping:
                return
            if len(self._partial) + len(last) > self._max_line:
                # Refused now, and skipped until its newline, without holding it.
                self._partial = b""
                self._skipping = True
                self._refuse(RequestError(f"line over the {self._max_line}-byte limit", 413))
            else:
                self._partial += last

    @property
    def awaiting(self) -> bool:
        """Whether publishes await a remote backend's answer (see :meth:`settle`)."""
        return bool(self._pending)

    @property
    def must_settle(self) -> bool:
        """Too many publishes await a remote backend: stop reading and :meth:`settle`."""
        return len(self._pending) >= MAX_IN_FLIGHT

    async def settle(self) -> None:
        """Await the publishes a remote backend has not answered yet, in order."""
        pending, self._pending = self._pending, []
        later = self._later
        for index, result in pending:
            try:
                later[index] = _published(await result)
            except InvalidEvent as exc:
                later[index] = self._refused(refusal_of(exc))
            except BackendUnavailable as exc:
                later[index] = self._refused(self._admission.backend_unavailable(str(exc)))
        if not self._pending:  # none added meanwhile: every answer so far is known
            self._answered += b"".join([answer or b"" for answer in later])
            later.clear()

    # -- answering ----------------------------------------------------------------------

    def finish(self) -> Reply | Coroutine[Any, Any, Reply]:
        """The answer once the body has ended (a last line may lack its newline)."""
        self.work(budget=sys.maxsize)
        if self._partial and not self._skipping:
            self._line(self._partial)
        self._partial = b""
        if self.failed is not None:
            return self.refuse(self.failed)
        if self._pending:
            return self._finish_later()
        return self._reply(close=False)

    def refuse(self, exc: RequestError) -> Reply | Coroutine[Any, Any, Reply]:
        """The answer when the request ends early (over ``max_batch_size``, or broken):
        what was answered so far, with ``exc``'s status, and the connection closed."""
        self.work(budget=sys.maxsize)
        self._status = exc.status
        self._answer(_error(exc))
        if self._pending:
            return self._finish_later(close=True)
        return self._reply(close=True)

    async def _finish_later(self, *, close: bool = False) -> Reply:
        await self.settle()
        return self._reply(close=close)

    def _reply(self, *, close: bool) -> Reply:
        return Reply(self._status, bytes(self._answered), NDJSON, close=close)

    def _answer(self, answer: bytes) -> None:
        """The next line's answer, after those of the lines before it."""
        if self._later:
            self._later.append(answer)
        else:
            self._answered += answer

    # -- one line -----------------------------------------------------------------------

    def _lines(self, lines: list[bytes]) -> None:
        """Publish complete lines: the common one (``{"topic": T, "data": D}`` to a
        topic already checked in this batch) straight to the hub, any other through
        :meth:`_line`, which checks everything and answers refusals."""
        known = self._known
        if known is None or self._draining():
            for line in lines:
                self._line(line)
            return
        # A synchronous backend (``_known`` is set for no other): no line awaits, so
        # answers go straight into the buffer.
        answered = self._answered
        publish = self._hub.start_publish_to
        max_line = self._max_line
        scan = _SCAN
        for line in lines:
            if len(line) <= max_line:
                try:
                    text = line.decode()
                    obj, end = scan(text, 0)
                    if end != len(text):
                        obj = None  # more after the object (spaces, a CR): the long path
                except (ValueError, StopIteration):
                    obj = None
                if type(obj) is dict and len(obj) == 2:
                    data = obj.get("data")
                    topics = known.get(obj.get("topic"))  # type: ignore[arg-type]
                    if topics is not None and type(data) is str:
                        try:
                            result = publish(topics, data)
                        except (RequestError, InvalidEvent):
                            pass  # nothing published: _line answers why
                        else:
                            answered += _published(cast(str, result))
                            continue
            self._line(line)

    def _line(self, line: bytes) -> None:
        line = line.strip()
        if not line or self.failed is not None:
            return
        try:
            if len(line) > self._max_line:
                raise RequestError(f"line over the {self._max_line}-byte limit", 413)
            if self._draining():
                raise RequestError("shutting down", 503)
            event = parse_json_event(line, self._max_topics)
            self._grants.check_publish(event.topics)
            self._admission.take_publish(self._grants, self._clock())
            result = self._hub.start_publish_to(
                event.topics, event.data, event=event.event, id=event.id, retry=event.retry
            )
        except RequestError as exc:
            self._refuse(exc)
            return
        except InvalidEvent as exc:
            self._refuse(refusal_of(exc))
            return
        except BackendUnavailable as exc:
            self._refuse(self._admission.backend_unavailable(str(exc)))
            return
        if isinstance(result, str):
            self._answer(_published(result))
            known = self._known
            if (
                known is not None
                and len(event.topics) == 1
                and event.event is None
                and event.id is None
                and event.retry is None
            ):
                if len(known) >= KNOWN_TOPICS:
                    known.clear()
                known[event.topics[0]] = event.topics
        else:
            self._pending.append((len(self._later), result))
            self._later.append(None)

    def _refuse(self, exc: RequestError) -> None:
        self._refusals += 1
        if self._refusals > MAX_REFUSED_LINES:
            if self.failed is None:
                reason = f"more than {MAX_REFUSED_LINES} lines refused"
                self.failed = RequestError(reason, self._status, close=True)
            return
        self._answer(self._refused(exc))

    def _refused(self, exc: RequestError) -> bytes:
        if self._status == 200:
            self._status = exc.status
        return _error(exc)


#: JSON's C scanner, without ``json.loads``'s layers of Python around it: a line as a
#: producer writes it is one object from its first character to its last.
_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _published(event_id: str) -> bytes:
    if '"' in event_id or "\\" in event_id:
        return b'{"id":%s}\n' % json.dumps(event_id).encode()
    return b'{"id":"%s"}\n' % event_id.encode()


def _error(exc: RequestError) -> bytes:
    return b'{"error":%s,"status":%d}\n' % (json.dumps(exc.reason).encode(), exc.status)
