"""The process around the daemon: its event loop (:func:`run_loop`), garbage-collector tuning,
listener errors, stuck I/O threads and the SIGUSR1 task dump. Nothing here knows the delivery path."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from pump.delivery.tasks import CANCEL_GRACE
from pump.errors import EX_CONFIG, EX_TEMPFAIL, CommandError

#: The daemon's logger: these lines are the daemon's, whichever module writes them.
log = logging.getLogger("pump.app")


def tune_gc() -> None:
    """Keep Python's cycle collector out of the hot path.

    Records, documents and rows hold no reference cycles, so reference counting frees them; the
    cycle collector only walks the millions of objects of the batches in flight, again and again
    (measured: ~15% of the pipeline's time). Freeze what start-up created and collect far less
    often; anything cyclic is still collected, just later."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def listen_error(exc: OSError, what: str, where: str, key: str) -> CommandError:
    """The one-line error for a listener that cannot be opened."""
    if exc.errno == errno.EADDRINUSE:
        return CommandError(
            f"cannot serve {what} on {where}: the address is already in use (is another pump running?); "
            f"stop it or set {key} to a free port",
            EX_TEMPFAIL,
        )
    return CommandError(f"cannot serve {what} on {where}: {exc.strerror or exc}; fix {key}", EX_CONFIG)


def stuck_threads(grace: float) -> list[threading.Thread]:
    """Non-daemon threads still running after ``grace`` seconds (idle pool threads exit at once)."""
    deadline = time.monotonic() + grace
    others = [t for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon]
    for t in others:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    return [t for t in others if t.is_alive()]


def dump_tasks() -> None:
    """SIGUSR1: log where every task of the loop is waiting (for a pump that seems stuck)."""
    import io

    for task in asyncio.all_tasks():
        buf = io.StringIO()
        task.print_stack(limit=12, file=buf)
        log.warning("Task stack.", extra={"task": task.get_name(), "stack": buf.getvalue()})


def run_loop(main: Callable[[], Awaitable[int]]) -> int:
    """Run ``main()`` in a fresh event loop and return its exit code (the daemon's ``run``).

    Unlike ``asyncio.run``, what is left when ``main`` has returned cannot keep the process
    alive: leftover tasks get a bounded time to unwind, and the I/O threads (``to_thread``) are
    not joined — a thread stuck in a sink's blocking call (a hung NFS write, a full pipe) would
    otherwise hold the exit forever, since Python joins them at interpreter shutdown. Then the
    process ends without waiting for them, after flushing the logs."""
    loop = asyncio.new_event_loop()
    executor = ThreadPoolExecutor(thread_name_prefix="pump-io")
    loop.set_default_executor(executor)
    try:
        code = loop.run_until_complete(main())
        leftovers = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in leftovers:
            task.cancel()
        if leftovers:
            loop.run_until_complete(asyncio.wait(leftovers, timeout=CANCEL_GRACE))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
        loop.close()
    stuck = stuck_threads(grace=1.0)
    if stuck:
        log.warning("Exiting without waiting for blocked I/O threads (a sink call that never returned).", extra={"threads": len(stuck)})
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        logging.shutdown()
        os._exit(code)
    return code
