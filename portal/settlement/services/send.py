"""The one send: `SettlePrimeSettlementBatchAsset` at most once per approved intent.

The sender moves the intent from `approved` to `submitting` under a row lock and
commits *before* the call, so no second caller (thread, double click, retry,
another process) can claim it again. The uniqueness constraint over open intents
keeps a second intent for the same leg from existing at all. An outcome that may
have reached Kraken (timeout, dropped connection, 5xx) is recorded as
`outcome_unknown` and reconciled with GetPrimeSettlementBatch at once (and by the
poller) before the leg can be requested again.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from portal.actors import Actor
from portal.audit.models import AuditAction, Outcome
from portal.connection import door
from portal.settlement import messages
from portal.settlement.messages import amount_text
from portal.settlement.models import IntentState, Leg, LegStatus, SettlementIntent
from portal.settlement.services.batches import batch_refresh
from portal.settlement.services.common import (
    SETTLE,
    ActionResult,
    JsonDict,
    SettlementError,
    move_intent,
)
from portal.settlement.services.mirror import matches_mirror, void_against_mirror
from primeapi import errors as prime_errors
from primeapi import models as prime_models

logger = logging.getLogger("portal.settlement")

SettleAttempt = door.Attempt[prime_models.SettleResult]


def describe_settle_refusal(exc: prime_errors.PrimeError) -> str:
    """Kraken's refusal of a settle call in plain words, with what the person can do next."""
    detail = (getattr(exc, "detail", "") or "").lower()
    if "not confirmed" in detail:
        return messages.SETTLE_NOT_CONFIRMED
    if "cannot be settled" in detail:
        return messages.SETTLE_CANNOT_SETTLE
    if "already settled" in detail:
        return messages.SETTLE_ALREADY
    if "unknown batch" in detail or "unknown asset" in detail:
        return messages.SETTLE_UNKNOWN_THING.format(thing=detail.split()[-1])
    return door.describe_error(exc) + messages.SETTLE_REQUEST_AGAIN


def intent_send(*, intent_id: int, actor: Actor) -> ActionResult:
    """Send one approved intent to Kraken, exactly once, and record what came back."""
    claimed = _claim(intent_id=intent_id, actor=actor, now=timezone.now())
    if isinstance(claimed, ActionResult):
        return claimed
    # Committed: from here on no one else can claim this intent. No transaction is open.
    prime_batch_id, asset = claimed.batch.prime_batch_id, claimed.asset
    attempt = door.attempt_prime(
        lambda client: client.settle_settlement_batch_asset(prime_batch_id, asset),
        describe=describe_settle_refusal,
    )
    if attempt.done:
        return _record_sent(intent_id=intent_id, actor=actor, result=attempt.result())
    return _record_not_sent(intent_id=intent_id, actor=actor, attempt=attempt)


def _claim(*, intent_id: int, actor: Actor, now: datetime) -> SettlementIntent | ActionResult:
    """Move an approved intent to `submitting` (committed), or say why it is not sent."""
    with transaction.atomic():
        intent = (
            SettlementIntent.objects.select_for_update(of=("self",))
            .select_related("batch", "leg")
            .get(pk=intent_id)
        )
        if intent.state != IntentState.APPROVED:
            state = intent.get_state_display().lower()
            message = messages.NOT_SENT_AGAIN.format(state=state)
            return ActionResult(intent=intent, message=message, level="info")
        if not matches_mirror(intent=intent):
            void_against_mirror(intent=intent, actor=actor, now=now)
            return ActionResult(intent=intent, message=intent.note, level="warning")
        intent.state = IntentState.SUBMITTING
        intent.submitting_at = now
        intent.prior_transfer_id = intent.leg.transfer_id
        intent.save(update_fields=["state", "submitting_at", "prior_transfer_id"])
    return intent


def _lock_for_answer(intent_id: int) -> SettlementIntent:
    """The intent locked to record Kraken's answer (its leg first: the mirror's lock order)."""
    leg_id = SettlementIntent.objects.values_list("leg_id", flat=True).get(pk=intent_id)
    Leg.objects.select_for_update().filter(pk=leg_id).first()
    return (
        SettlementIntent.objects.select_for_update(of=("self",))
        .select_related("batch", "leg")
        .get(pk=intent_id)
    )


