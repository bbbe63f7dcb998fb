"""The mirror: bring the local copy of a batch up to Kraken's answer, and reconcile.

`batch_apply` is the one way Kraken's view of a batch reaches the database: it
audits status changes, voids unsent intents whose leg changed, follows sent
intents to settled/failed, and decides intents whose outcome is unknown.
"""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.actors import Actor
from portal.audit.models import AuditAction, Outcome, TargetType
from portal.audit.services import audit_record
from portal.settlement import messages
from portal.settlement.messages import amount_text
from portal.settlement.models import (
    OPEN_STATES,
    UNSENT_STATES,
    Batch,
    IntentState,
    Leg,
    SettlementIntent,
)
from portal.settlement.services.common import (
    GET_BATCH,
    SETTLE,
    ApplySummary,
    JsonDict,
    audit_leg,
    move_intent,
    reconcile_grace,
    submitting_stale_after,
)
from primeapi import models as prime_models


def batch_apply(
    *, remote: prime_models.SettlementBatch, actor: Actor, created: bool = False
) -> ApplySummary:
    """Store one batch as Kraken reported it (mirror, intents, audit) in one transaction."""
    with transaction.atomic():
        return apply_batch(remote=remote, actor=actor, now=timezone.now(), created=created)


def apply_batch(
    *, remote: prime_models.SettlementBatch, actor: Actor, now: datetime, created: bool = False
) -> ApplySummary:
    """Bring the mirror of one batch up to Kraken's answer; call inside `transaction.atomic()`.

    Every row lock is taken before the first audit event (which locks the chain
    head): batch, legs, intents, then the chain, the order of every sender too.
    """
    fields = _batch_fields(remote)
    batch, inserted = _lock_or_create_batch(remote, fields, now)
    legs = {
        leg.asset: leg for leg in Leg.objects.select_for_update(of=("self",)).filter(batch=batch)
    }
    intents = list(
        SettlementIntent.objects.select_for_update(of=("self",))
        .select_related("batch")
        .filter(batch=batch, state__in=OPEN_STATES)
        .order_by("pk")
    )
    changes = _apply_batch_row(
        batch, remote, fields, inserted=inserted, actor=actor, now=now, created=created
    )
    remote_legs = {leg.asset: leg for leg in remote.legs}
    for asset, remote_leg in remote_legs.items():
        changes += _apply_leg(batch, legs.get(asset), remote_leg, actor=actor)
    counts = {"voided": 0, "reconciled": 0, "settled": 0}
    for intent in intents:
        kind = _apply_intent(intent, remote_legs.get(intent.asset), actor=actor, now=now)
        if kind:
            counts[kind] += 1
    return ApplySummary(batch=batch, changes=changes, **counts)


def _batch_fields(remote: prime_models.SettlementBatch) -> JsonDict:
    return {
        "asset_kind": remote.asset_kind,
        "status": remote.status,
        "confirmed": remote.confirmed,
        "trade_count": remote.trade_count,
        "created_at": remote.created_at,
        "updated_at": remote.updated_at,
        "is_final": remote.is_final,
    }


def _lock_or_create_batch(
    remote: prime_models.SettlementBatch, fields: JsonDict, now: datetime
) -> tuple[Batch, bool]:
    """The batch row, locked; created if the mirror has none (True when created here)."""
    batch = Batch.objects.select_for_update().filter(prime_batch_id=remote.id).first()
    if batch is not None:
        return batch, False
    try:
        with transaction.atomic():  # a savepoint: another process may insert it first
            batch = Batch(
                prime_batch_id=remote.id, trade_ids=list(remote.trade_ids), last_refreshed_at=now
            )
            for name, value in fields.items():
                setattr(batch, name, value)
            batch.save(force_insert=True)
    except IntegrityError:
        return Batch.objects.select_for_update().get(prime_batch_id=remote.id), False
    return batch, True


def _apply_batch_row(
    batch: Batch,
    remote: prime_models.SettlementBatch,
    fields: JsonDict,
    *,
    inserted: bool,
    actor: Actor,
    now: datetime,
    created: bool,
) -> int:
    """Bring the locked batch row up to date; 1 change if its status moved (or it is new)."""
    if inserted:
        if created:
            return 0
        after = _batch_state(batch)
        _audit_batch_status(batch, actor=actor, after=after, message=messages.FIRST_SEEN)
        return 1
    before = _batch_state(batch)
    for name, value in fields.items():
        setattr(batch, name, value)
    if remote.trade_ids:  # list answers omit trade ids; keep what Get gave us
        batch.trade_ids = list(remote.trade_ids)
    batch.last_refreshed_at = now
    batch.save()
    after = _batch_state(batch)
    if before == after:
        return 0
    answer = {"status": remote.status, "confirmed": remote.confirmed}
    _audit_batch_status(batch, before=before, after=after, answer=answer, actor=actor)
    return 1


