"""manage.py expire_change_requests: expire overdue change requests (the scheduled job's work)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from portal.actors import SystemActor
from portal.approvals.services import change_expire_due


class Command(BaseCommand):
    help = (
        "Expire pending change requests past their expiry, and approved ones the requester "
        "did not carry out in time. Each expiry is audited."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        count = change_expire_due(actor=SystemActor.EXPIRY)
        self.stdout.write(f"Expired {count} change request{'s' if count != 1 else ''}.")
