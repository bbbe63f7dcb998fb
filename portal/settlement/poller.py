"""The one process that talks to Kraken about settlement status (`manage.py prime_poll`).

Each cycle: expire overdue change requests (the approvals engine's job, run here
as the portal's one scheduled process), refresh active batches (those with open
leg requests first) within a token-bucket request budget, send the approved leg
requests that no longer wait (a batch Kraken has just confirmed, or a send left
behind by a stopped process; `change_execute_ready`), reconcile leg requests whose
outcome is unknown, and discover batches made outside the portal now and then (the
newest page of ListPrimeSettlementBatches; a batch found there is fetched once more
with GetPrimeSettlementBatch for its trade ids). A
rate limit, a 5xx or a transport failure ends the cycle and backs off (capped
exponential, honouring Kraken's retry-after). Browsers never call Kraken: they
poll the database this process keeps fresh.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from django.db import close_old_connections
from django.utils import timezone

from portal.actors import SystemActor
from portal.approvals import services as approvals
from portal.connection import door
from portal.settlement import selectors, services
from portal.settlement.models import Batch
from primeapi import errors as prime_errors
from primeapi.client import PrimeClient

logger = logging.getLogger("portal.settlement.poller")

ACTOR = SystemActor.POLLER
T = TypeVar("T")
DISCOVER_LIMIT = 20


class TokenBucket:
    """`rate_per_minute` tokens a minute, holding at most `capacity` (a burst)."""

    def __init__(
        self,
        rate_per_minute: float,
        *,
        capacity: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_minute <= 0:
            raise ValueError("the budget must be a positive number of requests a minute")
        self.rate = rate_per_minute / 60.0
        self.capacity = capacity if capacity is not None else max(1.0, rate_per_minute / 6)
        self._clock = clock
        self._tokens = self.capacity
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def take(self) -> bool:
        """Spend one request if the budget allows it now."""
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    @property
    def available(self) -> float:
        self._refill()
        return self._tokens


class Backoff:
    """Capped exponential backoff with jitter; reset after a clean cycle."""

    def __init__(
        self, *, base: float = 2.0, cap: float = 120.0, rng: random.Random | None = None
    ) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0
        self._rng = rng or random.Random()

    def next_delay(self, *, at_least: float = 0.0) -> float:
        self.failures += 1
        ceiling = min(self.cap, self.base * 2 ** (self.failures - 1))
        return max(at_least, ceiling / 2 + self._rng.uniform(0, ceiling / 2))

    def reset(self) -> None:
        self.failures = 0


@dataclass
class CycleReport:
    """What one cycle did (logged as one line)."""

    number: int
    calls: int = 0
    refreshed: int = 0
    skipped_for_budget: int = 0
    changes: int = 0
    expired: int = 0
    sent: int = 0
    reconciled: int = 0
    settled: int = 0
    voided: int = 0
    discovered: int = 0
    errors: list[str] = field(default_factory=list)
    backoff: float = 0.0

    def line(self, budget_left: float, next_in: float) -> str:
        text = (
            f"prime_poll cycle={self.number} calls={self.calls} refreshed={self.refreshed} "
            f"skipped_for_budget={self.skipped_for_budget} changes={self.changes} "
            f"expired={self.expired} reconciled={self.reconciled} settled={self.settled} "
            f"voided={self.voided} discovered={self.discovered} "
            f"sent={self.sent} budget_left={budget_left:.1f} "
            f"next_in={next_in:.1f}s"
        )
        if self.errors:
            text += " errors=" + "; ".join(self.errors)
        return text


class _Backoff(Exception):
    def __init__(self, reason: str, retry_after: float = 0.0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


# Refusals that say the portal's key cannot be used: asking again now would fail too.
KEY_REFUSED = (
    prime_errors.InvalidKeyError,
    prime_errors.InvalidSignatureError,
    prime_errors.PermissionDeniedError,
    prime_errors.TemporaryLockoutError,
)


def backoff_for(attempt: door.Attempt[T]) -> _Backoff | None:
    """Whether a failed call should end the cycle (and why), from the door's classification."""
    error = attempt.error
    if attempt.outcome in (door.CallOutcome.UNKNOWN, door.CallOutcome.UNREACHABLE):
        return _Backoff(f"Kraken unavailable ({type(error).__name__})")
    if isinstance(error, prime_errors.RateLimitedError):
        return _Backoff("rate limited by Kraken", error.retry_after or 0.0)
    if isinstance(error, prime_errors.ServiceUnavailableError):
        return _Backoff(f"Kraken unavailable ({type(error).__name__})")
    if isinstance(error, KEY_REFUSED):
        return _Backoff(f"Kraken refused the portal's key ({type(error).__name__})")
    if error is not None and error.http_status is not None and error.http_status >= 500:
        return _Backoff(f"Kraken answered HTTP {error.http_status}")
    return None


