"""The worker's scheduled jobs, as django-q2 schedules (created once by this app's migration).

A later job is one more entry here plus a migration that calls `ensure_schedules`
again (it only adds what is missing and fixes changed periods).

Every schedule hands its job the time the run was meant for (`intended`, django-q2's
`intended_date_kwarg`): the job's once-per-slot ledger counts slots from that time,
not from when the queue got round to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

INTENDED_KWARG = "intended"


@dataclass(frozen=True)
class Job:
    name: str
    func: str
    minutes: int  # the period; 1440 runs it daily
    first_hour: int | None = None  # daily jobs: the local hour of the first run


SCHEDULES: tuple[Job, ...] = (
    Job("expire change requests", "portal.worker.jobs.expire_change_requests", 1),
    Job("deliver notifications (retries)", "portal.worker.jobs.deliver_notifications", 1),
    Job("pending transfers", "portal.worker.jobs.check_pending_transfers", 5),
    Job("daily digest", "portal.worker.jobs.daily_digest", 1440, first_hour=7),
    Job("key expiry reminders", "portal.worker.jobs.key_expiry_reminders", 1440, first_hour=6),
)


def _first_run(job: Job, now: datetime) -> datetime:
    if job.first_hour is None:
        return now
    local = timezone.localtime(now).replace(hour=job.first_hour, minute=0, second=0, microsecond=0)
    return local if local > now else local + timedelta(days=1)


def ensure_schedules(schedule_model: type, now: datetime | None = None) -> int:
    """Create the missing schedules (by name); returns how many were created."""
    now = now or timezone.now()
    created = 0
    for job in SCHEDULES:
        schedule_type = "D" if job.minutes == 1440 else "I"
        found = schedule_model.objects.filter(name=job.name).first()  # type: ignore[attr-defined]
        if found is None:
            schedule_model.objects.create(  # type: ignore[attr-defined]
                name=job.name,
                func=job.func,
                schedule_type=schedule_type,
                minutes=None if schedule_type == "D" else job.minutes,
                repeats=-1,
                next_run=_first_run(job, now),
                intended_date_kwarg=INTENDED_KWARG,
            )
            created += 1
        elif (
            found.func != job.func
            or (schedule_type == "I" and found.minutes != job.minutes)
            or found.intended_date_kwarg != INTENDED_KWARG
        ):
            found.func = job.func
            found.minutes = None if schedule_type == "D" else job.minutes
            found.schedule_type = schedule_type
            found.intended_date_kwarg = INTENDED_KWARG
            found.save()
    return created
