"""The poller's token bucket, kept in the database so every worker spends the same budget.

Only the leader polls, but leadership moves: a worker that takes over continues
from the tokens its predecessor left, so a failover never grants a fresh burst.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.db import transaction

from portal.worker.models import PollBudget


class SharedTokenBucket:
    """`rate_per_minute` tokens a minute, at most `capacity`, in one `PollBudget` row."""

    def __init__(
        self,
        name: str,
        rate_per_minute: float,
        *,
        capacity: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if rate_per_minute <= 0:
            raise ValueError("the budget must be a positive number of requests a minute")
        self.name = name
        self.rate = rate_per_minute / 60.0
        self.capacity = capacity if capacity is not None else max(1.0, rate_per_minute / 6)
        self._clock = clock

    def _refilled(self, row: PollBudget, now: float) -> float:
        elapsed = max(0.0, now - row.refilled_at)
        return min(self.capacity, row.tokens + elapsed * self.rate)

    def take(self) -> bool:
        """Spend one request if the shared budget allows it now (one row lock)."""
        now = self._clock()
        PollBudget.objects.get_or_create(
            name=self.name, defaults={"tokens": self.capacity, "refilled_at": now}
        )
        with transaction.atomic():
            row = PollBudget.objects.select_for_update().get(name=self.name)
            tokens = self._refilled(row, now)
            took = tokens >= 1
            row.tokens = tokens - 1 if took else tokens
            row.refilled_at = max(row.refilled_at, now)
            row.save(update_fields=["tokens", "refilled_at"])
        return took

    @property
    def available(self) -> float:
        row = PollBudget.objects.filter(name=self.name).first()
        return self.capacity if row is None else self._refilled(row, self._clock())
