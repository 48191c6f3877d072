"""When to try a notice again after a transient failure (pure; the clock and dice are handed in)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

_RNG = random.Random()


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter: ~1 min, 2, 4 … capped at 6 h; give up after 48 h."""

    first_delay: timedelta = timedelta(minutes=1)
    max_delay: timedelta = timedelta(hours=6)
    give_up_after: timedelta = timedelta(hours=48)
    jitter: float = 0.2

    def next_attempt(
        self,
        *,
        attempts: int,
        first_attempt_at: datetime,
        now: datetime,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> datetime | None:
        """The next attempt time after `attempts` failed tries, or None to give up."""
        if now - first_attempt_at >= self.give_up_after:
            return None
        doublings = min(max(attempts - 1, 0), 30)
        base = min(self.first_delay * (1 << doublings), self.max_delay)
        spread = (rng or _RNG).uniform(-self.jitter, self.jitter)
        delay = base * (1 + spread)
        if retry_after is not None:
            # The server told us how long to wait: never sooner than that.
            delay = max(delay, timedelta(seconds=retry_after))
        delay = min(delay, self.max_delay)
        return now + delay
