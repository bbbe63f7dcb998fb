"""Reviewing afterwards: a change that ran at once (quorum 0) is marked reviewed by an approver."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from portal.approvals import messages
from portal.approvals.models import ChangeRequest
from portal.approvals.services.common import ApprovalError, ChangeOutcome, audit_change, spec_of
from portal.audit.models import AuditAction
from portal.staff.models import Staff

REVIEWABLE_STATES = ("done", "failed", "outcome_unknown")


def change_mark_reviewed(*, change_id: int, actor: Staff, comment: str = "") -> ChangeOutcome:
    """Record that an approver looked at a change that ran without approval (audited once)."""
    with transaction.atomic(durable=True):
        change = ChangeRequest.objects.select_for_update().filter(pk=change_id).first()
        if change is None:
            raise ApprovalError(messages.NOT_PENDING.format(state="gone"))
        spec = spec_of(change)
        if change.quorum != 0 or change.state not in REVIEWABLE_STATES:
            raise ApprovalError(messages.NOT_REVIEWABLE)
        if actor.pk == change.requested_by_id:
            raise ApprovalError(messages.OWN_REVIEW, forbidden=True)
        if not actor.has_perm(spec.approve_permission):
            raise ApprovalError(messages.NOT_ALLOWED_TO_APPROVE, forbidden=True)
        if change.reviewed_at is not None:
            return ChangeOutcome(change, "info", messages.ALREADY_REVIEWED)
        change.reviewed_at = timezone.now()
        change.reviewed_by = actor
        change.save(update_fields=["reviewed_at", "reviewed_by"])
        audit_change(
            change,
            actor=actor,
            action=AuditAction.CHANGE_REVIEWED,
            after={"reviewed": True, "state": change.state, "payload_sha256": change.payload_hash},
            message=comment,
        )
    return ChangeOutcome(change, "success", messages.REVIEWED)
