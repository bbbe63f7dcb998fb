"""Notifications follow the audit trail: each audit event that people must hear about
becomes notifications, written in the same transaction as the event (and the change)."""

from __future__ import annotations

import logging

from django.db.models.signals import post_save
from django.dispatch import receiver

from portal.audit.models import AuditEvent
from portal.notifications.events import notify_for_audit

logger = logging.getLogger("portal.notifications")


@receiver(post_save, sender=AuditEvent, dispatch_uid="notifications-from-audit")
def audit_event_written(
    sender: type, instance: AuditEvent, created: bool, **kwargs: object
) -> None:
    if not created:
        return
    notify_for_audit(instance)
