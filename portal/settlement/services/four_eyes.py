"""Four eyes: an Operator requests an intent, another person (an Approver) approves or rejects it.

An intent nobody decided in time expires (the poller expires them; a decision on a
stale intent expires it first).
"""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.actors import Actor, SystemActor
from portal.audit.models import AuditAction
from portal.settlement import messages
from portal.settlement.models import (
    OPEN_STATES,
    Batch,
    IntentState,
    Leg,
    LegStatus,
    SettlementIntent,
)
from portal.settlement.services.common import (
    ActionResult,
    NotAllowedError,
    audit_leg,
    intent_ttl,
    intent_view,
    move_intent,
    refuse,
)
from portal.settlement.services.mirror import matches_mirror, void_against_mirror
from portal.settlement.services.send import intent_send
from portal.staff.models import Staff
from portal.staff.roles import REQUEST_SETTLEMENT


def intents_expire_stale(
    *, actor: Actor = SystemActor.EXPIRY, now: datetime | None = None, batch: Batch | None = None
) -> int:
    """Expire intents nobody decided before `now` (default: the clock); returns how many."""
    now = now or timezone.now()
    stale = SettlementIntent.objects.filter(state=IntentState.REQUESTED, expires_at__lte=now)
    if batch is not None:
        stale = stale.filter(batch=batch)
    if not stale.exists():  # the usual case costs one cheap query and no write lock
        return 0
    count = 0
    with transaction.atomic():
        for intent in stale.select_for_update(of=("self",)).select_related("batch").order_by("pk"):
            expire(intent=intent, actor=actor, now=now)
            count += 1
    return count


def expire(*, intent: SettlementIntent, actor: Actor, now: datetime) -> None:
    """Expire one requested intent (call inside a transaction, with it locked)."""
    move_intent(
        intent,
        {"state": IntentState.EXPIRED, "finished_at": now, "note": messages.EXPIRED},
        actor=actor,
        action=AuditAction.LEG_EXPIRED,
        message=messages.EXPIRED_AUDIT.format(
            requested_at=intent.requested_at.isoformat(), expires_at=intent.expires_at.isoformat()
        ),
    )


def intent_request(*, leg: Leg, actor: Staff) -> SettlementIntent:
    """An Operator asks to settle one leg, for the amount and direction the mirror shows now."""
    batch_id = leg.batch.prime_batch_id
    if not actor.has_perm(REQUEST_SETTLEMENT):
        raise refuse(
            actor=actor,
            action=AuditAction.LEG_REQUESTED,
            message=messages.NEED_OPERATOR_TO_REQUEST,
            prime_batch_id=batch_id,
            asset=leg.asset,
            error=NotAllowedError,
        )
    intent, refusal = _create_intent(leg=leg, actor=actor, now=timezone.now())
    if intent is None:
        raise refuse(
            actor=actor,
            action=AuditAction.LEG_REQUESTED,
            message=refusal,
            prime_batch_id=batch_id,
            asset=leg.asset,
        )
    return intent


def _create_intent(*, leg: Leg, actor: Staff, now: datetime) -> tuple[SettlementIntent | None, str]:
    """The new intent, or None and why not; one transaction with the leg locked."""
    with transaction.atomic():
        locked = Leg.objects.select_for_update(of=("self",)).select_related("batch").get(pk=leg.pk)
        for stale in (
            SettlementIntent.objects.select_for_update(of=("self",))
            .select_related("batch")
            .filter(leg=locked, state=IntentState.REQUESTED, expires_at__lte=now)
        ):
            expire(intent=stale, actor=SystemActor.EXPIRY, now=now)
        refusal = _request_refusal(locked)
        if refusal:
            return None, refusal
        try:
            with transaction.atomic():
                intent = SettlementIntent.objects.create(
                    batch=locked.batch,
                    leg=locked,
                    asset=locked.asset,
                    amount=locked.amount,
                    direction=locked.direction,
                    requested_by=actor,
                    requested_at=now,
                    expires_at=now + intent_ttl(),
                    prior_transfer_id=locked.transfer_id,
                )
        except IntegrityError:
            # Another intent won the race; the constraint is the last word.
            return None, messages.LEG_HAS_OPEN_INTENT_RACE
        audit_leg(
            actor=actor,
            action=AuditAction.LEG_REQUESTED,
            intent=intent,
            after=intent_view(intent) | {"expires_at": intent.expires_at},
            message=messages.REQUESTED.format(what=intent.what),
        )
    return intent, ""