class Poller:
    """Refresh settlement status from Kraken within a request budget.

    `clock` (monotonic seconds) paces the budget and discovery; `now` (an aware
    datetime) decides which requests are overdue. Tests pass their own of both, so
    no test waits for a deadline.
    """

    def __init__(
        self,
        *,
        interval: float,
        budget_per_minute: float,
        discover_every: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = timezone.now,
    ) -> None:
        if interval <= 0:
            raise ValueError("the interval must be positive")
        self.interval = interval
        self.bucket = TokenBucket(budget_per_minute, clock=clock)
        self.backoff = Backoff(base=max(1.0, interval / 2))
        self.discover_every = discover_every
        self._clock = clock
        self._now = now
        self._last_discovery: float | None = None
        self._cycles = 0

    def run_cycle(self) -> CycleReport:
        """One pass; returns what it did. Raises nothing for Kraken trouble (see `backoff`)."""
        self._cycles += 1
        report = CycleReport(number=self._cycles)
        now = self._now()
        report.expired = approvals.change_expire_due(actor=ACTOR, now=now)
        try:
            self._refresh_active(report)
            self._discover(report)
            # After the refresh: a batch Kraken has just confirmed releases its waiting legs.
            report.sent = services.legs_send_ready(actor=ACTOR)
            report.reconciled += services.legs_reconcile_unknown(actor=ACTOR)
        except _Backoff as stop:
            report.errors.append(stop.reason)
            report.backoff = self.backoff.next_delay(at_least=stop.retry_after)
        except Exception as exc:  # a bug, not Kraken (the door classifies those): log, go on
            logger.exception("prime_poll cycle failed")
            report.errors.append(f"{type(exc).__name__}: {exc}"[:200])
            report.backoff = self.backoff.next_delay()
        else:
            self.backoff.reset()
        return report

    def _call(self, report: CycleReport, operation: Callable[[PrimeClient], T]) -> T | None:
        """One Prime call through the door; ends the cycle (backoff) when Kraken is in trouble."""
        report.calls += 1
        attempt = door.attempt_prime(operation)
        if attempt.done:
            return attempt.result()
        stop = backoff_for(attempt)
        if stop is not None:
            raise stop
        report.errors.append(f"{type(attempt.error).__name__}: {attempt.error}"[:200])
        return None

    def _refresh_active(self, report: CycleReport) -> None:
        for batch in selectors.active_batches_to_poll():
            if not self.bucket.take():
                report.skipped_for_budget += 1
                continue
            self._refresh_one(batch.prime_batch_id, report)

    def _refresh_one(self, prime_batch_id: str, report: CycleReport) -> None:
        remote = self._call(report, lambda client: client.get_settlement_batch(prime_batch_id))
        if remote is None:
            return
        summary = services.batch_apply(remote=remote, actor=ACTOR)
        report.refreshed += 1
        report.changes += summary.changes
        report.settled += summary.settled
        report.voided += summary.voided

    def _discover(self, report: CycleReport) -> None:
        now = self._clock()
        if self._last_discovery is not None and now - self._last_discovery < self.discover_every:
            return
        if not self.bucket.take():
            report.skipped_for_budget += 1
            return
        self._last_discovery = now
        page = self._call(
            report,
            # Every status: recent history shows on the batches page too. A batch found
            # here lacks its trade ids (list answers omit them); one Get fills them in.
            lambda client: client.list_settlement_batches(limit=DISCOVER_LIMIT),
        )
        if page is None:
            return
        known = set(
            Batch.objects.filter(prime_batch_id__in=[b.id for b in page.batches]).values_list(
                "prime_batch_id", flat=True
            )
        )
        for remote in page.batches:
            if remote.id not in known:
                services.batch_apply(remote=remote, actor=ACTOR)
                report.discovered += 1

    def run_forever(self, stop: threading.Event) -> int:
        """Cycle until `stop` is set; returns the number of cycles run."""
        while not stop.is_set():
            close_old_connections()
            report = self.run_cycle()
            delay = report.backoff or self.interval
            logger.info(report.line(self.bucket.available, delay))
            stop.wait(delay)
        close_old_connections()
        return self._cycles
