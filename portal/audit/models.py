"""The audit trail: append-only, hash-chained events."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from portal.audit.chain import event_hash, fields_of
from portal.audit.fields import CanonicalJSONField


class AuditAction(models.TextChoices):
    # Staff and sign-in
    LOGIN_SUCCEEDED = "login_succeeded", "Signed in"
    LOGIN_FAILED = "login_failed", "Sign-in failed"
    LOGIN_LOCKED_OUT = "login_locked_out", "Sign-in locked out"
    LOGOUT = "logout", "Signed out"
    STAFF_CREATED = "staff_created", "Staff member created"
    STAFF_ROLES_CHANGED = "staff_roles_changed", "Staff roles changed"
    STAFF_DEACTIVATED = "staff_deactivated", "Staff member deactivated"
    OTP_DEVICE_CONFIRMED = "otp_device_confirmed", "Two-factor device confirmed"
    OTP_REQUIREMENT_CHANGED = "otp_requirement_changed", "Two-factor requirement changed"
    OTP_DEVICE_RESET = "otp_device_reset", "Two-factor device reset"
    PASSWORD_CHANGED = "password_changed", "Own password changed"
    CONNECTION_CHANGED = "connection_changed", "Prime connection changed"
    ENCRYPTION_ROTATED = "encryption_rotated", "Stored secrets re-encrypted"
    PERMISSION_REFUSED = "permission_refused", "Action refused (no permission)"
    # Prime API users
    PRIME_USER_CREATED = "prime_user_created", "Prime user created"
    PRIME_USER_RENAMED = "prime_user_renamed", "Prime user renamed"
    PRIME_USER_ENABLED = "prime_user_enabled", "Prime user enabled"
    PRIME_USER_DISABLED = "prime_user_disabled", "Prime user disabled"
    PRIME_USER_ROLE_CHANGED = "prime_user_role_changed", "Prime user role changed"
    PRIME_USER_LABELS_CHANGED = "prime_user_labels_changed", "Prime user labels changed"
    SYNC_DIFFERENCE = "sync_difference", "Difference found by sync"
    SYNC_DIFFERENCE_REVIEWED = "sync_difference_reviewed", "Sync difference reviewed"
    # Keys
    KEY_ISSUED = "key_issued", "Key issued"
    KEY_ALLOWLIST_CHANGED = "key_allowlist_changed", "Key allow-list changed"
    KEY_REVOKED = "key_revoked", "Key revoked"
    KEY_LABEL_CHANGED = "key_label_changed", "Key label changed"
    # Settlement
    BATCH_CREATED = "batch_created", "Settlement batch created"
    BATCH_STATUS_CHANGED = "batch_status_changed", "Batch status changed"
    LEG_REQUESTED = "leg_requested", "Leg settlement requested"
    LEG_APPROVED = "leg_approved", "Leg settlement approved"
    LEG_REJECTED = "leg_rejected", "Leg settlement rejected"
    LEG_EXPIRED = "leg_expired", "Leg request expired"
    LEG_VOIDED = "leg_voided", "Leg request void (leg changed upstream)"
    LEG_SUBMITTED = "leg_submitted", "Leg sent to Kraken"
    LEG_SETTLE_FAILED = "leg_settle_failed", "Leg settlement refused or failed"
    LEG_OUTCOME_UNKNOWN = "leg_outcome_unknown", "Leg settlement outcome unknown"
    LEG_RECONCILED = "leg_reconciled", "Leg reconciled with Kraken"
    LEG_STATUS_CHANGED = "leg_status_changed", "Leg status changed"
    # Approvals
    CHANGE_REQUESTED = "change_requested", "Change requested"
    CHANGE_VOTE_APPROVED = "change_vote_approved", "Change approved (vote)"
    CHANGE_VOTE_REJECTED = "change_vote_rejected", "Change rejected (vote)"
    CHANGE_WITHDRAWN = "change_withdrawn", "Change request withdrawn"
    CHANGE_EXPIRED = "change_expired", "Change request expired"
    CHANGE_VOIDED = "change_voided", "Change request void (target changed)"
    CHANGE_EXECUTED = "change_executed", "Change executed"
    CHANGE_EXECUTION_FAILED = "change_execution_failed", "Change execution failed"
    CHANGE_OUTCOME_UNKNOWN = "change_outcome_unknown", "Change outcome unknown"
    CHANGE_RECONCILED = "change_reconciled", "Change reconciled with Kraken"
    CHANGE_REVIEWED = "change_reviewed", "Change reviewed afterwards"
    APPROVAL_POLICY_CHANGED = "approval_policy_changed", "Approval policy changed"
    WEBHOOK_SAVED = "webhook_saved", "Notification webhook saved"
    WEBHOOK_REMOVED = "webhook_removed", "Notification webhook removed"
    # Audit
    AUDIT_EXPORTED = "audit_exported", "Audit trail exported"


class TargetType(models.TextChoices):
    STAFF = "staff", "Staff member"
    CONNECTION = "connection", "Prime connection"
    PRIME_USER = "prime_user", "Prime user"
    KEY = "key", "API key"
    BATCH = "batch", "Settlement batch"
    LEG = "leg", "Settlement leg"
    AUDIT = "audit", "Audit trail"
    CHANGE_REQUEST = "change_request", "Change request"
    APPROVAL_POLICY = "approval_policy", "Approval policy"
    WEBHOOK = "webhook", "Notification webhook"
    PAGE = "page", "Page"


class Outcome(models.TextChoices):
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    REFUSED = "refused", "Refused"
    UNKNOWN = "unknown", "Outcome unknown"


class AuditEvent(models.Model):
    """One change or attempted change. Never updated or deleted once written.

    `hash` is SHA-256 over the event's canonical content including `prev_hash`
    (see `portal.audit.chain`); `seq` is gapless; `occurred_at` never decreases
    along `seq`. On PostgreSQL, triggers refuse UPDATE, DELETE and TRUNCATE.
    """

    seq = models.BigIntegerField(unique=True)
    occurred_at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_constraint=False,
    )
    actor_label = models.CharField(max_length=150)
    action = models.CharField(max_length=64, choices=AuditAction.choices)
    target_type = models.CharField(max_length=32, choices=TargetType.choices)
    target_id = models.CharField(max_length=128, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    before = CanonicalJSONField(null=True, blank=True)
    after = CanonicalJSONField(null=True, blank=True)
    prime_endpoint = models.CharField(max_length=64, blank=True)
    prime_response = CanonicalJSONField(null=True, blank=True)
    message = models.TextField(blank=True)
    # Text, not an inet column: the stored form is exactly the hashed form.
    client_ip = models.CharField(max_length=45, blank=True, default="")
    user_agent = models.CharField(max_length=300, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["-seq"]
        # Each filter of the audit page walks one of these newest-first (keyset on seq).
        indexes = [
            models.Index(fields=["target_type", "target_id", "-seq"], name="audit_target_idx"),
            models.Index(fields=["actor_label", "-seq"], name="audit_actor_idx"),
            models.Index(fields=["action", "-seq"], name="audit_action_idx"),
            models.Index(fields=["outcome", "-seq"], name="audit_outcome_idx"),
            # A time range is turned into a seq range through this one.
            models.Index(fields=["occurred_at", "seq"], name="audit_time_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} {self.target_type}:{self.target_id} ({self.outcome})"

    def recomputed_hash(self) -> str:
        """The hash this event's stored content gives now (equal to `hash` unless tampered)."""
        return event_hash(fields_of(self))


class AuditChainHead(models.Model):
    """The last seq, hash and time of the chain; locking this row serialises writers."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64)
    occurred_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"head #{self.seq}"
