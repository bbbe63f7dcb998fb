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


def run_once(
    job: str, period_seconds: int, work: Callable[[], object], *, now: datetime | None = None
) -> bool:
    """Claim (job, slot) in the ledger, then run `work`; False if another run had the slot."""
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
