"""The server: listening sockets, shared timers, the connection registry and a staged,
bounded shutdown. It contains no protocol logic (see ``rawsse.server.connection``).

Shutdown, in order: stop accepting; report 503 on ``/healthz``; cancel and await every
task the server started (the demo producer among them); tell each stream when to come
back (a ``retry:`` drawn at random within ``shutdown_retry_window``, against reconnect
storms), end it with its terminating chunk and close it once its buffer has drained;
close idle keep-alive connections; wait until every connection is gone or
``shutdown_timeout`` has passed, then abort what is left.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any, TypeVar

from rawsse.config import Config
from rawsse.hub.hub import Hub
from rawsse.server.connection import ConnState, HttpConnection, ServerState
from rawsse.server.loops import loop_factory
from rawsse.server.routes import METRICS_ROUTES, PUBLIC_ROUTES, Router
from rawsse.server.tcp import tune_socket

__all__ = ["Server", "ServerThread", "run"]

logger = logging.getLogger("rawsse.server")

_T = TypeVar("_T")

#: How often paused subscribers are checked against ``slow_timeout`` at most: a stalled
#: client is dropped within ``slow_timeout`` plus this (or a quarter of it, if smaller).
STALL_CHECK_INTERVAL = 1.0

#: How often rate-limit buckets that have filled up again are forgotten.
LIMIT_PRUNE_INTERVAL = 10.0


def _cannot_listen(exc: OSError, host: str, port: int | None) -> OSError:
    """``exc`` said in one line: which address, and why."""
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    return OSError(exc.errno, f"cannot listen on {host}:{port}: {reason}")


class Server:
    """Serve a :class:`Hub` over HTTP on ``config.host``:``config.port``.

    Use as an async context manager (started on entry, shut down on exit), or call
    :meth:`start` and :meth:`shutdown`. The server never touches signal handlers; the
    CLI's :func:`run` does.

    Args:
        hub: the hub to serve; a new ``Hub(config)`` when omitted.
        config: the server's settings; ``hub.config`` when omitted (or defaults).
        demo_page: HTML served at ``/``; ``None`` answers 404 there.
        reuse_port: bind with ``SO_REUSEPORT``, so that several processes serve the
            same port (``--workers``).
    """

    def __init__(
        self,
        hub: Hub | None = None,
        config: Config | None = None,
        *,
        demo_page: bytes | None = None,
        reuse_port: bool = False,
    ) -> None:
        if config is None:
            config = hub.config if hub is not None else Config()
        self.config = config
        self.hub = hub if hub is not None else Hub(config)
        self._state = ServerState(config, self.hub, demo_page)
        self._reuse_port = reuse_port
        self._listener: asyncio.Server | None = None
        self._metrics_listener: asyncio.Server | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._stop_requested: asyncio.Event | None = None
        self._shutdown_task: asyncio.Task[None] | None = None
        self._forced = False

    # -- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the listening socket and start the heartbeat and stall timers."""
        loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        await self._listen(loop)
        await self.hub.start()
        self._schedule(self.config.heartbeat, self._heartbeat)
        self._schedule(self._stall_interval(), self._check_stalled)
        self._schedule(LIMIT_PRUNE_INTERVAL, self._prune_limits)
        logger.info("listening on %s", self.url)

    async def _listen(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind the listeners, before anything else starts, so that a port in use is
        an error at once that leaves nothing behind.

        Raises:
            OSError: a port cannot be bound (in use, not permitted).
        """
        state, host = self._state, self.config.host
        separate_metrics = self.config.metrics_port is not None
        router = Router(state, PUBLIC_ROUTES) if separate_metrics else state.router
        try:
            self._listener = await loop.create_server(
                lambda: HttpConnection(state, router),
                host,
                self.config.port,
                reuse_address=True,
                reuse_port=self._reuse_port or None,
                backlog=4096,
            )
        except OSError as exc:
            raise _cannot_listen(exc, host, self.config.port) from exc
        for sock in self._listener.sockets:
            # Accepted sockets inherit these (see rawsse.server.tcp); set before any accept.
            tune_socket(sock, self.config.dead_peer_timeout)
        if not separate_metrics:
            return
        metrics_router = Router(state, METRICS_ROUTES)
        try:
            self._metrics_listener = await loop.create_server(
                lambda: HttpConnection(state, metrics_router),
                host,
                self.config.metrics_port,
                reuse_address=True,
            )
        except OSError as exc:
            self._listener.close()
            await self._listener.wait_closed()
            self._listener = None
            raise _cannot_listen(exc, host, self.config.metrics_port) from exc

    def _stall_interval(self) -> float:
        return min(STALL_CHECK_INTERVAL, self.config.slow_timeout / 4)

    def _schedule(self, delay: float, callback: Any) -> None:
        # One handle per periodic callback, replaced when it re-arms: a list of every
        # handle ever armed would grow by one a second for the life of the server.
        loop = asyncio.get_running_loop()
        self._timers[callback.__name__] = loop.call_later(delay, callback)

    def _heartbeat(self) -> None:
        self.hub.heartbeat()
        self._schedule(self.config.heartbeat, self._heartbeat)

    def _check_stalled(self) -> None:
        self.hub.drop_stalled(asyncio.get_running_loop().time())
        self._schedule(self._stall_interval(), self._check_stalled)

    def _prune_limits(self) -> None:
        self._state.admission.limits.prune(asyncio.get_running_loop().time())
        self.hub.backend.expire()
        self._schedule(LIMIT_PRUNE_INTERVAL, self._prune_limits)

    @property
    def sockets(self) -> Sequence[Any]:
        """The listening sockets (empty before start and after shutdown)."""
        return self._listener.sockets if self._listener is not None else ()

    @property
    def port(self) -> int:
        """The bound port: the real one when ``config.port`` was 0."""
        for sock in self.sockets:
            return int(sock.getsockname()[1])
        return self.config.port

    @property
    def metrics_port(self) -> int | None:
        """The bound port of the separate metrics listener, if there is one."""
        if self._metrics_listener is None:
            return None
        return int(self._metrics_listener.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        """``http://host:port`` of the listener."""
        host = self.config.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def draining(self) -> bool:
        """True once shutdown has begun."""
        return self._state.draining

    def spawn(
        self, coro: Coroutine[Any, Any, Any], *, name: str | None = None
    ) -> asyncio.Task[Any]:
        """Run ``coro`` as a task owned by the server: cancelled and awaited on shutdown.

        A task that fails is logged with its traceback; the server keeps serving.
        """
        task = self._state.spawn(coro)
        if name is not None:
            task.set_name(name)
        return task

    @property
    def connection_count(self) -> int:
        """How many client connections are open (streams and ordinary ones)."""
        return len(self._state.connections)

    def request_shutdown(self) -> None:
        """Ask :meth:`serve_until_stopped` to return (safe from a signal handler)."""
        if self._stop_requested is not None:
            self._stop_requested.set()

    async def serve_until_stopped(self) -> None:
        """Wait until :meth:`request_shutdown` is called, then shut down."""
        assert self._stop_requested is not None, "start() first"
        await self._stop_requested.wait()
        await self.shutdown()

    def force_close(self) -> None:
        """Abort every connection now; an ongoing shutdown then returns at once."""
        self._forced = True
        for connection in list(self._state.connections):
            connection.abort()

    async def shutdown(self, timeout: float | None = None) -> None:
        """Shut down in stages, within ``timeout`` seconds (``config.shutdown_timeout``).

        Calling it again waits for the shutdown already under way.
        """
        if self._shutdown_task is None:
            self._shutdown_task = asyncio.get_running_loop().create_task(
                self._shutdown(self.config.shutdown_timeout if timeout is None else timeout)
            )
        await asyncio.shield(self._shutdown_task)

    async def _shutdown(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        state = self._state
        state.draining = True
        if self._listener is not None:
            self._listener.close()
        # The metrics listener stays open while draining, so the drain can be watched;
        # it closes with the rest at the end.
        for timer in self._timers.values():
            timer.cancel()
        self._timers = {}
        tasks = list(state.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=max(0.0, deadline - loop.time()))
        all_closed = asyncio.Event()
        state.on_idle = all_closed.set
        window = self.config.shutdown_retry_window
        for connection in list(state.connections):
            if connection.state is ConnState.STREAMING:
                connection.finish_stream(window)
            else:
                connection.close_idle()
        if state.connections and not self._forced:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(all_closed.wait(), max(0.0, deadline - loop.time()))
        if self._metrics_listener is not None:
            self._metrics_listener.close()
            for connection in list(state.connections):
                connection.close_idle()
        if state.connections:
            logger.warning("aborting %d connections still open at shutdown", len(state.connections))
            for connection in list(state.connections):
                connection.abort()
            # abort() reports connection_lost on the next loop iterations.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(all_closed.wait(), 1.0)
        for listener in (self._listener, self._metrics_listener):
            if listener is not None:
                await listener.wait_closed()
        self._listener = self._metrics_listener = None
        await self.hub.close()
        logger.info("shut down")

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()


class ServerThread:
    """A :class:`Server` on its own event loop in a background thread, for programs
    that are not written with asyncio.

    ``start()`` returns once the server listens (raising what start-up raised);
    :meth:`publish` may be called from any thread. Usable as a context manager.

    Args:
        hub: the hub to serve; a new one when omitted.
        config: settings; see :class:`Server`.
        loop: ``auto``, ``asyncio`` or ``uvloop``.
        demo_page: HTML served at ``/``.
    """

    def __init__(
        self,
        hub: Hub | None = None,
        config: Config | None = None,
        *,
        loop: str = "auto",
        demo_page: bytes | None = None,
    ) -> None:
        self.server = Server(hub, config, demo_page=demo_page)
        self.hub = self.server.hub
        self._new_loop = loop_factory(loop)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started: concurrent.futures.Future[None] = concurrent.futures.Future()

    def start(self, timeout: float = 10.0) -> ServerThread:
        """Start the thread and wait until the server listens."""
        self._thread = threading.Thread(target=self._run, name="rawsse-server", daemon=True)
        self._thread.start()
        self._started.result(timeout)
        return self

    def _run(self) -> None:
        loop = self._new_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        try:
            await self.server.start()
        except BaseException as exc:
            self._started.set_exception(exc)
            return
        self._started.set_result(None)
        await self.server.serve_until_stopped()

    @property
    def port(self) -> int:
        """The bound port."""
        return self.server.port

    @property
    def url(self) -> str:
        """``http://host:port`` of the listener."""
        return self.server.url

    def publish(
        self,
        topic: str | Sequence[str],
        data: str,
        *,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
        timeout: float = 10.0,
    ) -> str:
        """Publish from any thread; returns the event id (see :meth:`Hub.publish`). Works
        with any backend, one that must await included."""
        loop = self._loop
        if loop is None or not self._started.done():
            raise RuntimeError("ServerThread is not running: call start() first")
        published = self.hub.publish_async(topic, data, event=event, id=id, retry=retry)
        return asyncio.run_coroutine_threadsafe(published, loop).result(timeout)

    def call(self, function: Callable[..., _T], *args: Any, timeout: float = 10.0) -> _T:
        """Run ``function(*args)`` on the server's thread, where the hub lives, and
        return its result: how another thread reads or changes the hub's state safely
        (``server.call(lambda: server.hub.subscriber_count)``)."""
        loop = self._loop
        if loop is None or not self._started.done():
            raise RuntimeError("ServerThread is not running: call start() first")

        async def run() -> _T:
            return function(*args)

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout)

    def stop(self, timeout: float | None = None) -> None:
        """Shut the server down (staged, as :meth:`Server.shutdown`) and join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        limit = self.server.config.shutdown_timeout if timeout is None else timeout
        asyncio.run_coroutine_threadsafe(self.server.shutdown(limit), loop).result(limit + 5)
        loop.call_soon_threadsafe(self.server.request_shutdown)
        thread.join(limit + 5)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def run(
    config: Config,
    *,
    loop: str = "auto",
    hub: Hub | None = None,
    demo_page: bytes | None = None,
    on_start: Callable[[Server], None] | None = None,
    reuse_port: bool = False,
) -> int:
    """Serve until SIGINT or SIGTERM, then shut down gracefully; return the exit status.

    A second signal during shutdown aborts every connection at once. Signal handlers
    are restored before returning.

    Args:
        config: settings.
        loop: ``auto``, ``asyncio`` or ``uvloop``.
        hub: the hub; a new one from ``config`` when omitted.
        demo_page: HTML served at ``/``.
        on_start: ``callable(server)`` run once listening (the CLI prints its banner and
            spawns the demo producer there).
        reuse_port: bind with ``SO_REUSEPORT`` (one of several workers).
    """
    event_loop = loop_factory(loop)()
    asyncio.set_event_loop(event_loop)
    server = Server(hub, config, demo_page=demo_page, reuse_port=reuse_port)
    signals = (signal.SIGINT, signal.SIGTERM)

    def on_signal(signum: int) -> None:
        if server.draining:
            logger.warning("second %s: aborting every connection now", signal.Signals(signum).name)
            server.force_close()
        else:
            logger.info("%s: shutting down", signal.Signals(signum).name)
            server.request_shutdown()

    async def main() -> None:
        await server.start()
        for signum in signals:
            event_loop.add_signal_handler(signum, on_signal, signum)
        if on_start is not None:
            on_start(server)
        await server.serve_until_stopped()

    try:
        event_loop.run_until_complete(main())
    finally:
        for signum in signals:
            with contextlib.suppress(Exception):
                event_loop.remove_signal_handler(signum)
        event_loop.run_until_complete(event_loop.shutdown_asyncgens())
        event_loop.close()
        asyncio.set_event_loop(None)
    return 0
