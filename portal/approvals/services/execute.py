"""Exactly-once execution of an approved change, and reconciliation of an unknown outcome.

    approved --claim--> executing --Kraken--> done | failed | outcome_unknown
    outcome_unknown --claim--> executing --ask Kraken--> done | (send once more) | outcome_unknown

The claim is its own short transaction, committed before anything is sent: the row is
locked (`select_for_update`, PostgreSQL) and moved by a conditional UPDATE (state must
still be the expected one; on SQLite this alone decides), so concurrent approvals and
double clicks find the request already claimed and send nothing. What is sent is the
stored payload, after checking its hash and that the target has not changed.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from portal.actors import Actor, actor_staff
from portal.approvals import messages
from portal.approvals.kinds import ChangeKindSpec, Reconciled, TargetUnavailable, spec_for
from portal.approvals.models import ChangeRequest, RequestState
from portal.approvals.services.common import (
    ApprovalError,
    ChangeOutcome,
    audit_change,
    payload_hash,
    payload_of,
    spec_of,
)
from portal.approvals.services.requests import _expire_locked, void_locked
from portal.audit.models import AuditAction, Outcome
from portal.connection.door import Attempt, error_answer


def _claim(change_id: int, actor: Actor, *, from_state: RequestState) -> ChangeRequest | None:
    """Move the request from `from_state` to executing and commit; None if someone else did."""
    staff = actor_staff(actor)
    expired = False
    with transaction.atomic(durable=True):
        change = ChangeRequest.objects.select_for_update().filter(pk=change_id).first()
        if change is None or change.state != from_state:
            return None
        if from_state == RequestState.APPROVED and change.requester_executes:
            if staff is None or staff.pk != change.requested_by_id:
                raise ApprovalError(messages.ONLY_REQUESTER, forbidden=True)
            if change.execute_by is not None and change.execute_by <= timezone.now():
                expired = _expire_locked(change, actor=actor, now=timezone.now())
        if not expired:
            updated = ChangeRequest.objects.filter(pk=change.pk, state=from_state).update(
                state=RequestState.EXECUTING, executed_by=staff, claimed_at=timezone.now()
            )
            if not updated:
                return None
            change.state = RequestState.EXECUTING
            change.executed_by = staff
    if expired:
        raise ApprovalError(messages.DEADLINE_PASSED)
    return change


def _set_state(change: ChangeRequest, state: RequestState, **fields: object) -> None:
    ChangeRequest.objects.filter(pk=change.pk, state=RequestState.EXECUTING).update(
        state=state, **fields
    )
    change.state = state
    for name, value in fields.items():
        setattr(change, name, value)


def _check_before_sending(
    change: ChangeRequest, spec: ChangeKindSpec, actor: Actor
) -> ChangeOutcome | None:
    """Refuse to send a payload that is not what was approved, or to a changed target."""
    if payload_hash(change.payload) != change.payload_hash:
        with transaction.atomic():
            _set_state(change, RequestState.FAILED, result_message=messages.PAYLOAD_TAMPERED)
            audit_change(
                change,
                actor=actor,
                action=AuditAction.CHANGE_EXECUTION_FAILED,
                outcome=Outcome.REFUSED,
                message=messages.PAYLOAD_TAMPERED,
            )
        return ChangeOutcome(change, "error", messages.PAYLOAD_TAMPERED)
    try:
        now_state = spec.fingerprint(target_id=change.target_id)
    except TargetUnavailable as exc:
        with transaction.atomic():  # nothing was sent: it may be tried again
            _set_state(change, RequestState.APPROVED, executed_by=None)
        return ChangeOutcome(change, "error", str(exc))
    if now_state != change.target_fingerprint:
        reason = f"{change.target_type} {change.target_id} changed since the request"
        with transaction.atomic():
            void_locked(
                change,
                actor=actor,
                reason=reason,
                before=change.target_fingerprint,
                now_state=now_state,
                from_states=(RequestState.EXECUTING,),
            )
        return ChangeOutcome(change, "error", messages.VOIDED.format(reason=reason))
    return None


def _finish(
    change: ChangeRequest, spec: ChangeKindSpec, attempt: Attempt[object], actor: Actor
) -> ChangeOutcome:
    """Store what Kraken answered, with its audit event, in one transaction."""
    now = timezone.now()
    endpoint = spec.prime_endpoint
    with transaction.atomic():
        if attempt.done:
            result = spec.record(
                payload=payload_of(change),
                target_id=change.target_id,
                value=attempt.value,
                actor=actor,
            )
            _set_state(change, RequestState.DONE, executed_at=now, result=result)
            audit_change(
                change,
                actor=actor,
                action=AuditAction.CHANGE_EXECUTED,
                after={"state": change.state, "payload_sha256": change.payload_hash},
                prime_endpoint=endpoint,
                prime_response=result,
            )
            return ChangeOutcome(change, "success", messages.EXECUTED, attempt.value)
        answer = error_answer(attempt.error) if attempt.error else None
        # Kraken may have made the change (unknown) or answered that it did not (failed).
        unknown = attempt.outcome_unknown
        shown = messages.OUTCOME_UNKNOWN if unknown else attempt.message
        _set_state(
            change,
            RequestState.OUTCOME_UNKNOWN if unknown else RequestState.FAILED,
            executed_at=now,
            result=answer,
            result_message=shown,
        )
        audit_change(
            change,
            actor=actor,
            action=(
                AuditAction.CHANGE_OUTCOME_UNKNOWN
                if unknown
                else AuditAction.CHANGE_EXECUTION_FAILED
            ),
            outcome=Outcome.UNKNOWN if unknown else Outcome.FAILED,
            prime_endpoint=endpoint,
            prime_response=answer,
            message=attempt.message,
        )
        return ChangeOutcome(change, "error", shown)


def change_execute(*, change_id: int, actor: Actor) -> ChangeOutcome:
    """Carry out an approved change exactly once (claim, check, send, store the answer)."""
    existing = ChangeRequest.objects.filter(pk=change_id).first()
    if existing is None:
        raise ApprovalError(messages.NOT_APPROVED.format(state="gone"))
    spec = spec_of(existing)
    if existing.state == RequestState.APPROVED:
        waiting = spec.waits_for(payload=payload_of(existing), target_id=existing.target_id)
        if waiting:
            return ChangeOutcome(existing, "info", messages.WAITING.format(reason=waiting))
    change = _claim(change_id, actor, from_state=RequestState.APPROVED)
    if change is None:
        existing.refresh_from_db()
        if existing.state in (RequestState.PENDING, RequestState.REJECTED, RequestState.EXPIRED):
            raise ApprovalError(
                messages.NOT_APPROVED.format(state=existing.get_state_display().lower())
            )
        return ChangeOutcome(existing, "info", messages.ALREADY_RUNNING)
    refused = _check_before_sending(change, spec, actor)
    if refused is not None:
        return refused
    attempt = spec.execute(payload=payload_of(change), target_id=change.target_id, actor=actor)
    return _finish(change, spec, attempt, actor)


def change_reconcile(*, change_id: int, actor: Actor) -> ChangeOutcome:
    """Ask Kraken what became of an unknown outcome; send again only if nothing happened."""
    existing = ChangeRequest.objects.filter(pk=change_id).first()
    if existing is None or existing.state != RequestState.OUTCOME_UNKNOWN:
        raise ApprovalError(messages.NOT_UNKNOWN)
    spec = spec_of(existing)
    change = _claim(change_id, actor, from_state=RequestState.OUTCOME_UNKNOWN)
    if change is None:
        return ChangeOutcome(existing, "info", messages.ALREADY_RUNNING)
    answer = spec.reconcile(payload=payload_of(change), target_id=change.target_id)
    if answer.answer == Reconciled.STILL_UNKNOWN:
        with transaction.atomic():
            _set_state(change, RequestState.OUTCOME_UNKNOWN)
        return ChangeOutcome(change, "error", messages.STILL_UNKNOWN)
    with transaction.atomic():
        audit_change(
            change,
            actor=actor,
            action=AuditAction.CHANGE_RECONCILED,
            after={"kraken": answer.answer},
            prime_response=answer.result,
        )
        if answer.answer == Reconciled.APPLIED:
            _set_state(change, RequestState.DONE, executed_at=timezone.now(), result=answer.result)
            return ChangeOutcome(change, "success", messages.RECONCILED_DONE)
    attempt = spec.execute(payload=payload_of(change), target_id=change.target_id, actor=actor)
    done = _finish(change, spec, attempt, actor)
    if done.change.state == RequestState.DONE:
        return ChangeOutcome(done.change, "success", messages.RECONCILED_RESENT, done.value)
    return done


def change_execute_ready(*, kind: str, actor: Actor) -> list[ChangeOutcome]:
    """Send every approved change of a kind that no longer waits (the poller calls this).

    Kinds the requester carries out are left to the requester.
    """
    spec = spec_for(kind)
    ids = ChangeRequest.objects.filter(
        kind=kind, state=RequestState.APPROVED, requester_executes=False
    ).values_list("pk", flat=True)
    outcomes = []
    for pk in list(ids):
        change = ChangeRequest.objects.get(pk=pk)
        if spec.waits_for(payload=payload_of(change), target_id=change.target_id):
            continue
        outcomes.append(change_execute(change_id=pk, actor=actor))
    return outcomes


def _open_of(state: RequestState, kind: str | None, target_prefix: str) -> QuerySet[ChangeRequest]:
    changes = ChangeRequest.objects.filter(state=state)
    if kind is not None:
        changes = changes.filter(kind=kind)
    if target_prefix:
        changes = changes.filter(target_id__startswith=target_prefix)
    return changes


def changes_mark_stale_claims(
    *,
    actor: Actor,
    older_than: timedelta,
    kind: str | None = None,
    target_prefix: str = "",
    endpoint: str = "",
    message: str = messages.STALE_CLAIM,
) -> int:
    """A claim older than `older_than` whose process stopped mid-call: outcome unknown.

    Such a change may or may not have reached Kraken, so it is never sent again blindly:
    `changes_reconcile_unknown` asks Kraken first.
    """
    cutoff = timezone.now() - older_than
    stale = _open_of(RequestState.EXECUTING, kind, target_prefix).filter(claimed_at__lte=cutoff)
    count = 0
    for change in list(stale):
        with transaction.atomic():
            moved = ChangeRequest.objects.filter(
                pk=change.pk, state=RequestState.EXECUTING, claimed_at__lte=cutoff
            ).update(state=RequestState.OUTCOME_UNKNOWN, result_message=message)
            if moved:
                audit_change(
                    change,
                    actor=actor,
                    action=AuditAction.CHANGE_OUTCOME_UNKNOWN,
                    outcome=Outcome.UNKNOWN,
                    prime_endpoint=endpoint,
                    message=message,
                )
        count += moved
    return count


def changes_reconcile_unknown(
    *, actor: Actor, kind: str | None = None, target_prefix: str = ""
) -> int:
    """Ask Kraken about every change whose outcome is unknown; how many were decided."""
    unknown = _open_of(RequestState.OUTCOME_UNKNOWN, kind, target_prefix)
    decided = 0
    for pk in list(unknown.values_list("pk", flat=True)):
        try:
            done = change_reconcile(change_id=pk, actor=actor)
        except ApprovalError:
            continue
        decided += done.change.state != RequestState.OUTCOME_UNKNOWN
    return decided
