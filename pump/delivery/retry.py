"""Backoff with full jitter, capped, and when to give up.

Full jitter (a random wait between 0 and the exponential bound) spreads the retries of many pump
instances after a shared outage instead of making them hit the recovering server together.
Attempts are unlimited unless ``max_attempts`` or ``max_age`` is set: analytics must not be
dropped because a database was down for an hour — or for a week, so the attempt number may grow
without bound and :func:`backoff_bound` must stay correct for any of them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from pump.config.model import Delivery
from pump.delivery.clock import SYSTEM_CLOCK, Clock

#: Doublings after which the exponential bound is past any cap: ``initial`` × 2**1000 is above every
#: finite ``maximum`` for any ``initial`` ≥ 1e-290 s, and 2.0**1000 is still a finite float.
MAX_DOUBLINGS = 1000


def backoff_bound(attempt: int, initial: float, maximum: float) -> float:
    """The upper end of the wait before retry number ``attempt`` (1-based): ``initial`` doubled
    per attempt, capped at ``maximum``.

    The exponent stops growing at :data:`MAX_DOUBLINGS`, so the millionth attempt costs the
    same as the tenth and never overflows (``initial * 2**1024`` raises OverflowError: it is
    what used to kill a pump whose sink was down for ~1,025 attempts)."""
    doublings = min(max(0, attempt - 1), MAX_DOUBLINGS)
    return min(maximum, initial * 2.0**doublings)


def backoff(attempt: int, initial: float, maximum: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): full jitter under
    :func:`backoff_bound`. The one backoff of the pump: per-pump retries and Redis waits use it."""
    return (rng or random).uniform(0, backoff_bound(attempt, initial, maximum))


@dataclass
class RetryState:
    """Attempts of one piece of work; ``first_failure`` is monotonic seconds (of ``clock``)."""

    policy: Delivery
    attempts: int = 0
    first_failure: float | None = None
    last_error: str = ""
    clock: Clock = field(default=SYSTEM_CLOCK, repr=False)
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def failed(self, error: str) -> None:
        self.attempts += 1
        self.last_error = error
        if self.first_failure is None:
            self.first_failure = self.clock.now()

    def exhausted(self) -> bool:
        """True when the policy says this work goes to the dead-letter list."""
        p = self.policy
        if p.max_attempts and self.attempts >= p.max_attempts:
            return True
        return bool(p.max_age and self.first_failure is not None and self.clock.now() - self.first_failure >= p.max_age)

    def delay(self) -> float:
        return backoff(self.attempts, self.policy.backoff_initial, self.policy.backoff_max, self._rng)

    def give_up_reason(self) -> str:
        return f"gave up after {self.attempts} attempt(s): {self.last_error}"
