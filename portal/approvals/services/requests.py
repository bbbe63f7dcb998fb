"""Asking for a change, voting on it, withdrawing, voiding and expiring it."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.actors import Actor, SystemActor
from portal.approvals import messages
from portal.approvals.kinds import Payload, TargetUnavailable, UnknownKind, spec_for
from portal.approvals.models import ChangeRequest, RequestState, StepUpMethod, Vote, VoteDecision
from portal.approvals.policy import policy_for
from portal.approvals.services.common import (
    ApprovalError,
    ChangeOutcome,
    audit_change,
    canonical_payload,
    payload_hash,
    spec_of,
)
from portal.audit.diff import diff
from portal.audit.models import AuditAction, Outcome
from portal.staff.models import Staff

DEFAULT_TTL_HOURS = 24


def _ttl() -> timedelta:
    return timedelta(
        hours=float(getattr(settings, "APPROVALS_REQUEST_TTL_HOURS", DEFAULT_TTL_HOURS))
    )


def change_request_create(
    *,
    kind: str,
    target_id: str,
    payload: Payload,
    actor: Staff,
    reason: str = "",
    summary: str = "",
) -> ChangeOutcome:
    """Ask for a change. Under the policy it waits for approvers; otherwise it runs at once.

    The target's fingerprint is read first (it may ask Kraken: no transaction is open),
    then the request, the policy in force and its audit event are stored together.
    """
    try:
        spec = spec_for(kind)
    except UnknownKind as exc:
        raise ApprovalError(messages.KIND_UNAVAILABLE) from exc
    if not actor.has_perm(spec.request_permission):
        raise ApprovalError(messages.NOT_ALLOWED_TO_REQUEST, forbidden=True)
    try:
        spec.validate(payload=payload, target_id=target_id)
        fingerprint = spec.fingerprint(target_id=target_id)
    except (ValueError, TargetUnavailable) as exc:
        raise ApprovalError(str(exc)) from exc
    text = canonical_payload(payload)
    rule = policy_for(kind=kind)
    now = timezone.now()
    at_once = not rule.needs_approval
    with transaction.atomic(durable=True):
        change = ChangeRequest.objects.create(
            kind=kind,
            target_type=spec.target_type,
            target_id=target_id,
            summary=summary[:300],
            payload=text,
            payload_hash=payload_hash(text),
            target_fingerprint=fingerprint,
            requested_by=actor,
            reason=reason,
            state=RequestState.APPROVED if at_once else RequestState.PENDING,
            quorum=rule.quorum,
            step_up_every_time=rule.require_step_up_every_time,
            requester_executes=spec.requester_executes,
            created_at=now,
            expires_at=now + (spec.request_ttl() or _ttl()),
            decided_at=now if at_once else None,
            execute_by=now + spec.execute_within if at_once and spec.requester_executes else None,
        )
        audit_change(
            change,
            actor=actor,
            action=AuditAction.CHANGE_REQUESTED,
            before=fingerprint,
            after={
                "kind": kind,
                "target": f"{spec.target_type}:{target_id}",
                "payload": payload,
                "payload_sha256": change.payload_hash,
                "quorum": change.quorum,
                "state": change.state,
            },
            message=reason or summary,
        )
    if at_once and not spec.requester_executes:
        from portal.approvals.services.execute import change_execute

        done = change_execute(change_id=change.pk, actor=actor)
        if done.change.state == RequestState.DONE:
            return ChangeOutcome(done.change, "success", messages.REQUESTED_AND_DONE, done.value)
        return done
    return ChangeOutcome(change, "success", messages.REQUESTED)


def _expire_locked(change: ChangeRequest, *, actor: Actor, now: datetime) -> bool:
    """Mark a locked, open, overdue request expired (inside the caller's transaction)."""
    updated = ChangeRequest.objects.filter(pk=change.pk, state=change.state).update(
        state=RequestState.EXPIRED, decided_at=change.decided_at or now
    )
    if updated:
        audit_change(
            change,
            actor=actor,
            action=AuditAction.CHANGE_EXPIRED,
            before={"state": change.state},
            after={"state": RequestState.EXPIRED},
            message="expired before it was approved"
            if change.state == RequestState.PENDING
            else "the requester did not carry it out in time",
        )
        change.state = RequestState.EXPIRED
    return bool(updated)


def change_vote(
    *,
    change_id: int,
    actor: Staff,
    decision: VoteDecision,
    step_up: StepUpMethod,
    comment: str = "",
) -> ChangeOutcome:
    """Record one person's vote; the vote that completes the quorum executes the change.

    The request row is locked for the vote (PostgreSQL), and the state moves with a
    conditional UPDATE (pending -> approved), so concurrent votes approve once.
    """
    now = timezone.now()
    expired = False
    approved_now = False
    with transaction.atomic(durable=True):
        change = ChangeRequest.objects.select_for_update().filter(pk=change_id).first()
        if change is None:
            raise ApprovalError(messages.NOT_PENDING.format(state="gone"))
        spec = spec_of(change)
        if actor.pk == change.requested_by_id:
            raise ApprovalError(messages.OWN_REQUEST, forbidden=True)
        if not actor.has_perm(spec.approve_permission):
            raise ApprovalError(messages.NOT_ALLOWED_TO_APPROVE, forbidden=True)
        if change.state != RequestState.PENDING:
            raise ApprovalError(
                messages.NOT_PENDING.format(state=change.get_state_display().lower())
            )
        if change.expires_at <= now:
            expired = _expire_locked(change, actor=SystemActor.EXPIRY, now=now)
        else:
            if decision == VoteDecision.APPROVE and (
                step_up == StepUpMethod.NONE
                or (change.step_up_every_time and step_up == StepUpMethod.RECENT)
            ):
                raise ApprovalError(messages.STEP_UP_NEEDED)
            try:
                with transaction.atomic():
                    Vote.objects.create(
                        change=change,
                        voter=actor,
                        decision=decision,
                        step_up=step_up,
                        comment=comment,
                        voted_at=now,
                    )
            except IntegrityError as exc:
                raise ApprovalError(messages.ALREADY_VOTED) from exc
            approvals = change.votes.filter(decision=VoteDecision.APPROVE).count()
            new_state = change.state
            if decision == VoteDecision.REJECT:
                new_state = RequestState.REJECTED
            elif approvals >= change.quorum:
                new_state = RequestState.APPROVED
            if new_state != change.state:
                fields: dict[str, object] = {"state": new_state, "decided_at": now}
                if new_state == RequestState.APPROVED and change.requester_executes:
                    fields["execute_by"] = now + spec.execute_within
                updated = ChangeRequest.objects.filter(
                    pk=change.pk, state=RequestState.PENDING
                ).update(**fields)
                if updated:
                    for name, value in fields.items():
                        setattr(change, name, value)
                    approved_now = new_state == RequestState.APPROVED
            audit_change(
                change,
                actor=actor,
                action=AuditAction.CHANGE_VOTE_APPROVED
                if decision == VoteDecision.APPROVE
                else AuditAction.CHANGE_VOTE_REJECTED,
                after={
                    "decision": decision,
                    "step_up": step_up,
                    "approvals": approvals,
                    "quorum": change.quorum,
                    "state": change.state,
                    "payload_sha256": change.payload_hash,
                },
                message=comment,
            )
    if expired:
        raise ApprovalError(messages.EXPIRED)
    if decision == VoteDecision.REJECT:
        return ChangeOutcome(change, "success", messages.REJECTED)
    if not approved_now:
        return ChangeOutcome(change, "success", messages.APPROVED_VOTE)
    if change.requester_executes:
        deadline = timezone.localtime(change.execute_by).strftime("%Y-%m-%d %H:%M")
        return ChangeOutcome(
            change, "success", messages.APPROVED_FOR_REQUESTER.format(deadline=deadline)
        )
    from portal.approvals.services.execute import change_execute

    done = change_execute(change_id=change.pk, actor=actor)
    if done.change.state == RequestState.DONE:
        return ChangeOutcome(done.change, "success", messages.APPROVED_AND_DONE, done.value)
    return done


def change_withdraw(*, change_id: int, actor: Staff) -> ChangeOutcome:
    """The requester takes back a request nobody has carried out yet."""
    with transaction.atomic(durable=True):
        change = ChangeRequest.objects.select_for_update().get(pk=change_id)
        if actor.pk != change.requested_by_id:
            raise ApprovalError(messages.ONLY_REQUESTER, forbidden=True)
        if change.state not in (RequestState.PENDING, RequestState.APPROVED):
            raise ApprovalError(
                messages.NOT_PENDING.format(state=change.get_state_display().lower())
            )
        before = change.state
        updated = ChangeRequest.objects.filter(pk=change.pk, state=before).update(
            state=RequestState.WITHDRAWN, decided_at=change.decided_at or timezone.now()
        )
        if not updated:
            raise ApprovalError(messages.ALREADY_RUNNING)
        change.state = RequestState.WITHDRAWN
        audit_change(
            change,
            actor=actor,
            action=AuditAction.CHANGE_WITHDRAWN,
            before={"state": before},
            after={"state": change.state},
        )
    return ChangeOutcome(change, "success", messages.WITHDRAWN)


def void_locked(
    change: ChangeRequest,
    *,
    actor: Actor,
    reason: str,
    before: object,
    now_state: object,
    from_states: tuple[str, ...],
) -> bool:
    """Void a request (inside the caller's transaction) saying what changed; audited."""
    changes = [
        {"path": c.path, "kind": c.kind, "old": c.old, "new": c.new}
        for c in diff(before, now_state)
        if c.kind != "unchanged"
    ]
    updated = ChangeRequest.objects.filter(pk=change.pk, state__in=from_states).update(
        state=RequestState.VOIDED,
        void_reason=reason,
        void_changes=changes,
        decided_at=change.decided_at or timezone.now(),
    )
    if updated:
        change.state = RequestState.VOIDED
        change.void_reason = reason
        change.void_changes = changes
        audit_change(
            change,
            actor=actor,
            action=AuditAction.CHANGE_VOIDED,
            outcome=Outcome.REFUSED,
            before=before,
            after=now_state,
            message=reason,
        )
    return bool(updated)


def change_void_for_target(
    *,
    target_type: str,
    target_id: str,
    actor: Actor,
    reason: str,
    now_state: object = None,
) -> int:
    """Void every open request on a target that changed (for an app's sync or a local change)."""
    count = 0
    ids = list(
        ChangeRequest.objects.filter(
            target_type=target_type,
            target_id=target_id,
            state__in=(RequestState.PENDING, RequestState.APPROVED),
        ).values_list("pk", flat=True)
    )
    for pk in ids:
        with transaction.atomic():
            change = ChangeRequest.objects.select_for_update().get(pk=pk)
            count += void_locked(
                change,
                actor=actor,
                reason=reason,
                before=change.target_fingerprint,
                now_state=now_state,
                from_states=(RequestState.PENDING, RequestState.APPROVED),
            )
    return count


def change_expire_due(*, actor: Actor = SystemActor.EXPIRY, now: datetime | None = None) -> int:
    """Expire pending requests past their expiry and approved ones past the requester's deadline.

    Called by the scheduled job (and `manage.py expire_change_requests`), never by a page view.
    """
    now = now or timezone.now()
    pending = ChangeRequest.objects.filter(state=RequestState.PENDING, expires_at__lte=now)
    late = ChangeRequest.objects.filter(
        state=RequestState.APPROVED, requester_executes=True, execute_by__lte=now
    )
    count = 0
    for pk in [*pending.values_list("pk", flat=True), *late.values_list("pk", flat=True)]:
        with transaction.atomic(durable=True):
            change = ChangeRequest.objects.select_for_update().get(pk=pk)
            due = (change.state == RequestState.PENDING and change.expires_at <= now) or (
                change.state == RequestState.APPROVED
                and change.requester_executes
                and change.execute_by is not None
                and change.execute_by <= now
            )
            if due:
                count += _expire_locked(change, actor=actor, now=now)
    return count
