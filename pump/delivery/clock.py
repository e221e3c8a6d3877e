"""The delivery layer's notion of time, injectable so its rules can be tested without waiting.

Backoffs, ``max_age``, ``--once`` patience and how long a pump has been failing all read
:class:`Clock`; the unit tests pass a clock whose ``sleep`` only moves its hands forward.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""

    async def sleep(self, seconds: float, wake: asyncio.Event) -> None:
        """Wait ``seconds``, or less if ``wake`` is set (a stop must not wait out a backoff)."""


class MonotonicClock:
    """The real clock: ``time.monotonic`` and an interruptible ``asyncio`` wait."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float, wake: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=seconds)


SYSTEM_CLOCK = MonotonicClock()
