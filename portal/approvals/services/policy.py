"""Changing the approval policy: itself a change request that another Admin approves."""

from __future__ import annotations

from django.utils import timezone

from portal.actors import Actor, actor_staff
from portal.approvals import messages
from portal.approvals.kinds import ChangeKindSpec, JSONValue, Payload
from portal.approvals.models import ApprovalPolicy, ChangeKind
from portal.approvals.policy import PolicyRule, policy_for, rule_validate
from portal.approvals.services.common import ChangeOutcome
from portal.approvals.services.requests import change_request_create
from portal.audit.models import AuditAction, TargetType
from portal.audit.services import audit_record
from portal.connection.door import Attempt, CallOutcome
from portal.staff.models import Staff
from portal.staff.roles import MANAGE_STAFF


def _rule_of(payload: Payload) -> PolicyRule:
    return PolicyRule(
        kind=str(payload["kind"]),
        needs_approval=bool(payload["needs_approval"]),
        approvers=int(payload["approvers"]),  # type: ignore[arg-type]
        require_step_up_every_time=bool(payload["require_step_up_every_time"]),
    )


class PolicyChangeKind(ChangeKindSpec):
    """A new rule for one kind of change; runs locally (no Kraken call)."""

    kind = ChangeKind.POLICY_CHANGE
    target_type = TargetType.APPROVAL_POLICY
    request_permission = MANAGE_STAFF
    approve_permission = MANAGE_STAFF

    def validate(self, *, payload: Payload, target_id: str) -> None:
        try:
            rule = _rule_of(payload)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError("The policy change is incomplete.") from exc
        if rule.kind != target_id or rule.kind not in ChangeKind.values:
            raise ValueError("Unknown kind of change.")
        rule_validate(kind=rule.kind, needs_approval=rule.needs_approval, approvers=rule.approvers)

    def fingerprint(self, *, target_id: str) -> JSONValue:
        return policy_for(kind=target_id).as_payload()  # type: ignore[return-value]

    def describe(self, *, payload: Payload, target_id: str, fingerprint: JSONValue) -> tuple:
        return fingerprint, payload

    def execute(self, *, payload: Payload, target_id: str, actor: Actor) -> Attempt[object]:
        self.validate(payload=payload, target_id=target_id)
        return Attempt(outcome=CallOutcome.DONE, value=payload)

    def record(self, *, payload: Payload, target_id: str, value: object, actor: Actor) -> JSONValue:
        rule = _rule_of(payload)
        before = policy_for(kind=rule.kind).as_payload()
        ApprovalPolicy.objects.update_or_create(
            kind=rule.kind,
            defaults={
                "needs_approval": rule.needs_approval,
                "approvers": rule.approvers,
                "require_step_up_every_time": rule.require_step_up_every_time,
                "changed_at": timezone.now(),
                "changed_by": actor_staff(actor),
            },
        )
        audit_record(
            actor=actor,
            action=AuditAction.APPROVAL_POLICY_CHANGED,
            target_type=TargetType.APPROVAL_POLICY,
            target_id=rule.kind,
            before=before,
            after=rule.as_payload(),
        )
        return rule.as_payload()  # type: ignore[return-value]


def _words(rule: PolicyRule) -> str:
    if not rule.needs_approval:
        return "runs at once"
    words = f"{rule.approvers} approver{'s' if rule.approvers > 1 else ''}"
    return words + (", code every time" if rule.require_step_up_every_time else "")


def policy_change_request(
    *,
    kind: str,
    needs_approval: bool,
    approvers: int,
    require_step_up_every_time: bool,
    actor: Staff,
    reason: str = "",
) -> ChangeOutcome:
    """Ask for a new rule for one kind; it takes effect when another Admin approves."""
    from portal.approvals.services.common import ApprovalError

    rule = PolicyRule(
        kind=kind,
        needs_approval=needs_approval,
        approvers=approvers,
        require_step_up_every_time=require_step_up_every_time,
    )
    try:
        rule_validate(kind=kind, needs_approval=needs_approval, approvers=approvers)
    except ValueError as exc:
        raise ApprovalError(str(exc)) from exc
    if rule == policy_for(kind=kind):
        raise ApprovalError(messages.POLICY_UNCHANGED)
    return change_request_create(
        kind=ChangeKind.POLICY_CHANGE,
        target_id=kind,
        payload=rule.as_payload(),  # type: ignore[arg-type]
        actor=actor,
        reason=reason,
        summary=f"Policy for {rule.label}: "
        + (
            f"{approvers} approver{'s' if approvers > 1 else ''}"
            if needs_approval
            else "no approval"
        )
        + (", code every time" if require_step_up_every_time else ""),
    )
