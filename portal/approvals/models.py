"""Change requests, their votes, and the approval policy per kind of change."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class ChangeKind(models.TextChoices):
    KEY_ISSUE = "key_issue", "Key issue"
    ALLOWLIST_WIDEN = "allowlist_widen", "Allow-list widening"
    ALLOWLIST_NARROW = "allowlist_narrow", "Allow-list narrowing"
    ROLE_ESCALATE = "role_escalate", "Role escalation (Viewer → Trader)"
    ROLE_DEMOTE = "role_demote", "Demotion (Trader → Viewer)"
    USER_ENABLE = "user_enable", "User enable"
    USER_DISABLE = "user_disable", "User disable"
    KEY_REVOKE = "key_revoke", "Key revoke"
    USER_CREATE = "user_create", "User create"
    BATCH_CREATE = "batch_create", "Batch create"
    SETTLEMENT_LEG = "settlement_leg", "Settlement leg"
    POLICY_CHANGE = "policy_change", "Approval policy change"


class RequestState(models.TextChoices):
    PENDING = "pending", "Waiting for approval"
    APPROVED = "approved", "Approved"
    EXECUTING = "executing", "Executing"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    OUTCOME_UNKNOWN = "outcome_unknown", "Outcome unknown"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"
    WITHDRAWN = "withdrawn", "Withdrawn"
    VOIDED = "voided", "Void (target changed)"


OPEN_STATES = (RequestState.PENDING, RequestState.APPROVED)
FINAL_STATES = (
    RequestState.DONE,
    RequestState.FAILED,
    RequestState.REJECTED,
    RequestState.EXPIRED,
    RequestState.WITHDRAWN,
    RequestState.VOIDED,
)

STATE_TONES: dict[str, str] = {
    RequestState.DONE: "ok",
    RequestState.APPROVED: "ok",
    RequestState.FAILED: "bad",
    RequestState.REJECTED: "bad",
    RequestState.VOIDED: "bad",
    RequestState.OUTCOME_UNKNOWN: "warn",
    RequestState.PENDING: "warn",
    RequestState.EXPIRED: "info",
    RequestState.WITHDRAWN: "info",
    RequestState.EXECUTING: "info",
}


class VoteDecision(models.TextChoices):
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"


class StepUpMethod(models.TextChoices):
    TOTP = "totp", "Authenticator code"
    RECENT = "recent", "Confirmed within the last minutes"
    PASSKEY = "passkey", "Passkey"
    NONE = "none", "Not asked (a rejection)"


class ChangeRequest(models.Model):
    """One change someone asked for; executes exactly the stored payload, at most once."""

    kind = models.CharField(max_length=32, choices=ChangeKind.choices)
    target_type = models.CharField(max_length=32)
    target_id = models.CharField(max_length=128)
    summary = models.CharField(max_length=300, blank=True)
    # Canonical JSON text (sorted keys, no spaces) and its SHA-256: what executes.
    payload = models.TextField()
    payload_hash = models.CharField(max_length=64)
    # The target as it was when the change was requested (the kind's fingerprint).
    target_fingerprint = models.JSONField(null=True, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.TextField(blank=True)
    state = models.CharField(
        max_length=16, choices=RequestState.choices, default=RequestState.PENDING
    )
    # The policy in force when the request was made.
    quorum = models.PositiveSmallIntegerField(default=1)
    step_up_every_time = models.BooleanField(default=False)
    requester_executes = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    execute_by = models.DateTimeField(null=True, blank=True)
    # When the request was claimed for sending (a claim left by a stopped process is stale).
    claimed_at = models.DateTimeField(null=True, blank=True)
    executed_at = models.DateTimeField(null=True, blank=True)
    executed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    result = models.JSONField(null=True, blank=True)
    result_message = models.TextField(blank=True)
    void_reason = models.TextField(blank=True)
    void_changes = models.JSONField(null=True, blank=True)
    # A change that ran at once (quorum 0) is reviewed afterwards by an approver.
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["state", "expires_at"], name="approvals_state_idx"),
            models.Index(fields=["requested_by", "-created_at"], name="approvals_requester_idx"),
            models.Index(fields=["target_type", "target_id"], name="approvals_target_idx"),
            models.Index(fields=["-decided_at"], name="approvals_decided_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(quorum__gte=0), name="approvals_quorum_gte_0"),
            # A settlement leg has at most one open request (the last word in a race).
            models.UniqueConstraint(
                fields=["kind", "target_id"],
                condition=Q(
                    kind="settlement_leg",
                    state__in=["pending", "approved", "executing", "outcome_unknown"],
                ),
                name="approvals_one_open_leg_request",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.target_type}:{self.target_id} ({self.state})"

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def tone(self) -> str:
        """The badge tone of the state (ok, bad, warn, info)."""
        return STATE_TONES.get(self.state, "info")


class Vote(models.Model):
    """One person's decision on one request (a unique constraint keeps it to one)."""

    change = models.ForeignKey(ChangeRequest, on_delete=models.CASCADE, related_name="votes")
    voter = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=8, choices=VoteDecision.choices)
    step_up = models.CharField(max_length=16, choices=StepUpMethod.choices)
    comment = models.TextField(blank=True)
    voted_at = models.DateTimeField()

    class Meta:
        ordering = ["voted_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["change", "voter"], name="approvals_one_vote_each"),
        ]

    def __str__(self) -> str:
        return f"{self.voter_id} {self.decision} #{self.change_id}"


class ApprovalPolicy(models.Model):
    """The policy for one kind of change (a kind without a row uses the built-in default)."""

    kind = models.CharField(max_length=32, choices=ChangeKind.choices, unique=True)
    needs_approval = models.BooleanField()
    approvers = models.PositiveSmallIntegerField()
    require_step_up_every_time = models.BooleanField(default=False)
    changed_at = models.DateTimeField(null=True, blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        verbose_name_plural = "approval policies"
        constraints = [
            models.CheckConstraint(
                condition=Q(approvers__gte=1, approvers__lte=2), name="approvals_policy_1_or_2"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind}: {self.approvers if self.needs_approval else 'none'}"
