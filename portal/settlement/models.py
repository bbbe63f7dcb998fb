"""Settlement: the local mirror of Kraken's batches and legs, and the four-eyes intents.

Kraken is the source of truth for `Batch` and `Leg` (written only by the services
that read Kraken). `SettlementIntent` holds what Kraken does not: who asked to
settle which leg, for exactly which amount and direction, who approved or
rejected it, and how far the one send got.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models import Q

from portal.settlement import messages
from portal.settlement.messages import amount_text
from portal.staff.roles import APPROVE_SETTLEMENT

if TYPE_CHECKING:
    from portal.staff.models import Staff


class BatchStatus(models.TextChoices):
    UNSETTLED = "unsettled", "Unsettled"
    PARTIALLY_SETTLED = "partially_settled", "Partially settled"
    SETTLED = "settled", "Settled (transfers running)"
    COMPLETED = "completed", "Completed"


class AssetKind(models.TextChoices):
    CURRENCY = "currency", "Currency"
    TOKENIZED_EQUITY = "tokenized_equity", "Tokenized equity"


class LegStatus(models.TextChoices):
    UNSETTLED = "unsettled", "Unsettled"
    SETTLING = "settling", "Settling"
    SETTLED = "settled", "Settled"


class Direction(models.TextChoices):
    INCOMING = "incoming", "Incoming"
    OUTGOING = "outgoing", "Outgoing"


class Batch(models.Model):
    """A settlement batch as Kraken last reported it."""

    prime_batch_id = models.CharField(max_length=64, unique=True)
    # Choices name the known values; Kraken's word is stored even if it is a new one.
    asset_kind = models.CharField(
        max_length=32, choices=AssetKind.choices, default=AssetKind.CURRENCY
    )
    status = models.CharField(
        max_length=32, choices=BatchStatus.choices, default=BatchStatus.UNSETTLED
    )
    confirmed = models.BooleanField(default=False)
    trade_count = models.PositiveIntegerField(default=0)
    trade_ids = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(db_index=True)
    updated_at = models.DateTimeField(null=True, blank=True)
    last_refreshed_at = models.DateTimeField(null=True, blank=True)
    is_final = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["is_final", "status"], name="settle_batch_active_idx")]

    def __str__(self) -> str:
        return self.prime_batch_id


class Leg(models.Model):
    """Net position of one asset within a batch, as Kraken last reported it."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="legs")
    asset = models.CharField(max_length=32)
    direction = models.CharField(max_length=16, choices=Direction.choices)
    amount = models.DecimalField(max_digits=38, decimal_places=18)
    can_settle = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=LegStatus.choices, default=LegStatus.UNSETTLED)
    transfer_id = models.CharField(max_length=64, blank=True)
    transfer_status = models.CharField(max_length=16, blank=True)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["asset"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "asset"], name="settle_leg_unique_asset")
        ]

    def __str__(self) -> str:
        return f"{self.batch_id}:{self.asset}"

    @property
    def audit_id(self) -> str:
        """The leg's id in the audit trail: `<prime batch id>:<asset>`."""
        return leg_audit_id(self.batch.prime_batch_id, self.asset)


def leg_audit_id(prime_batch_id: str, asset: str) -> str:
    """How a leg is named in the audit trail."""
    return f"{prime_batch_id}:{asset}"


class IntentState(models.TextChoices):
    REQUESTED = "requested", "Requested"
    APPROVED = "approved", "Approved"
    SUBMITTING = "submitting", "Sending to Kraken"
    SUBMITTED = "submitted", "Sent (transfer running)"
    SETTLED = "settled", "Settled"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"
    VOIDED = "voided", "Void (leg changed at Kraken)"
    FAILED = "failed", "Failed"
    OUTCOME_UNKNOWN = "outcome_unknown", "Outcome unknown"


# Intents that still hold the leg: at most one of these per (batch, asset).
OPEN_STATES = (
    IntentState.REQUESTED,
    IntentState.APPROVED,
    IntentState.SUBMITTING,
    IntentState.SUBMITTED,
    IntentState.OUTCOME_UNKNOWN,
)
# Open intents not yet handed to Kraken: these are voided when the leg changes upstream.
UNSENT_STATES = (IntentState.REQUESTED, IntentState.APPROVED)

# How a state shows as a badge (the CSS class beside `badge`).
BADGE_TONES: dict[str, str] = {
    IntentState.SETTLED: "ok",
    IntentState.SUBMITTED: "ok",
    IntentState.OUTCOME_UNKNOWN: "warn",
    IntentState.SUBMITTING: "warn",
    IntentState.FAILED: "bad",
    IntentState.REJECTED: "bad",
    IntentState.VOIDED: "bad",
    IntentState.EXPIRED: "bad",
}


class SettlementIntent(models.Model):
    """One intent to settle one leg, bound to the exact amount and direction requested."""

    batch = models.ForeignKey(Batch, on_delete=models.PROTECT, related_name="intents")
    leg = models.ForeignKey(Leg, on_delete=models.PROTECT, related_name="intents")
    asset = models.CharField(max_length=32)
    amount = models.DecimalField(max_digits=38, decimal_places=18)
    direction = models.CharField(max_length=16, choices=Direction.choices)
    state = models.CharField(
        max_length=20, choices=IntentState.choices, default=IntentState.REQUESTED
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    requested_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    rejected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    rejected_at = models.DateTimeField(null=True, blank=True)
    reject_reason = models.TextField(blank=True)
    # The leg's transfer id before the send: a different one afterwards is ours.
    prior_transfer_id = models.CharField(max_length=64, blank=True)
    submitting_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    transfer_id = models.CharField(max_length=64, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # What the person needs to know: Kraken's refusal, or what reconciliation found.
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["batch", "asset"],
                condition=Q(
                    state__in=[
                        "requested",
                        "approved",
                        "submitting",
                        "submitted",
                        "outcome_unknown",
                    ]
                ),
                name="settle_one_open_intent_per_leg",
            )
        ]
        indexes = [models.Index(fields=["state", "expires_at"], name="settle_intent_state_idx")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.batch_id}:{self.asset} {self.state}"

    @property
    def is_open(self) -> bool:
        """True while this intent holds its leg."""
        return self.state in OPEN_STATES

    @property
    def audit_id(self) -> str:
        """The leg's id in the audit trail."""
        return leg_audit_id(self.batch.prime_batch_id, self.asset)

    @property
    def badge_tone(self) -> str:
        """The badge colour of this intent's state (ok, warn, bad or info)."""
        return BADGE_TONES.get(self.state, "info")

    @property
    def what(self) -> str:
        """What is to be settled, in words: ``outgoing 45000 USD``."""
        return f"{self.direction} {amount_text(self.amount)} {self.asset}"

    def decider_refusal(self, staff: Staff, *, verb: str) -> str:
        """Why `staff` may not approve or reject this intent ("" when they may)."""
        if not staff.has_perm(APPROVE_SETTLEMENT):
            return messages.NEED_APPROVER.format(verb=verb)
        if self.requested_by_id == staff.pk:
            return messages.OWN_INTENT.format(verb=verb)
        return ""

    def can_be_decided_by(self, staff: Staff) -> bool:
        """True when `staff` may approve or reject this intent (four eyes)."""
        return not self.decider_refusal(staff, verb="approve")
