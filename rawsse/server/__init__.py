"""Serving: the asyncio side. A connection's callbacks (:mod:`.connection`), what each
path answers (:mod:`.routes`), an event stream's session (:mod:`.stream`), batch
publishes (:mod:`.batch`), the server with its listeners, timers and shutdown
(:mod:`.server`), the event loop (:mod:`.loops`), socket options (:mod:`.tcp`) and the
connection's one timer (:mod:`.deadline`)."""

from rawsse.server.server import Server, ServerThread, run

__all__ = ["Server", "ServerThread", "run"]
