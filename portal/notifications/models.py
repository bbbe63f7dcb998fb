"""Notifications: the in-portal inbox, the outbox of deliveries, preferences and webhooks."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class EventType(models.TextChoices):
    CHANGE_WAITING = "change_waiting", "A change request waits for your vote"
    CHANGE_DECIDED = "change_decided", "Your request was approved, rejected, voided or expired"
    LEG_SETTLED = "leg_settled", "A settlement leg settled"
    LEG_FAILED = "leg_failed", "A settlement leg failed"
    OUTCOME_UNKNOWN = "outcome_unknown", "An outcome is unknown and needs a person"
    TRANSFER_PENDING = "transfer_pending", "A transfer is pending longer than expected"
    KEY_EXPIRING = "key_expiring", "A key expires soon"
    DAILY_DIGEST = "daily_digest", "Daily digest of what waits for you"


# Without a saved preference: email for what needs the person, nothing else beyond the inbox.
EMAIL_BY_DEFAULT = frozenset(
    {
        EventType.CHANGE_WAITING,
        EventType.CHANGE_DECIDED,
        EventType.OUTCOME_UNKNOWN,
        EventType.KEY_EXPIRING,
    }
)


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Webhook"


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Waiting to be sent"
    SENT = "sent", "Sent"
    GAVE_UP = "gave_up", "Gave up"


class WebhookEndpoint(models.Model):
    """A receiver an Admin set up (a Slack-compatible incoming webhook or the like)."""

    name = models.CharField(max_length=80, unique=True)
    url = models.URLField(max_length=500)
    secret_token = models.TextField(help_text="The signing secret, encrypted (MultiFernet).")
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Preference(models.Model):
    """How one person wants to hear about one kind of event (the inbox always shows it)."""

    staff = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_prefs"
    )
    event_type = models.CharField(max_length=32, choices=EventType.choices)
    email = models.BooleanField(default=False)
    webhook = models.ForeignKey(
        WebhookEndpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["staff", "event_type"], name="notify_pref_once")
        ]

    def __str__(self) -> str:
        return f"{self.staff_id}:{self.event_type}"


class Notification(models.Model):
    """One event for one person: their inbox entry. `dedup_key` is unique per event and person."""

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    event_type = models.CharField(max_length=32, choices=EventType.choices)
    dedup_key = models.CharField(max_length=64, unique=True)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    link = models.CharField(max_length=500)
    created_at = models.DateTimeField()
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["recipient", "-created_at"], name="notify_inbox")]

    def __str__(self) -> str:
        return self.title


class Delivery(models.Model):
    """The outbox: one row per notification and channel, claimed by a worker to send it."""

    notification = models.ForeignKey(
        Notification, on_delete=models.CASCADE, related_name="deliveries"
    )
    channel = models.CharField(max_length=16, choices=Channel.choices)
    webhook = models.ForeignKey(
        WebhookEndpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    address = models.CharField(max_length=254, blank=True)
    state = models.CharField(
        max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    claimed_until = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=32, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["notification", "channel"], name="notify_delivery_once")
        ]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="notify_outbox_due")]

    def __str__(self) -> str:
        return f"{self.notification_id}:{self.channel}"


class PendingTransferSeen(models.Model):
    """When the worker first saw a transfer pending (to tell people it takes too long)."""

    transfer_id = models.CharField(max_length=64, primary_key=True)
    leg_label = models.CharField(max_length=120)
    link = models.CharField(max_length=500)
    first_seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.transfer_id
