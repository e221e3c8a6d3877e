"""Bounded waits on tasks, for a shutdown that can never hang.

Every wait of the stop sequence is bounded by time and can be cut short by an ``interrupt``
event (the second SIGTERM/SIGINT). A cancellation can be lost — a library may turn it into its
own timeout error, which a retry loop then absorbs — so a cancelled task is waited for a few
seconds at most, then left behind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)

#: Seconds a cancelled task gets to unwind before it is left behind.
CANCEL_GRACE = 5.0


async def wait_tasks(
    tasks: Iterable[asyncio.Future[Any]], seconds: float | None, interrupt: asyncio.Event | None = None
) -> set[asyncio.Future[Any]]:
    """Wait until every task is done, ``seconds`` pass (None: no limit) or ``interrupt``
    is set, whichever comes first; return the tasks still running."""
    pending = {t for t in tasks if not t.done()}
    if not pending or (seconds is not None and seconds <= 0) or (interrupt is not None and interrupt.is_set()):
        return pending
    loop = asyncio.get_running_loop()
    deadline = None if seconds is None else loop.time() + seconds
    waiter = asyncio.ensure_future(interrupt.wait()) if interrupt is not None else None
    try:
        while pending and (waiter is None or not waiter.done()):
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                break
            waited = pending | ({waiter} if waiter else set())
            done, _ = await asyncio.wait(waited, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            pending -= done
    finally:
        if waiter is not None:
            waiter.cancel()
    return pending


async def finish(task: asyncio.Task[Any], grace: float, interrupt: asyncio.Event | None = None) -> None:
    """Let ``task`` end within ``grace`` seconds (less if ``interrupt`` is set), then cancel it;
    never wait for it forever."""
    if not await wait_tasks([task], grace, interrupt):
        return
    task.cancel()
    if await wait_tasks([task], CANCEL_GRACE):
        log.warning("A task did not stop; leaving it behind.", extra={"task": task.get_name()})
