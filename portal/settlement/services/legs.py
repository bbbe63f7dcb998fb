"""Leg requests on the approvals engine: request one leg or all, approve a selection, reject.

Four eyes, votes, step-up, expiry and the exactly-once send are the engine's
(`portal.approvals`); this module decides which legs may be requested and names
them. Each leg is its own change request, bound to its exact amount and direction,
with its own exactly-once send, also when many are requested or approved at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.actors import Actor
from portal.approvals import services as approvals
from portal.approvals.models import (
    ChangeKind,
    ChangeRequest,
    RequestState,
    StepUpMethod,
    VoteDecision,
)
from portal.approvals.services.common import audit_change
from portal.audit.models import AuditAction, Outcome
from portal.settlement import messages
from portal.settlement.approvals import leg_payload
from portal.settlement.messages import what_text
from portal.settlement.models import Batch, Leg, LegStatus, leg_audit_id
from portal.settlement.services.common import SETTLE, NotAllowedError, SettlementError, refuse
from portal.staff.models import Staff
from portal.staff.roles import REQUEST_SETTLEMENT

LEG = ChangeKind.SETTLEMENT_LEG
# Requests that still hold their leg (the database allows one per leg).
HOLDING_STATES = (
    RequestState.PENDING,
    RequestState.APPROVED,
    RequestState.EXECUTING,
    RequestState.OUTCOME_UNKNOWN,
)


@dataclass(frozen=True)
class LegOutcome:
    """What became of one leg in an action: the request (if any), a level and words."""

    asset: str
    change: ChangeRequest | None
    level: str
    message: str


def open_request(leg: Leg) -> ChangeRequest | None:
    """The request that holds this leg, if any."""
    return ChangeRequest.objects.filter(
        kind=LEG, target_id=leg.audit_id, state__in=HOLDING_STATES
    ).first()


def request_refusal(leg: Leg) -> str:
    """Why the leg cannot be requested now ("" when it can; the database has the last word)."""
    if leg.batch.is_final:
        return messages.BATCH_FINAL
    held = open_request(leg)
    if held is not None:
        return messages.LEG_HAS_OPEN_INTENT.format(state=held.get_state_display())
    if leg.status != LegStatus.UNSETTLED:
        return messages.LEG_NOT_UNSETTLED.format(status=leg.status)
    if not leg.can_settle:
        return messages.LEG_CANNOT_SETTLE
    return ""


def leg_request(*, leg: Leg, actor: Staff, reason: str = "") -> approvals.ChangeOutcome:
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
    refusal = request_refusal(leg)
    if refusal:
        raise refuse(
            actor=actor,
            action=AuditAction.LEG_REQUESTED,
            message=refusal,
            prime_batch_id=batch_id,
            asset=leg.asset,
        )
    what = what_text(leg.direction, leg.amount, leg.asset)
    try:
        return approvals.change_request_create(
            kind=LEG,
            target_id=leg_audit_id(batch_id, leg.asset),
            payload=leg_payload(leg),
            actor=actor,
            reason=reason,
            summary=f"Settle {what} (batch {batch_id})",
        )
    except IntegrityError:
        # Another request for this leg won the race; the constraint is the last word.
        raise refuse(
            actor=actor,
            action=AuditAction.LEG_REQUESTED,
            message=messages.LEG_HAS_OPEN_INTENT_RACE,
            prime_batch_id=batch_id,
            asset=leg.asset,
        ) from None
    except approvals.ApprovalError as exc:
        error = NotAllowedError if exc.forbidden else SettlementError
        raise error(exc.message) from exc


def legs_request_all(*, batch: Batch, actor: Staff) -> list[LegOutcome]:
    """Request every leg of the batch that can be requested now, each its own request."""
    outcomes = []
    for leg in Leg.objects.filter(batch=batch).select_related("batch").order_by("asset"):
        if request_refusal(leg):
            continue
        try:
            done = leg_request(leg=leg, actor=actor)
        except NotAllowedError:
            raise
        except SettlementError as exc:
            outcomes.append(LegOutcome(leg.asset, None, "error", str(exc)))
        else:
            outcomes.append(LegOutcome(leg.asset, done.change, done.level, done.message))
    return outcomes


def _asset_of(change: ChangeRequest) -> str:
    return change.target_id.rpartition(":")[2]


def legs_approve(*, change_ids: list[int], actor: Staff, step_up: StepUpMethod) -> list[LegOutcome]:
    """Approve a selection of leg requests with one step-up; each is its own vote and send.

    A send whose outcome is unknown is checked with Kraken at once (reconciled); the
    poller keeps checking if Kraken cannot tell yet.
    """
    outcomes = []
    for change in ChangeRequest.objects.filter(pk__in=change_ids, kind=LEG).order_by("target_id"):
        asset = _asset_of(change)
        try:
            done = approvals.change_vote(
                change_id=change.pk, actor=actor, decision=VoteDecision.APPROVE, step_up=step_up
            )
        except approvals.ApprovalError as exc:
            outcomes.append(LegOutcome(asset, change, "error", exc.message))
            continue
        done = _check_unknown_at_once(done, actor=actor)
        message = done.message
        if done.change.state == RequestState.APPROVED and message.startswith("Approved;"):
            message = messages.WAITING_NOTE
        outcomes.append(LegOutcome(asset, done.change, done.level, message))
    return outcomes


def _check_unknown_at_once(
    done: approvals.ChangeOutcome, *, actor: Actor
) -> approvals.ChangeOutcome:
    if done.change.state != RequestState.OUTCOME_UNKNOWN:
        return done
    try:
        return approvals.change_reconcile(change_id=done.change.pk, actor=actor)
    except approvals.ApprovalError:
        return done


def leg_reject(*, change_id: int, actor: Staff, reason: str) -> approvals.ChangeOutcome:
    """An Approver who is not the requester turns a leg request down, with a reason."""
    reason = (reason or "").strip()[:1000]
    if not reason:
        raise SettlementError(messages.REASON_REQUIRED)
    try:
        return approvals.change_vote(
            change_id=change_id,
            actor=actor,
            decision=VoteDecision.REJECT,
            step_up=StepUpMethod.NONE,
            comment=reason,
        )
    except approvals.ApprovalError as exc:
        error = NotAllowedError if exc.forbidden else SettlementError
        raise error(exc.message) from exc


def legs_send_ready(*, actor: Actor) -> int:
    """Send approved leg requests that no longer wait (batch confirmed, or left behind)."""
    return len(approvals.change_execute_ready(kind=LEG, actor=actor))


def legs_mark_stale_sends(*, actor: Actor, batch: Batch | None = None) -> int:
    """A send claimed long ago and never answered (its process stopped): outcome unknown."""
    cutoff = timezone.now() - timedelta(seconds=settings.SETTLEMENT_SUBMITTING_STALE_SECONDS)
    stale = ChangeRequest.objects.filter(
        kind=LEG, state=RequestState.EXECUTING, claimed_at__lte=cutoff
    )
    if batch is not None:
        stale = stale.filter(target_id__startswith=f"{batch.prime_batch_id}:")
    count = 0
    for change in list(stale):
        with transaction.atomic():
            moved = ChangeRequest.objects.filter(
                pk=change.pk, state=RequestState.EXECUTING, claimed_at__lte=cutoff
            ).update(state=RequestState.OUTCOME_UNKNOWN, result_message=messages.STALE_SUBMITTING)
            if moved:
                audit_change(
                    change,
                    actor=actor,
                    action=AuditAction.CHANGE_OUTCOME_UNKNOWN,
                    outcome=Outcome.UNKNOWN,
                    prime_endpoint=SETTLE,
                    message=messages.STALE_SUBMITTING,
                )
        count += moved
    return count


def legs_reconcile_unknown(*, actor: Actor, batch: Batch | None = None) -> int:
    """Ask Kraken about every leg request whose outcome is unknown; how many were decided.

    A send left claimed by a stopped process counts as unknown first.
    """
    legs_mark_stale_sends(actor=actor, batch=batch)
    unknown = ChangeRequest.objects.filter(kind=LEG, state=RequestState.OUTCOME_UNKNOWN)
    if batch is not None:
        unknown = unknown.filter(target_id__startswith=f"{batch.prime_batch_id}:")
    decided = 0
    for pk in list(unknown.values_list("pk", flat=True)):
        try:
            done = approvals.change_reconcile(change_id=pk, actor=actor)
        except approvals.ApprovalError:
            continue
        decided += done.change.state != RequestState.OUTCOME_UNKNOWN
    return decided
