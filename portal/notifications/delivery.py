"""Sending the outbox: claim due deliveries, send each once, retry failures with backoff.

At least once: a delivery is claimed for NOTIFY_CLAIM_SECONDS; a worker that dies
mid-send leaves the claim to run out and another worker sends it again. Every
message carries the notification's deduplication key (email `Message-ID` and
`X-Portal-Dedup-Key`; webhook header and body field), so a receiver that sees it
twice acts once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests
from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from portal.connection.crypto import SecretUndecryptable, decrypt_secret
from portal.notifications.models import Channel, Delivery, DeliveryState, EventType

logger = logging.getLogger("portal.notifications")

SIGNATURE_HEADER = "X-Portal-Signature"
TIMESTAMP_HEADER = "X-Portal-Timestamp"
DEDUP_HEADER = "X-Portal-Dedup-Key"
EVENT_HEADER = "X-Portal-Event"


class DeliveryFailed(Exception):
    """The channel did not take the message (said in words without secrets or addresses)."""


@dataclass
class DeliveryReport:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    gave_up: int = 0


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=` + HMAC-SHA256 over `<timestamp>.<body>` with the endpoint's secret."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: str, timestamp: str, body: bytes, signature: str, *, now: float, tolerance: int = 300
) -> bool:
    """What a receiver checks: the signature, and a timestamp within `tolerance` seconds."""
    try:
        age = abs(now - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance and hmac.compare_digest(sign(secret, timestamp, body), signature)


def backoff(attempts: int) -> timedelta:
    base = float(settings.NOTIFY_RETRY_BASE_SECONDS)
    return timedelta(
        seconds=min(float(settings.NOTIFY_RETRY_CAP_SECONDS), base * 2 ** (attempts - 1))
    )


def _claim(now: datetime, limit: int, token: str) -> list[Delivery]:
    due = Q(state=DeliveryState.PENDING, next_attempt_at__lte=now) & (
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    )
    until = now + timedelta(seconds=settings.NOTIFY_CLAIM_SECONDS)
    with transaction.atomic():
        ids = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(due)
            .order_by("next_attempt_at", "pk")
            .values_list("pk", flat=True)[:limit]
        )
        # The condition is checked again by the UPDATE: on SQLite (no row locks) a row
        # another worker claimed in between is not taken twice.
        Delivery.objects.filter(due, pk__in=ids).update(claimed_until=until, claim_token=token)
    return list(
        Delivery.objects.filter(claim_token=token, claimed_until=until)
        .select_related("notification", "webhook")
        .order_by("pk")
    )


def _email(delivery: Delivery) -> None:
    note = delivery.notification
    domain = settings.PORTAL_BASE_URL.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    message = EmailMessage(
        subject=f"[Prime Ops] {note.title}",
        body=f"{note.body}\n\nOpen it in the portal: {note.link}\n",
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[delivery.address],
        headers={
            "Message-ID": f"<{note.dedup_key}@{domain or 'portal'}>",
            DEDUP_HEADER: note.dedup_key,
            EVENT_HEADER: note.event_type,
        },
    )
    try:
        with get_connection(fail_silently=False, timeout=settings.EMAIL_TIMEOUT) as connection:
            connection.send_messages([message])
    except Exception as exc:  # smtplib.SMTPException, OSError: the server is down or refused
        raise DeliveryFailed(f"the mail server did not take it ({type(exc).__name__})") from exc


def webhook_body(delivery: Delivery) -> bytes:
    """A Slack-compatible body (`text`, `blocks`) with the portal's own fields beside it."""
    note = delivery.notification
    text = f"*{note.title}*\n{note.body}\n<{note.link}|Open it in the portal>"
    payload = {
        "text": text,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
        "dedup_key": note.dedup_key,
        "event": note.event_type,
        "link": note.link,
    }
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def _webhook(delivery: Delivery) -> None:
    endpoint = delivery.webhook
    if endpoint is None or not endpoint.enabled:
        raise DeliveryFailed("the webhook was removed or switched off")
    try:
        secret = decrypt_secret(endpoint.secret_token)
    except SecretUndecryptable as exc:
        raise DeliveryFailed("the webhook's secret cannot be decrypted") from exc
    body = webhook_body(delivery)
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(secret, timestamp, body),
        TIMESTAMP_HEADER: timestamp,
        DEDUP_HEADER: delivery.notification.dedup_key,
        EVENT_HEADER: delivery.notification.event_type,
    }
    try:
        answer = requests.post(
            endpoint.url,
            data=body,
            headers=headers,
            timeout=settings.NOTIFY_WEBHOOK_TIMEOUT_SECONDS,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise DeliveryFailed(f"the webhook did not answer ({type(exc).__name__})") from exc
    if not 200 <= answer.status_code < 300:
        raise DeliveryFailed(f"the webhook answered HTTP {answer.status_code}")


def send_one(delivery: Delivery) -> None:
    if delivery.channel == Channel.EMAIL:
        _email(delivery)
    else:
        _webhook(delivery)


def deliver_due(*, now: datetime | None = None, limit: int = 100) -> DeliveryReport:
    """Send every due delivery this worker can claim; returns what happened."""
    now = now or timezone.now()
    token = secrets.token_hex(16)
    report = DeliveryReport()
    for delivery in _claim(now, limit, token):
        report.claimed += 1
        mine = Delivery.objects.filter(pk=delivery.pk, claim_token=token)
        attempts = delivery.attempts + 1
        try:
            send_one(delivery)
        except DeliveryFailed as exc:
            report.failed += 1
            give_up = attempts >= settings.NOTIFY_MAX_ATTEMPTS
            report.gave_up += give_up
            mine.update(
                attempts=attempts,
                last_error=str(exc)[:300],
                next_attempt_at=now + backoff(attempts),
                claimed_until=None,
                claim_token="",
                state=DeliveryState.GAVE_UP if give_up else DeliveryState.PENDING,
            )
            logger.warning(
                "notification %s by %s failed (attempt %d): %s",
                delivery.notification.dedup_key,
                delivery.channel,
                attempts,
                exc,
            )
            continue
        report.sent += 1
        mine.update(
            attempts=attempts,
            state=DeliveryState.SENT,
            sent_at=timezone.now(),
            claimed_until=None,
            claim_token="",
            last_error="",
        )
    return report


__all__ = [
    "DEDUP_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "DeliveryReport",
    "EventType",
    "deliver_due",
    "sign",
    "verify",
]
