"""Settlement: the local mirror of Kraken's batches and legs.

Kraken is the source of truth for `Batch` and `Leg` (written only by the services
that read Kraken). Who asked to settle which leg, who approved it and how far the
one send got is a change request of the approvals engine (kind `settlement_leg`,
registered in `portal.settlement.approvals`), named by the leg's audit id.
"""

from __future__ import annotations

from django.db import models


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


class BatchLive(models.Model):
    """The version of a batch's live fragment, moved by database triggers, never by Python.

    Every write to what the fragment shows (the batch row, its legs, their change requests
    and votes, audit events about any of them) gives `version` a new value in the writer's
    own transaction, bulk `.update()` calls and raw SQL included: see migration 0004 and
    `portal/settlement/live_version.py`. A batch without a row here is always drawn afresh.
    """

    # No foreign key constraint: its check would take a share lock on the batch row while
    # a writer commits (after the first bump in a transaction), which the poller holds
    # `FOR UPDATE` while it waits for the request rows that writer holds: a deadlock.
    batch = models.OneToOneField(
        Batch, on_delete=models.CASCADE, primary_key=True, related_name="+", db_constraint=False
    )
    version = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.batch_id} v{self.version}"


def leg_audit_id(prime_batch_id: str, asset: str) -> str:
    """How a leg is named in the audit trail."""
    return f"{prime_batch_id}:{asset}"
