"""Writing notifications: one inbox row per person and event, and its outbox deliveries.

`notify()` runs inside the caller's transaction (the one that writes the change and
its audit event), so a notification exists exactly when the change does, and a
worker that dies later cannot lose it: the outbox row stays until it is sent.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.actors import Actor
from portal.audit.models import AuditAction, TargetType
from portal.audit.services import audit_record
from portal.connection.crypto import encrypt_secret
from portal.notifications.models import (
    EMAIL_BY_DEFAULT,
    Channel,
    Delivery,
    EventType,
    Notification,
    Preference,
    WebhookEndpoint,
)
from portal.staff.models import Staff

logger = logging.getLogger("portal.notifications")


def absolute(path: str) -> str:
    """The link people follow: PORTAL_BASE_URL + a portal path."""
    return f"{settings.PORTAL_BASE_URL}{path}"


def dedup_key(event_key: str, recipient: Staff) -> str:
    """The same event for the same person always has this key (receivers drop repeats)."""
    return hashlib.sha256(f"{event_key}|staff:{recipient.pk}".encode()).hexdigest()[:40]


def preference_of(staff: Staff, event_type: str) -> tuple[bool, int | None]:
    """(email?, webhook id or None) for one person and kind of event."""
    pref = Preference.objects.filter(staff=staff, event_type=event_type).first()
    if pref is None:
        return event_type in EMAIL_BY_DEFAULT, None
    return pref.email, pref.webhook_id


def preferences_save(staff: Staff, choices: dict[str, tuple[bool, WebhookEndpoint | None]]) -> None:
    """Save which events reach `staff` by email and by which webhook (event type ->
    (email, webhook or None)); the inbox always has them. One transaction for all."""
    with transaction.atomic():
        for event_type, (email, webhook) in choices.items():
            Preference.objects.update_or_create(
                staff=staff, event_type=event_type, defaults={"email": email, "webhook": webhook}
            )


def notify(
    *,
    event_type: EventType,
    event_key: str,
    recipients: Iterable[Staff],
    title: str,
    body: str,
    path: str,
) -> int:
    """Write the notification of one event for each recipient; returns how many were new."""
    now = timezone.now()
    created = 0
    seen: set[int] = set()
    for person in recipients:
        if person.pk in seen or not person.is_active:
            continue
        seen.add(person.pk)
        key = dedup_key(event_key, person)
        try:
            with transaction.atomic():
                note = Notification.objects.create(
                    recipient=person,
                    event_type=event_type,
                    dedup_key=key,
                    title=title[:200],
                    body=body,
                    link=absolute(path),
                    created_at=now,
                )
                email, webhook_id = preference_of(person, event_type)
                if email and person.email:
                    Delivery.objects.create(
                        notification=note,
                        channel=Channel.EMAIL,
                        address=person.email,
                        next_attempt_at=now,
                    )
                if webhook_id is not None:
                    Delivery.objects.create(
                        notification=note,
                        channel=Channel.WEBHOOK,
                        webhook_id=webhook_id,
                        next_attempt_at=now,
                    )
        except IntegrityError:
            continue  # this event was already told to this person
        created += 1
    if created:
        transaction.on_commit(kick_delivery)
    return created


def kick_delivery() -> None:
    """Ask a worker to send now (the every-minute schedule catches anything this misses)."""
    if not getattr(settings, "NOTIFY_KICK_WORKER", True):
        return
    try:
        from django_q.tasks import async_task

        async_task("portal.worker.jobs.deliver_notifications", q_options={"timeout": 110})
    except Exception:  # the outbox keeps the notification; the schedule sends it
        logger.exception("could not queue the notification delivery")


def inbox_for(staff: Staff, *, limit: int = 50) -> list[Notification]:
    return list(Notification.objects.filter(recipient=staff).order_by("-created_at", "-pk")[:limit])


def unread_count(staff: Staff) -> int:
    return Notification.objects.filter(recipient=staff, read_at__isnull=True).count()


def mark_all_read(staff: Staff) -> int:
    return Notification.objects.filter(recipient=staff, read_at__isnull=True).update(
        read_at=timezone.now()
    )


def webhook_summary(endpoint: WebhookEndpoint) -> dict[str, object]:
    """What the audit trail keeps of a webhook: never its secret, nor the address's path
    (incoming-webhook addresses often carry a token there), only where it points."""
    parts = urlsplit(endpoint.url)
    return {
        "name": endpoint.name,
        "destination": f"{parts.scheme}://{parts.netloc}",
        "enabled": endpoint.enabled,
    }


def webhook_save(endpoint: WebhookEndpoint, *, secret: str, actor: Actor) -> WebhookEndpoint:
    """Create or change a webhook (a new secret is stored encrypted) and audit it, with
    what was stored before (a bound form has already copied its fields onto `endpoint`)."""
    with transaction.atomic():
        stored = (
            WebhookEndpoint.objects.select_for_update().filter(pk=endpoint.pk).first()
            if endpoint.pk
            else None
        )
        before = webhook_summary(stored) if stored else None
        if secret:
            endpoint.secret_token = encrypt_secret(secret)
        endpoint.updated_by = actor if isinstance(actor, Staff) else None
        endpoint.save()
        after = webhook_summary(endpoint) | {"signing_key": "replaced" if secret else "kept"}
        if before is None:
            after["signing_key"] = "set"
        audit_record(
            actor=actor,
            action=AuditAction.WEBHOOK_SAVED,
            target_type=TargetType.WEBHOOK,
            target_id=str(endpoint.pk),
            before=before,
            after=after,
            secrets=[secret] if secret else (),
        )
    return endpoint


def webhook_remove(pk: int, *, actor: Actor) -> bool:
    """Remove a webhook (people who chose it fall back to the inbox) and audit it."""
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().filter(pk=pk).first()
        if endpoint is None:
            return False
        before = webhook_summary(endpoint)
        endpoint.delete()
        audit_record(
            actor=actor,
            action=AuditAction.WEBHOOK_REMOVED,
            target_type=TargetType.WEBHOOK,
            target_id=str(pk),
            before=before,
        )
    return True