def _batch_state(batch: Batch) -> JsonDict:
    return {"status": batch.status, "confirmed": batch.confirmed}


def _audit_batch_status(
    batch: Batch,
    *,
    actor: Actor,
    after: JsonDict,
    before: JsonDict | None = None,
    answer: JsonDict | None = None,
    message: str = "",
) -> None:
    audit_record(
        actor=actor,
        action=AuditAction.BATCH_STATUS_CHANGED,
        target_type=TargetType.BATCH,
        target_id=batch.prime_batch_id,
        before=before,
        after=after,
        prime_endpoint=GET_BATCH,
        prime_response=answer,
        message=message,
    )


def _leg_view(leg: Leg) -> JsonDict:
    return {
        "status": leg.status,
        "amount": leg.amount,
        "direction": leg.direction,
        "can_settle": leg.can_settle,
        "transfer_id": leg.transfer_id,
        "transfer_status": leg.transfer_status,
    }


def _apply_leg(batch: Batch, leg: Leg | None, remote_leg: prime_models.Leg, *, actor: Actor) -> int:
    """Bring one leg up to Kraken's answer; 1 when an existing leg changed."""
    transfer = remote_leg.latest_transfer
    values: JsonDict = {
        "direction": remote_leg.direction or "",
        "amount": remote_leg.amount,
        "can_settle": remote_leg.can_settle,
        "status": remote_leg.status,
        "transfer_id": transfer.id if transfer else "",
        "transfer_status": transfer.status if transfer else "",
        "settled_at": remote_leg.settled_at,
    }
    if leg is None:
        leg = Leg(batch=batch, asset=remote_leg.asset)
        for name, value in values.items():
            setattr(leg, name, value)
        leg.save(force_insert=True)
        return 0
    before = _leg_view(leg)
    for name, value in values.items():
        setattr(leg, name, value)
    after = _leg_view(leg)
    if before == after:
        return 0
    leg.save()
    audit_leg(
        actor=actor,
        action=AuditAction.LEG_STATUS_CHANGED,
        prime_batch_id=batch.prime_batch_id,
        asset=remote_leg.asset,
        before=before,
        after=after,
        endpoint=GET_BATCH,
        answer=remote_leg,
    )
    return 1


def _apply_intent(
    intent: SettlementIntent, remote_leg: prime_models.Leg | None, *, actor: Actor, now: datetime
) -> str:
    """Follow one open intent to what Kraken shows; the summary counter to bump, or ""."""
    if intent.state in UNSENT_STATES:
        if remote_leg is None or (remote_leg.amount, remote_leg.direction) != (
            intent.amount,
            intent.direction,
        ):
            void(intent=intent, remote_leg=remote_leg, actor=actor, now=now)
            return "voided"
        return ""
    if intent.state == IntentState.SUBMITTED:
        return "settled" if _follow_transfer(intent, remote_leg, actor=actor, now=now) else ""
    if intent.state == IntentState.SUBMITTING:
        if intent.submitting_at and now - intent.submitting_at < submitting_stale_after():
            return ""  # a sender is still waiting for Kraken's answer
        _mark_stale_submitting(intent, actor=actor)
    if intent.state == IntentState.OUTCOME_UNKNOWN:
        return "reconciled" if _reconcile(intent, remote_leg, actor=actor, now=now) else ""
    return ""


def void(
    *,
    intent: SettlementIntent,
    remote_leg: prime_models.Leg | None,
    actor: Actor,
    now: datetime,
) -> None:
    """Void an unsent intent whose leg changed (or vanished) at Kraken."""
    if remote_leg is None:
        found = messages.VOID_LEG_GONE
    else:
        found = messages.VOID_LEG_NOW.format(
            direction=remote_leg.direction,
            amount=amount_text(remote_leg.amount),
            asset=intent.asset,
        )
    note = messages.VOID.format(
        direction=intent.direction,
        amount=amount_text(intent.amount),
        asset=intent.asset,
        found=found,
    )
    move_intent(
        intent,
        {"state": IntentState.VOIDED, "finished_at": now, "note": note},
        actor=actor,
        action=AuditAction.LEG_VOIDED,
        endpoint=GET_BATCH,
        answer=remote_leg,
        message=note,
    )


