"""The scheduled jobs the worker's queue runs (django-q2 schedules name these by dotted path).

Each runs once per slot across all workers (`ledger.run_once`), whatever the queue
does. The Kraken poller is not here: it is a leader's loop (`portal.worker.runner`).
Later scheduled jobs (reminders, scheduled revocations) are added here and in
`schedules.SCHEDULES`.
"""

from __future__ import annotations

from portal.actors import SystemActor
from portal.approvals.services import change_expire_due
from portal.notifications.delivery import deliver_due
from portal.notifications.events import (
    notify_keys_expiring,
    notify_pending_transfers,
    send_daily_digest,
)
from portal.worker.ledger import intended_time, run_once

MINUTE = 60
DAY = 24 * 60 * 60


def expire_change_requests(intended: str | None = None) -> bool:
    """Expire change requests past their deadline (`change_expire_due`)."""
    return run_once(
        "expire_change_requests",
        MINUTE,
        lambda: change_expire_due(actor=SystemActor.EXPIRY),
        now=intended_time(intended),
    )


def deliver_notifications(intended: str | None = None) -> int:
    """Send what is due in the outbox (claims make it safe to run anywhere, any number of times)."""
    return deliver_due().sent


def check_pending_transfers(intended: str | None = None) -> bool:
    """Tell people about transfers pending longer than NOTIFY_TRANSFER_PENDING_MINUTES."""
    return run_once(
        "check_pending_transfers", 5 * MINUTE, notify_pending_transfers, now=intended_time(intended)
    )


def daily_digest(intended: str | None = None) -> bool:
    """One digest per person of what waits for them."""
    return run_once("daily_digest", DAY, send_daily_digest, now=intended_time(intended))


def key_expiry_reminders(intended: str | None = None) -> bool:
    """Keys that expire soon (keys get expiry dates in a later issue; none expire yet)."""
    return run_once("key_expiry_reminders", DAY, notify_keys_expiring, now=intended_time(intended))