def _record_sent(
    *, intent_id: int, actor: Actor, result: prime_models.SettleResult
) -> ActionResult:
    """Kraken started the transfer: record it on the intent and the leg."""
    now = timezone.now()
    with transaction.atomic():
        intent = _lock_for_answer(intent_id)
        still_ours = intent.state == IntentState.SUBMITTING
        changes: JsonDict = {}
        if still_ours:
            changes = {
                "state": IntentState.SUBMITTED,
                "transfer_id": result.transfer.id,
                "submitted_at": now,
                "note": messages.TRANSFER_STARTED.format(transfer_id=result.transfer.id),
            }
            _mirror_leg_after_settle(intent.leg, result)
        move_intent(
            intent,
            changes,
            actor=actor,
            action=AuditAction.LEG_SUBMITTED,
            endpoint=SETTLE,
            answer=result,
            message="" if still_ours else messages.LATE_ANSWER,
        )
    message = messages.SENT.format(
        transfer_id=result.transfer.id,
        status=result.transfer.status,
        amount=amount_text(intent.amount),
        asset=intent.asset,
    )
    return ActionResult(intent=intent, message=message)


def _record_not_sent(*, intent_id: int, actor: Actor, attempt: SettleAttempt) -> ActionResult:
    """Kraken refused, or did not answer: record it, and ask Kraken at once if unsure."""
    now = timezone.now()
    unknown = attempt.outcome_unknown
    if unknown:
        note = messages.SETTLE_UNANSWERED
        action, outcome = AuditAction.LEG_OUTCOME_UNKNOWN, Outcome.UNKNOWN
        new_state = IntentState.OUTCOME_UNKNOWN
    else:
        note = attempt.message
        action, outcome = AuditAction.LEG_SETTLE_FAILED, Outcome.FAILED
        new_state = IntentState.FAILED
    with transaction.atomic():
        intent = _lock_for_answer(intent_id)
        still_ours = intent.state == IntentState.SUBMITTING
        changes: JsonDict = {}
        if still_ours:
            changes = {"state": new_state, "note": note}
            if new_state == IntentState.FAILED:
                changes["finished_at"] = now
        move_intent(
            intent,
            changes,
            actor=actor,
            action=action,
            outcome=outcome,
            endpoint=SETTLE,
            answer=attempt.error,
            message=note,
        )
    if not unknown or not still_ours:
        return ActionResult(intent=intent, message=intent.note or note, level="error")
    return _check_at_once(intent, actor=actor, note=note)


def _check_at_once(intent: SettlementIntent, *, actor: Actor, note: str) -> ActionResult:
    """Ask Kraken what became of an unanswered send; the poller keeps asking if this fails."""
    try:
        batch_refresh(prime_batch_id=intent.batch.prime_batch_id, actor=actor)
    except SettlementError as exc:  # the service's own refusal, not a Prime call's failure
        intent.note = f"{note} {exc}"
        return ActionResult(intent=intent, message=intent.note, level="warning")
    intent.refresh_from_db()
    level = "success" if intent.state in (IntentState.SUBMITTED, IntentState.SETTLED) else "warning"
    return ActionResult(intent=intent, message=intent.note, level=level)


def _mirror_leg_after_settle(leg: Leg, result: prime_models.SettleResult) -> None:
    leg.transfer_id = result.transfer.id
    leg.transfer_status = result.transfer.status
    if result.leg is not None:
        leg.status = result.leg.status
        leg.can_settle = result.leg.can_settle
    else:
        leg.status = LegStatus.SETTLING
        leg.can_settle = False
    leg.save(update_fields=["transfer_id", "transfer_status", "status", "can_settle"])


def intents_send_left_behind(
    *, actor: Actor, older_than: timedelta, now: datetime | None = None
) -> int:
    """Send intents approved but never claimed (the approver's process stopped in between)."""
    cutoff = (now or timezone.now()) - older_than
    ids = list(
        SettlementIntent.objects.filter(
            state=IntentState.APPROVED, approved_at__lte=cutoff
        ).values_list("pk", flat=True)
    )
    for pk in ids:
        intent_send(intent_id=pk, actor=actor)
    return len(ids)