def void_against_mirror(*, intent: SettlementIntent, actor: Actor, now: datetime) -> None:
    """Void an intent whose leg in the mirror no longer matches it."""
    leg = intent.leg
    remote_like = prime_models.Leg(
        asset=leg.asset,
        amount=leg.amount,
        direction=leg.direction,
        status=leg.status,
        can_settle=leg.can_settle,
    )
    void(intent=intent, remote_leg=remote_like, actor=actor, now=now)


def matches_mirror(*, intent: SettlementIntent) -> bool:
    """True while the leg still shows the amount and direction the intent was made for."""
    return (intent.leg.amount, intent.leg.direction) == (intent.amount, intent.direction)


def _follow_transfer(
    intent: SettlementIntent,
    remote_leg: prime_models.Leg | None,
    *,
    actor: Actor,
    now: datetime,
) -> bool:
    """Move a sent intent to settled or failed when its transfer finished; True if moved."""
    transfer = remote_leg.latest_transfer if remote_leg else None
    if transfer is None or transfer.id != intent.transfer_id:
        return False
    if transfer.status == prime_models.TransferStatus.COMPLETED:
        state = IntentState.SETTLED
        note = messages.TRANSFER_COMPLETED.format(transfer_id=transfer.id)
        action, outcome = AuditAction.LEG_STATUS_CHANGED, Outcome.SUCCEEDED
    elif transfer.status == prime_models.TransferStatus.FAILED:
        state = IntentState.FAILED
        note = messages.TRANSFER_FAILED.format(transfer_id=transfer.id)
        action, outcome = AuditAction.LEG_SETTLE_FAILED, Outcome.FAILED
    else:
        return False
    move_intent(
        intent,
        {"state": state, "finished_at": now, "note": note},
        actor=actor,
        action=action,
        outcome=outcome,
        endpoint=GET_BATCH,
        answer=transfer,
        message=note,
    )
    return True


def _mark_stale_submitting(intent: SettlementIntent, *, actor: Actor) -> None:
    move_intent(
        intent,
        {"state": IntentState.OUTCOME_UNKNOWN, "note": messages.STALE_SUBMITTING},
        actor=actor,
        action=AuditAction.LEG_OUTCOME_UNKNOWN,
        outcome=Outcome.UNKNOWN,
        endpoint=SETTLE,
        message=messages.STALE_SUBMITTING,
    )


def _reconcile(
    intent: SettlementIntent,
    remote_leg: prime_models.Leg | None,
    *,
    actor: Actor,
    now: datetime,
) -> bool:
    """Decide an unknown outcome from the leg Kraken reports; True if decided."""
    transfer = remote_leg.latest_transfer if remote_leg else None
    if transfer is not None and transfer.id != intent.prior_transfer_id:
        changes = _found_transfer(intent, transfer, now=now)
    else:
        since = intent.submitting_at or intent.approved_at or now
        if now - since < reconcile_grace():
            intent.note = messages.RECONCILE_WAITING
            intent.save(update_fields=["note"])
            return False
        status = remote_leg.status if remote_leg else "missing"
        changes = {
            "state": IntentState.FAILED,
            "finished_at": now,
            "note": messages.RECONCILED_NOT_SENT.format(status=status),
        }
    move_intent(
        intent,
        changes,
        actor=actor,
        action=AuditAction.LEG_RECONCILED,
        endpoint=GET_BATCH,
        answer=remote_leg,
        message=str(changes["note"]),
    )
    return True


def _found_transfer(
    intent: SettlementIntent, transfer: prime_models.Transfer, *, now: datetime
) -> JsonDict:
    """The changes when Kraken shows a new transfer for an intent of unknown outcome."""
    found = messages.RECONCILED_FOUND.format(transfer_id=transfer.id, status=transfer.status)
    changes: JsonDict = {"transfer_id": transfer.id, "submitted_at": intent.submitted_at or now}
    if transfer.status == prime_models.TransferStatus.COMPLETED:
        note = messages.RECONCILED_SETTLED.format(found=found)
        return changes | {"state": IntentState.SETTLED, "finished_at": now, "note": note}
    if transfer.status == prime_models.TransferStatus.FAILED:
        note = messages.RECONCILED_FAILED.format(found=found)
        return changes | {"state": IntentState.FAILED, "finished_at": now, "note": note}
    note = messages.RECONCILED_RUNNING.format(found=found)
    return changes | {"state": IntentState.SUBMITTED, "note": note}