def _request_refusal(leg: Leg) -> str:
    """Why a new intent cannot be made for this (locked) leg now ("" when it can)."""
    open_intent = SettlementIntent.objects.filter(leg=leg, state__in=OPEN_STATES).first()
    if leg.batch.is_final:
        return messages.BATCH_FINAL
    if open_intent is not None:
        return messages.LEG_HAS_OPEN_INTENT.format(state=open_intent.get_state_display())
    if leg.status != LegStatus.UNSETTLED:
        return messages.LEG_NOT_UNSETTLED.format(status=leg.status)
    if not leg.can_settle:
        return messages.LEG_CANNOT_SETTLE
    return ""


def _check_decider(
    intent: SettlementIntent, actor: Staff, *, verb: str, action: AuditAction
) -> None:
    """Refuse (audited, NotAllowedError) unless `actor` may decide this intent."""
    refusal = intent.decider_refusal(actor, verb=verb)
    if refusal:
        raise refuse(
            actor=actor, action=action, message=refusal, intent=intent, error=NotAllowedError
        )


def _lock_intent(intent_id: int) -> SettlementIntent:
    return (
        SettlementIntent.objects.select_for_update(of=("self",))
        .select_related("batch", "leg")
        .get(pk=intent_id)
    )


def intent_reject(*, intent_id: int, actor: Staff, reason: str) -> SettlementIntent:
    """An Approver who is not the requester turns an intent down, with a reason."""
    reason = (reason or "").strip()[:1000]
    intent = SettlementIntent.objects.select_related("batch").get(pk=intent_id)
    _check_decider(intent, actor, verb="reject", action=AuditAction.LEG_REJECTED)
    if not reason:
        raise refuse(
            actor=actor,
            action=AuditAction.LEG_REJECTED,
            message=messages.REASON_REQUIRED,
            intent=intent,
        )
    with transaction.atomic():
        intent = _lock_intent(intent_id)
        rejected = _reject_locked(intent, actor=actor, reason=reason, now=timezone.now())
    if rejected:
        return intent
    state = intent.get_state_display().lower()
    raise refuse(
        actor=actor,
        action=AuditAction.LEG_REJECTED,
        message=messages.NO_LONGER_REJECTABLE.format(state=state),
        intent=intent,
    )


def _reject_locked(intent: SettlementIntent, *, actor: Staff, reason: str, now: datetime) -> bool:
    """Reject a locked intent if it is still requested (expiring it first if stale)."""
    if intent.state == IntentState.REQUESTED and intent.expires_at <= now:
        expire(intent=intent, actor=SystemActor.EXPIRY, now=now)
    if intent.state != IntentState.REQUESTED:
        return False
    move_intent(
        intent,
        {
            "state": IntentState.REJECTED,
            "rejected_by": actor,
            "rejected_at": now,
            "reject_reason": reason,
            "finished_at": now,
            "note": messages.REJECTED.format(reason=reason),
        },
        actor=actor,
        action=AuditAction.LEG_REJECTED,
        after_extra={"reason": reason},
        message=reason,
    )
    return True


def intent_approve(*, intent_id: int, actor: Staff) -> ActionResult:
    """An Approver who is not the requester approves; the leg is then sent to Kraken once.

    A second click, a retry, or a concurrent approval never sends again: only the
    caller that moves the intent from `approved` to `submitting` sends.
    """
    intent = SettlementIntent.objects.select_related("batch").get(pk=intent_id)
    _check_decider(intent, actor, verb="approve", action=AuditAction.LEG_APPROVED)
    with transaction.atomic():
        intent = _lock_intent(intent_id)
        refusal = _approve_locked(intent, actor=actor, now=timezone.now())
    if refusal:
        raise refuse(actor=actor, action=AuditAction.LEG_APPROVED, message=refusal, intent=intent)
    if intent.state != IntentState.APPROVED:
        state = intent.get_state_display().lower()
        message = messages.NOTHING_TO_DO.format(state=state)
        return ActionResult(
            intent=intent,
            message=message + (f" {intent.note}" if intent.note else ""),
            level="info",
        )
    return intent_send(intent_id=intent_id, actor=actor)


def _approve_locked(intent: SettlementIntent, *, actor: Staff, now: datetime) -> str:
    """Approve a locked, still requested intent; why not (its new note) when it cannot be."""
    if intent.state != IntentState.REQUESTED:
        return ""
    if intent.expires_at <= now:
        expire(intent=intent, actor=SystemActor.EXPIRY, now=now)
        return intent.note
    if not matches_mirror(intent=intent):
        void_against_mirror(intent=intent, actor=actor, now=now)
        return intent.note
    move_intent(
        intent,
        {"state": IntentState.APPROVED, "approved_by": actor, "approved_at": now},
        actor=actor,
        action=AuditAction.LEG_APPROVED,
        message=messages.APPROVED.format(what=intent.what),
    )
    return ""
