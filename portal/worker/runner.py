"""The leader's loop: whoever holds the leader lock runs the Kraken poller, the others wait.

The poller is `portal.settlement.poller.Poller`, used as it is: the worker only swaps
its per-process token bucket for the database one (`SharedTokenBucket`) and calls
`run_cycle()` while the lock is held, checking the lock before every cycle.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from portal.settlement.poller import Poller
from portal.worker.budget import SharedTokenBucket
from portal.worker.leader import LeaderLock, leader_lock
from portal.worker.ledger import worker_identity
from portal.worker.models import Leadership

logger = logging.getLogger("portal.worker")

POLLER_ROLE = "kraken-poller"


def make_poller(*, interval: float | None = None, budget_per_minute: float | None = None) -> Poller:
    """The poller with the budget every worker (and `manage.py prime_poll`) shares."""
    interval = interval or float(settings.PRIME_POLL_INTERVAL_SECONDS)
    budget = budget_per_minute or float(settings.PRIME_POLL_BUDGET_PER_MINUTE)
    poller = Poller(interval=interval, budget_per_minute=budget)
    poller.bucket = SharedTokenBucket(POLLER_ROLE, budget)  # type: ignore[assignment]
    return poller


def _took_over(identity: str) -> None:
    now = timezone.now()
    Leadership.objects.update_or_create(
        role=POLLER_ROLE,
        defaults={"holder": identity, "since": now, "last_cycle_at": None, "cycles": 0},
    )


def _cycled(identity: str, cycles: int) -> None:
    Leadership.objects.filter(role=POLLER_ROLE, holder=identity).update(
        last_cycle_at=timezone.now(), cycles=cycles
    )


def lead_or_wait(
    stop: threading.Event,
    *,
    lock: LeaderLock | None = None,
    poller_factory: Callable[[], Poller] = make_poller,
    retry_every: float | None = None,
    identity: str | None = None,
) -> int:
    """Until `stop`: try to become the poller's leader; while leading, poll; else retry.

    Returns how many cycles it ran in all."""
    lock = lock or leader_lock(POLLER_ROLE)
    identity = identity or worker_identity()
    retry = retry_every if retry_every is not None else float(settings.WORKER_LEADER_RETRY_SECONDS)
    total = 0
    try:
        while not stop.is_set():
            if not lock.acquire():
                stop.wait(retry)
                continue
            logger.info("worker %s leads: it runs the Kraken poller", identity)
            close_old_connections()
            _took_over(identity)
            poller = poller_factory()
            cycles = 0
            while not stop.is_set() and lock.held():
                close_old_connections()
                report = poller.run_cycle()
                cycles += 1
                total += 1
                _cycled(identity, cycles)
                delay = report.backoff or poller.interval
                logger.info("%s leader=%s", report.line(poller.bucket.available, delay), identity)
                stop.wait(delay)
            if not stop.is_set():
                logger.warning("worker %s lost the leader lock; it stops polling", identity)
            lock.release()
    finally:
        lock.release()
        close_old_connections()
    return total
