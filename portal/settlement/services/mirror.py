"""The mirror: bring the local copy of a batch up to Kraken's answer.

`batch_apply` is the one way Kraken's view of a batch reaches the database: it
audits status changes and voids the open leg requests (approvals engine, kind
`settlement_leg`) whose leg changed or vanished at Kraken.
"""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.actors import Actor
from portal.approvals.models import ChangeKind, ChangeRequest, RequestState
from portal.approvals.services.requests import void_locked
from portal.audit.models import AuditAction, TargetType
from portal.audit.services import audit_record
from portal.settlement import messages
from portal.settlement.messages import amount_text, what_text
from portal.settlement.models import Batch, Leg, LegStatus, leg_audit_id
from portal.settlement.services.common import (
    CREATE_BATCH,
    GET_BATCH,
    ApplySummary,
    JsonDict,
    audit_leg,
    kraken_answer,
)
from primeapi import models as prime_models

# Requests not yet handed to Kraken: voided when their leg changes upstream.
UNSENT_STATES = (RequestState.PENDING, RequestState.APPROVED)


def batch_apply(
    *, remote: prime_models.SettlementBatch, actor: Actor, created: bool = False
) -> ApplySummary:
    """Store one batch as Kraken reported it (mirror, leg requests, audit) in one transaction."""
    with transaction.atomic():
        return apply_batch(remote=remote, actor=actor, now=timezone.now(), created=created)


def apply_batch(
    *, remote: prime_models.SettlementBatch, actor: Actor, now: datetime, created: bool = False
) -> ApplySummary:
    """Bring the mirror of one batch up to Kraken's answer; call inside `transaction.atomic()`.

    Every row lock is taken before the first audit event (which locks the chain
    head): batch, legs, the legs' unsent requests, then the chain, the order of
    every sender too (the leg kind's `record` locks the leg before the request).
    """
    fields = _batch_fields(remote)
    batch, inserted = _lock_or_create_batch(remote, fields, now)
    legs = {
        leg.asset: leg for leg in Leg.objects.select_for_update(of=("self",)).filter(batch=batch)
    }
    leg_ids = [leg_audit_id(batch.prime_batch_id, asset) for asset in legs]
    unsent = list(
        ChangeRequest.objects.select_for_update()
        .filter(kind=ChangeKind.SETTLEMENT_LEG, target_id__in=leg_ids, state__in=UNSENT_STATES)
        .order_by("pk")
    )
    was_settled = {asset for asset, leg in legs.items() if leg.status == LegStatus.SETTLED}
    changes = _apply_batch_row(
        batch, remote, fields, inserted=inserted, actor=actor, now=now, created=created
    )
    remote_legs = {leg.asset: leg for leg in remote.legs}
    for asset, remote_leg in remote_legs.items():
        changes += _apply_leg(batch, legs.get(asset), remote_leg, actor=actor)
    voided = 0
    for change in unsent:
        asset = change.target_id[len(batch.prime_batch_id) + 1 :]
        voided += _void_if_changed(change, asset, remote_legs.get(asset), actor=actor)
    settled = sum(
        1
        for asset, leg in remote_legs.items()
        if leg.status == LegStatus.SETTLED and asset not in was_settled and not inserted
    )
    return ApplySummary(batch=batch, changes=changes, voided=voided, settled=settled)


def _void_if_changed(
    change: ChangeRequest, asset: str, remote_leg: prime_models.Leg | None, *, actor: Actor
) -> int:
    """Void an unsent leg request whose leg changed (or vanished) at Kraken; 1 if voided."""
    if remote_leg is None:
        now_state: JsonDict = {"leg": "not listed by Kraken"}
        found = messages.VOID_LEG_GONE
    else:
        now_state = {
            "direction": remote_leg.direction or "",
            "amount": format(remote_leg.amount.normalize(), "f"),
        }
        found = messages.VOID_LEG_NOW.format(
            direction=remote_leg.direction,
            amount=amount_text(remote_leg.amount, asset),
            asset=asset,
        )
    if now_state == change.target_fingerprint:
        return 0
    before = change.target_fingerprint if isinstance(change.target_fingerprint, dict) else {}
    reason = messages.VOID.format(
        what=what_text(str(before.get("direction", "")), str(before.get("amount", "")), asset),
        found=found,
    )
    return int(
        void_locked(
            change,
            actor=actor,
            reason=reason,
            before=change.target_fingerprint,
            now_state=now_state,
            from_states=UNSENT_STATES,
        )
    )


def audit_batch_created(remote: prime_models.SettlementBatch, *, actor: Actor) -> None:
    """The audit event of a batch Kraken made at the portal's request."""
    audit_record(
        actor=actor,
        action=AuditAction.BATCH_CREATED,
        target_type=TargetType.BATCH,
        target_id=remote.id,
        after={
            "asset_kind": remote.asset_kind,
            "status": remote.status,
            "trade_count": remote.trade_count,
            "legs": len(remote.legs),
        },
        prime_endpoint=CREATE_BATCH,
        prime_response=kraken_answer(remote),
    )


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
