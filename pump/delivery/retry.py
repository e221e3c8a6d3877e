"""Backoff with full jitter, capped, and when to give up.

Full jitter (a random wait between 0 and the exponential bound) spreads the retries of many pump
instances after a shared outage instead of making them hit the recovering server together.
Attempts are unlimited unless ``max_attempts`` or ``max_age`` is set: analytics must not be
dropped because a database was down for an hour.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from pump.config.model import Delivery


def backoff(attempt: int, initial: float, maximum: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based)."""
    bound = min(maximum, initial * (2 ** max(0, attempt - 1)))
    return (rng or random).uniform(0, bound)


@dataclass
class RetryState:
    """Attempts of one piece of work; ``first_failure`` is monotonic seconds."""

    policy: Delivery
    attempts: int = 0
    first_failure: float | None = None
    last_error: str = ""
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def failed(self, error: str) -> None:
        self.attempts += 1
        self.last_error = error
        if self.first_failure is None:
            self.first_failure = time.monotonic()

    def exhausted(self) -> bool:
        """True when the policy says this work goes to the dead-letter list."""
        p = self.policy
        if p.max_attempts and self.attempts >= p.max_attempts:
            return True
        return bool(p.max_age and self.first_failure is not None and time.monotonic() - self.first_failure >= p.max_age)

    def delay(self) -> float:
        return backoff(self.attempts, self.policy.backoff_initial, self.policy.backoff_max, self._rng)

    def give_up_reason(self) -> str:
        return f"gave up after {self.attempts} attempt(s): {self.last_error}"
