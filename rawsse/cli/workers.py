"""``--workers N``: N processes serving one port, each with its own event loop, sharing
events through Redis.

Each worker binds the port itself with ``SO_REUSEPORT``, so the kernel spreads new
connections over them, and a worker's death costs only its own connections. The
supervisor (the process started by the user) starts the workers, restarts one that
dies (and says so), and on SIGTERM or SIGINT passes a SIGTERM to each, waits for them
to drain for up to their ``shutdown_timeout``, and kills what is left.

Workers run in process groups of their own, so a Ctrl-C in a terminal reaches the
supervisor only, which passes it on once; otherwise each worker would get it twice
(from the terminal and from the supervisor) and take the second as "abort now".
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import FrameType

__all__ = ["can_bind", "supervise"]

logger = logging.getLogger("rawsse.workers")

#: A worker that dies sooner than this after starting is restarted only after this
#: long, so that a worker that cannot start does not spin.
MIN_LIFETIME = 1.0

#: prctl(2) option: the signal a process gets when its parent dies.
PR_SET_PDEATHSIG = 1

#: Time allowed beyond the workers' own shutdown timeout before they are killed.
KILL_GRACE = 2.0


def _worker_main(run_worker: Callable[[int], int], index: int, parent: int) -> None:
    _end_with_parent(parent)
    os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise SystemExit(run_worker(index))


def can_bind(host: str, port: int) -> None:
    """Check, before starting workers, that the port can be shared (a port held by
    another program would make every worker fail, and be restarted, for ever).

    Raises:
        OSError: it cannot.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def _end_with_parent(parent: int) -> None:
    """Get a SIGTERM if the supervisor dies (killed, so unable to stop the workers), so
    that no worker is left serving the port on its own. Linux only; elsewhere a no-op."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def supervise(count: int, run_worker: Callable[[int], int], *, shutdown_timeout: float) -> int:
    """Run ``run_worker(index)`` in ``count`` processes until SIGTERM or SIGINT; return 0
    once all have exited."""
    context = multiprocessing.get_context("fork")
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signals: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        signals.append(signum)
        with contextlib.suppress(BlockingIOError):
            os.write(wake_write, b"!")

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    workers: dict[int, tuple[BaseProcess, float]] = {}

    def start(index: int) -> None:
        process = context.Process(
            target=_worker_main,
            args=(run_worker, index, os.getpid()),
            name=f"rawsse-worker-{index}",
        )
        process.start()
        workers[index] = (process, time.monotonic())
        logger.info("worker %d started (pid %d)", index, process.pid)

    try:
        for index in range(count):
            start(index)
        restart_at: dict[int, float] = {}
        while not signals:
            sentinels = [process.sentinel for process, _ in workers.values()]
            timeout = None
            if restart_at:
                timeout = max(0.0, min(restart_at.values()) - time.monotonic())
            multiprocessing.connection.wait([*sentinels, wake_read], timeout)
            now = time.monotonic()
            for index, (process, started) in list(workers.items()):
                if signals or process.is_alive() or index in restart_at:
                    continue
                logger.warning(
                    "worker %d (pid %d) exited with status %s; restarting it",
                    index,
                    process.pid,
                    process.exitcode,
                )
                restart_at[index] = started + MIN_LIFETIME if now - started < MIN_LIFETIME else now
            for index, when in list(restart_at.items()):
                if when <= now and not signals:
                    del restart_at[index]
                    start(index)
        _stop(workers, signals, wake_read, shutdown_timeout)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        os.close(wake_read)
        os.close(wake_write)
    return 0


def _stop(
    workers: dict[int, tuple[BaseProcess, float]],
    signals: list[int],
    wake_read: int,
    shutdown_timeout: float,
) -> None:
    """Pass the signal on (a second signal is passed on too: workers then abort), wait
    for the workers to exit, kill what is left."""
    logger.info("%s: stopping %d workers", signal.Signals(signals[0]).name, len(workers))
    passed = 0
    deadline = time.monotonic() + shutdown_timeout + KILL_GRACE
    while True:
        while passed < len(signals):
            passed += 1
            for process, _ in workers.values():
                if process.is_alive() and process.pid is not None:
                    os.kill(process.pid, signal.SIGTERM)
        alive = [process for process, _ in workers.values() if process.is_alive()]
        left = deadline - time.monotonic()
        if not alive or left <= 0:
            break
        ready = multiprocessing.connection.wait([*(p.sentinel for p in alive), wake_read], left)
        if wake_read in ready:
            os.read(wake_read, 64)
    for process, _ in workers.values():
        if process.is_alive():
            logger.warning("worker pid %d did not exit in time; killing it", process.pid)
            process.kill()
        process.join()
