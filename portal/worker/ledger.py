"""Run a scheduled job at most once per time slot, whichever worker the queue hands it to."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.worker.models import JobRun

logger = logging.getLogger("portal.worker.jobs")


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def slot_of(period_seconds: int, now: datetime) -> str:
    """The slot a run belongs to: the start of its period (UTC, to the second)."""
    start = int(now.timestamp()) // period_seconds * period_seconds
    return datetime.fromtimestamp(start, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


def intended_time(intended: str | None) -> datetime:
    """The time a schedule meant a run for (django-q2 passes it as ISO text), else now.

    Slots come from this time, not from when the job happens to run: the queue's
    scheduler looks every 30 seconds or so, so runs of a one-minute schedule anchored
    at :41 can start at 12:30:13 and 12:30:43 (two in one wall-clock minute), while
    their intended times, exactly one period apart, always fall in different slots.
    """
    if not intended:
        return timezone.now()
    found = datetime.fromisoformat(intended)
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def run_once(
    job: str, period_seconds: int, work: Callable[[], object], *, now: datetime | None = None
) -> bool:
    """Claim (job, slot) in the ledger, then run `work`; False if another run had the slot.

    `now` is the run's intended time (see `intended_time`); a second run for the same
    intended time (a job handed out again by the queue) finds its slot taken.
    """
    now = now or timezone.now()
    slot = slot_of(period_seconds, now)
    try:
        with transaction.atomic():
            run = JobRun.objects.create(
                job=job, slot=slot, worker=worker_identity(), started_at=timezone.now()
            )
    except IntegrityError:
        logger.info("job %s slot %s already ran; skipped", job, slot)
        return False
    try:
        result = work()
    except Exception as exc:
        JobRun.objects.filter(pk=run.pk).update(
            finished_at=timezone.now(), result=f"failed: {type(exc).__name__}"[:200]
        )
        raise
    JobRun.objects.filter(pk=run.pk).update(finished_at=timezone.now(), result=str(result)[:200])
    logger.info("job %s slot %s done: %s", job, slot, result)
    return True
