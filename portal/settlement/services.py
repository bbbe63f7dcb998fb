"""Settlement writes: batches, four-eyes intents, the exactly-once send, and reconciliation.

Rules every function here keeps:

- Kraken is called with no database transaction open. The mirror and the audit
  event of one outcome are written together in one `transaction.atomic()`.
- `SettlePrimeSettlementBatchAsset` is sent at most once per approved intent:
  the sender moves the intent from `approved` to `submitting` under a row lock
  and commits *before* the call, so no second caller (thread, double click,
  retry, another process) can claim it again. The uniqueness constraint over
  open intents keeps a second intent for the same leg from existing at all.
- An outcome that may have reached Kraken (timeout, dropped connection, 5xx) is
  recorded as `outcome_unknown` and reconciled with GetPrimeSettlementBatch before
  the leg can be requested again.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.actors import Actor, SystemActor
from portal.audit.models import AuditAction, Outcome, TargetType
from portal.audit.services import audit_record
from portal.connection import door
from portal.settlement.models import (
    OPEN_STATES,
    UNSENT_STATES,
    Batch,
    BatchStatus,
    IntentState,
    Leg,
    LegStatus,
    SettlementRequest,
    leg_audit_id,
)
from portal.staff.roles import APPROVE_SETTLEMENT, REQUEST_SETTLEMENT
from primeapi import errors as prime_errors
from primeapi import models as prime_models

logger = logging.getLogger("portal.settlement")

SETTLE = "SettlePrimeSettlementBatchAsset"
GET_BATCH = "GetPrimeSettlementBatch"
CREATE_BATCH = "CreatePrimeSettlementBatch"
LIST_BATCHES = "ListPrimeSettlementBatches"
ACTIVE_STATUSES = (
    BatchStatus.UNSETTLED.value,
    BatchStatus.PARTIALLY_SETTLED.value,
    BatchStatus.SETTLED.value,
)


class SettlementError(Exception):
    """The portal or Kraken refused; `str()` is the message for the person."""


class NotAllowedError(SettlementError):
    """The person may not do this at all (role, or approving their own request)."""


class ActiveBatchExistsError(SettlementError):
    """Kraken already has an active batch of this kind; `batch` is it, when the portal knows it."""

    def __init__(self, message: str, *, batch: Batch | None) -> None:
        super().__init__(message)
        self.batch = batch


@dataclass(frozen=True)
class ActionResult:
    """What a leg action did, in words for the person (`level` is a messages tag)."""

    intent: SettlementRequest | None
    message: str
    level: str = "success"


@dataclass(frozen=True)
class ApplySummary:
    """What one mirror update changed."""

    batch: Batch
    changes: int = 0
    voided: int = 0
    reconciled: int = 0
    settled: int = 0


# --- small helpers ------------------------------------------------------------------------


def _ttl() -> timedelta:
    return timedelta(seconds=settings.SETTLEMENT_REQUEST_TTL_SECONDS)


def _reconcile_grace() -> timedelta:
    # How long a missing transfer may still be "on its way" at Kraken before the portal
    # concludes that an unanswered settle call did not go through.
    return timedelta(seconds=settings.SETTLEMENT_RECONCILE_GRACE_SECONDS)


def _submitting_stale_after() -> timedelta:
    # A `submitting` row older than this was left by a process that stopped mid-call.
    return timedelta(seconds=settings.SETTLEMENT_SUBMITTING_STALE_SECONDS)


def _kraken_answer(value: Any) -> Any:
    """Kraken's answer as plain data for the audit trail."""
    if isinstance(value, prime_errors.PrimeError):
        return {
            "error": type(value).__name__,
            "errors": list(value.errors),
            "http_status": value.http_status,
            "outcome_unknown": value.outcome_unknown,
        }
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def _intent_view(intent: SettlementRequest) -> dict[str, Any]:
    return {
        "request": intent.pk,
        "state": intent.state,
        "asset": intent.asset,
        "amount": intent.amount,
        "direction": intent.direction,
        "transfer_id": intent.transfer_id,
    }


def _what(intent: SettlementRequest) -> str:
    return f"{intent.direction} {amount_text(intent.amount)} {intent.asset}"


def _leg_view(leg: Leg) -> dict[str, Any]:
    return {
        "status": leg.status,
        "amount": leg.amount,
        "direction": leg.direction,
        "can_settle": leg.can_settle,
        "transfer_id": leg.transfer_id,
        "transfer_status": leg.transfer_status,
    }


def _is_person(actor: Any) -> bool:
    return not isinstance(actor, str)


def _audit_leg(
    *,
    actor: Any,
    action: AuditAction,
    intent: SettlementRequest | None = None,
    prime_batch_id: str = "",
    asset: str = "",
    outcome: Outcome = Outcome.SUCCEEDED,
    before: Any = None,
    after: Any = None,
    endpoint: str = "",
    answer: Any = None,
    message: str = "",
) -> None:
    if intent is not None:
        prime_batch_id, asset = intent.batch.prime_batch_id, intent.asset
    audit_record(
        actor=actor,
        action=action,
        target_type=TargetType.LEG,
        target_id=leg_audit_id(prime_batch_id, asset),
        outcome=outcome,
        before=before,
        after=after,
        prime_endpoint=endpoint,
        prime_response=_kraken_answer(answer),
        message=message,
    )


def _move_intent(
    intent: SettlementRequest,
    changes: dict[str, Any],
    *,
    actor: Any,
    action: AuditAction,
    message: str,
    outcome: Outcome = Outcome.SUCCEEDED,
    endpoint: str = "",
    answer: Any = None,
    after_extra: dict[str, Any] | None = None,
) -> None:
    """Set `changes` on the intent, save just those fields, and audit before/after.

    Call inside `transaction.atomic()` with the intent locked. With no changes the
    intent is left as it is and only the audit event is written.
    """
    before = _intent_view(intent)
    for name, value in changes.items():
        setattr(intent, name, value)
    if changes:
        intent.save(update_fields=list(changes))
    _audit_leg(
        actor=actor,
        action=action,
        intent=intent,
        outcome=outcome,
        before=before,
        after=_intent_view(intent) | (after_extra or {}),
        endpoint=endpoint,
        answer=answer,
        message=message,
    )


def _refuse(
    *,
    actor: Any,
    action: AuditAction,
    message: str,
    intent: SettlementRequest | None = None,
    prime_batch_id: str = "",
    asset: str = "",
    error: type[SettlementError] = SettlementError,
) -> SettlementError:
    """Audit a refused attempt (in its own transaction) and return the error to raise."""
    _audit_leg(
        actor=actor,
        action=action,
        intent=intent,
        prime_batch_id=prime_batch_id,
        asset=asset,
        outcome=Outcome.REFUSED,
        after=_intent_view(intent) if intent is not None else None,
        message=message,
    )
    return error(message)


def describe_settle_refusal(exc: prime_errors.PrimeError) -> str:
    """Kraken's refusal of a settle call in plain words, with what the person can do next."""
    detail = (getattr(exc, "detail", "") or "").lower()
    if "not confirmed" in detail:
        return (
            "Kraken refused: the batch is not confirmed yet. Nothing was sent. Request the "
            "leg again once Kraken has confirmed the batch."
        )
    if "cannot be settled" in detail:
        return (
            "Kraken refused: this leg cannot be settled now (can_settle is false at Kraken). "
            "Nothing was sent. Request it again when Kraken allows it."
        )
    if "already settled" in detail:
        return (
            "Kraken refused: this leg is already being settled or settled. Nothing new was "
            "sent; check with Kraken to see its transfer."
        )
    if "unknown batch" in detail or "unknown asset" in detail:
        return f"Kraken refused: it does not know this {detail.split()[-1]}. Nothing was sent."
    return door.describe_error(exc) + " The leg can be requested again."


# --- the mirror -----------------------------------------------------------------------------


def _lock_or_create_batch(
    remote: prime_models.SettlementBatch, fields: dict[str, Any], now: datetime
) -> tuple[Batch, bool]:
    """The batch row, locked; created if the mirror has none (True when created here)."""
    batch = Batch.objects.select_for_update().filter(prime_batch_id=remote.id).first()
    if batch is not None:
        return batch, False
    try:
        with transaction.atomic():  # a savepoint: another process may insert it first
            batch = Batch.objects.create(
                prime_batch_id=remote.id,
                trade_ids=list(remote.trade_ids),
                last_refreshed_at=now,
                **fields,
            )
    except IntegrityError:
        return Batch.objects.select_for_update().get(prime_batch_id=remote.id), False
    return batch, True


def _apply_batch(
    remote: prime_models.SettlementBatch, *, actor: Any, now: datetime, created: bool = False
) -> ApplySummary:
    """Bring the mirror of one batch up to Kraken's answer; call inside `transaction.atomic()`.

    Audits status changes, voids unsent intents whose leg changed, follows sent
    intents to settled/failed, and reconciles intents whose outcome is unknown.

    Row locks are taken first and in one order everywhere in this module (batch, then
    legs, then intents; the audit chain head last, by `audit_record`), so a poller
    refresh and a sender recording Kraken's answer cannot deadlock.
    """
    changes = voided = reconciled = settled = 0
    fields = {
        "asset_kind": remote.asset_kind,
        "status": remote.status,
        "confirmed": remote.confirmed,
        "trade_count": remote.trade_count,
        "created_at": remote.created_at,
        "updated_at": remote.updated_at,
        "is_final": remote.is_final,
    }
    batch, inserted = _lock_or_create_batch(remote, fields, now)
    legs = {
        leg.asset: leg for leg in Leg.objects.select_for_update(of=("self",)).filter(batch=batch)
    }
    intents = list(
        SettlementRequest.objects.select_for_update(of=("self",))
        .select_related("batch")
        .filter(batch=batch, state__in=OPEN_STATES)
        .order_by("pk")
    )

    if inserted:
        if not created:
            audit_record(
                actor=actor,
                action=AuditAction.BATCH_STATUS_CHANGED,
                target_type=TargetType.BATCH,
                target_id=batch.prime_batch_id,
                after={"status": batch.status, "confirmed": batch.confirmed},
                prime_endpoint=GET_BATCH,
                message="First seen at Kraken (created outside the portal).",
            )
            changes += 1
    else:
        before = {"status": batch.status, "confirmed": batch.confirmed}
        for name, value in fields.items():
            setattr(batch, name, value)
        if remote.trade_ids:  # list answers omit trade ids; keep what Get gave us
            batch.trade_ids = list(remote.trade_ids)
        batch.last_refreshed_at = now
        batch.save()
        after = {"status": batch.status, "confirmed": batch.confirmed}
        if before != after:
            audit_record(
                actor=actor,
                action=AuditAction.BATCH_STATUS_CHANGED,
                target_type=TargetType.BATCH,
                target_id=batch.prime_batch_id,
                before=before,
                after=after,
                prime_endpoint=GET_BATCH,
                prime_response={"status": remote.status, "confirmed": remote.confirmed},
            )
            changes += 1

    remote_legs = {leg.asset: leg for leg in remote.legs}
    for asset, remote_leg in remote_legs.items():
        leg = legs.get(asset)
        transfer = remote_leg.latest_transfer
        values = {
            "direction": remote_leg.direction or "",
            "amount": remote_leg.amount,
            "can_settle": remote_leg.can_settle,
            "status": remote_leg.status,
            "transfer_id": transfer.id if transfer else "",
            "transfer_status": transfer.status if transfer else "",
            "settled_at": remote_leg.settled_at,
        }
        if leg is None:
            legs[asset] = Leg.objects.create(batch=batch, asset=asset, **values)
            continue
        before = _leg_view(leg)
        for name, value in values.items():
            setattr(leg, name, value)
        after = _leg_view(leg)
        if before != after:
            leg.save()
            _audit_leg(
                actor=actor,
                action=AuditAction.LEG_STATUS_CHANGED,
                prime_batch_id=batch.prime_batch_id,
                asset=asset,
                before=before,
                after=after,
                endpoint=GET_BATCH,
                answer=remote_leg,
            )
            changes += 1

    for intent in intents:
        remote_leg = remote_legs.get(intent.asset)
        if intent.state in UNSENT_STATES:
            if remote_leg is None or (remote_leg.amount, remote_leg.direction) != (
                intent.amount,
                intent.direction,
            ):
                _void(intent, remote_leg, actor=actor, now=now)
                voided += 1
        elif intent.state == IntentState.SUBMITTED:
            settled += _follow_transfer(intent, remote_leg, actor=actor, now=now)
        elif intent.state in (IntentState.OUTCOME_UNKNOWN, IntentState.SUBMITTING):
            if intent.state == IntentState.SUBMITTING:
                if intent.submitting_at and now - intent.submitting_at < _submitting_stale_after():
                    continue  # a sender is still waiting for Kraken's answer
                _mark_stale_submitting(intent, actor=actor, now=now)
            reconciled += _reconcile(intent, remote_leg, actor=actor, now=now)
    return ApplySummary(
        batch=batch, changes=changes, voided=voided, reconciled=reconciled, settled=settled
    )


def _void(
    intent: SettlementRequest,
    remote_leg: prime_models.Leg | None,
    *,
    actor: Any,
    now: datetime,
) -> None:
    if remote_leg is None:
        found = "Kraken no longer lists this leg"
    else:
        found = (
            f"Kraken now shows {remote_leg.direction} {amount_text(remote_leg.amount)} "
            f"{intent.asset}"
        )
    note = (
        f"Void: the request was for {intent.direction} {amount_text(intent.amount)} "
        f"{intent.asset}; "
        f"{found}. Request it again if it should still be settled."
    )
    _move_intent(
        intent,
        {"state": IntentState.VOIDED, "finished_at": now, "note": note},
        actor=actor,
        action=AuditAction.LEG_VOIDED,
        endpoint=GET_BATCH,
        answer=remote_leg,
        message=note,
    )


def _follow_transfer(
    intent: SettlementRequest,
    remote_leg: prime_models.Leg | None,
    *,
    actor: Any,
    now: datetime,
) -> int:
    transfer = remote_leg.latest_transfer if remote_leg else None
    if transfer is None or transfer.id != intent.transfer_id:
        return 0
    if transfer.status == prime_models.TransferStatus.COMPLETED:
        state = IntentState.SETTLED
        note = f"Kraken completed transfer {transfer.id}."
        action, outcome = AuditAction.LEG_STATUS_CHANGED, Outcome.SUCCEEDED
    elif transfer.status == prime_models.TransferStatus.FAILED:
        state = IntentState.FAILED
        note = (
            f"Kraken's transfer {transfer.id} failed. Nothing more was sent; the leg can be "
            "requested again."
        )
        action, outcome = AuditAction.LEG_SETTLE_FAILED, Outcome.FAILED
    else:
        return 0
    _move_intent(
        intent,
        {"state": state, "finished_at": now, "note": note},
        actor=actor,
        action=action,
        outcome=outcome,
        endpoint=GET_BATCH,
        answer=transfer,
        message=note,
    )
    return 1


def _mark_stale_submitting(intent: SettlementRequest, *, actor: Any, now: datetime) -> None:
    note = (
        "The portal stopped while sending this leg to Kraken, so the outcome is unknown. "
        "Nothing will be sent again until Kraken's records are checked."
    )
    _move_intent(
        intent,
        {"state": IntentState.OUTCOME_UNKNOWN, "note": note},
        actor=actor,
        action=AuditAction.LEG_OUTCOME_UNKNOWN,
        outcome=Outcome.UNKNOWN,
        endpoint=SETTLE,
        message=note,
    )


def _reconcile(
    intent: SettlementRequest,
    remote_leg: prime_models.Leg | None,
    *,
    actor: Any,
    now: datetime,
) -> int:
    """Decide an unknown outcome from the leg Kraken reports; 1 if decided."""
    transfer = remote_leg.latest_transfer if remote_leg else None
    if transfer is not None and transfer.id != intent.prior_transfer_id:
        changes: dict[str, Any] = {
            "transfer_id": transfer.id,
            "submitted_at": intent.submitted_at or now,
        }
        found = f"Kraken has transfer {transfer.id} ({transfer.status}) for this leg"
        if transfer.status == prime_models.TransferStatus.COMPLETED:
            changes |= {
                "state": IntentState.SETTLED,
                "finished_at": now,
                "note": f"Checked with Kraken: {found}. The settle went through; the leg is "
                "settled.",
            }
        elif transfer.status == prime_models.TransferStatus.FAILED:
            changes |= {
                "state": IntentState.FAILED,
                "finished_at": now,
                "note": f"Checked with Kraken: {found}. The settle went through but the "
                "transfer failed; the leg can be requested again.",
            }
        else:
            changes |= {
                "state": IntentState.SUBMITTED,
                "note": f"Checked with Kraken: {found}. The settle went through; nothing was "
                "sent again. The transfer is running.",
            }
    else:
        since = intent.submitting_at or intent.approved_at or now
        if now - since < _reconcile_grace():
            intent.note = (
                "Checked with Kraken: no transfer for this leg yet. The call may still be on "
                "its way, so the portal will check again shortly; nothing will be sent meanwhile."
            )
            intent.save(update_fields=["note"])
            return 0
        status = remote_leg.status if remote_leg else "missing"
        changes = {
            "state": IntentState.FAILED,
            "finished_at": now,
            "note": f"Checked with Kraken: no transfer was started for this leg (leg {status}). "
            "The settle call did not go through; the leg can be requested again.",
        }
    _move_intent(
        intent,
        changes,
        actor=actor,
        action=AuditAction.LEG_RECONCILED,
        endpoint=GET_BATCH,
        answer=remote_leg,
        message=changes["note"],
    )
    return 1


def batch_apply(
    *, remote: prime_models.SettlementBatch, actor: Any, created: bool = False
) -> ApplySummary:
    """Store one batch as Kraken reported it (mirror, intents, audit) in one transaction."""
    with transaction.atomic():
        return _apply_batch(remote, actor=actor, now=timezone.now(), created=created)


def batch_refresh(*, prime_batch_id: str, actor: Any) -> ApplySummary:
    """Ask Kraken for one batch (GetPrimeSettlementBatch) and bring the mirror up to date."""
    try:
        remote = door.get_prime_client().get_settlement_batch(prime_batch_id)
    except prime_errors.PrimeError as exc:
        raise SettlementError("Could not check with Kraken: " + door.describe_error(exc)) from exc
    return batch_apply(remote=remote, actor=actor)


def batch_create(*, asset_kind: str, actor: Any) -> Batch:
    """Ask Kraken for a new batch of `asset_kind` and mirror it."""
    if _is_person(actor) and not actor.has_perm(REQUEST_SETTLEMENT):
        audit_record(
            actor=actor,
            action=AuditAction.BATCH_CREATED,
            target_type=TargetType.BATCH,
            outcome=Outcome.REFUSED,
            message="missing permission to create batches",
        )
        raise NotAllowedError("You need the Operator role to create a batch.")
    try:
        remote = door.get_prime_client().create_settlement_batch(asset_kind)
    except prime_errors.InvalidArgumentsError as exc:
        detail = (exc.detail or "").lower()
        outcome = Outcome.REFUSED
        if "active batch exists" in detail:
            existing = _find_active_batch(asset_kind=asset_kind, actor=actor)
            message = (
                f"Kraken already has an active {asset_kind.replace('_', ' ')} batch"
                + (f" ({existing.prime_batch_id})" if existing else "")
                + ". Settle it first; a new batch can be made once it is completed."
            )
            _audit_batch_refusal(actor, asset_kind, exc, message, outcome)
            raise ActiveBatchExistsError(message, batch=existing) from exc
        if "no unsettled trades" in detail:
            message = (
                f"Kraken has no unsettled {asset_kind.replace('_', ' ')} trades to put in a "
                "batch. Nothing was created."
            )
        else:
            message = door.describe_error(exc)
        _audit_batch_refusal(actor, asset_kind, exc, message, outcome)
        raise SettlementError(message) from exc
    except prime_errors.PrimeError as exc:
        if exc.outcome_unknown:
            message = (
                "Kraken did not answer in time, so the portal does not know whether the batch "
                "was made. The poller will pick it up if it was; check the list in a minute "
                "before trying again."
            )
            outcome = Outcome.UNKNOWN
        else:
            message = door.describe_error(exc)
            outcome = Outcome.FAILED
        _audit_batch_refusal(actor, asset_kind, exc, message, outcome)
        raise SettlementError(message) from exc
    with transaction.atomic():
        summary = _apply_batch(remote, actor=actor, now=timezone.now(), created=True)
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
            prime_response=_kraken_answer(remote),
        )
    return summary.batch


def _audit_batch_refusal(
    actor: Any, asset_kind: str, exc: prime_errors.PrimeError, message: str, outcome: Outcome
) -> None:
    audit_record(
        actor=actor,
        action=AuditAction.BATCH_CREATED,
        target_type=TargetType.BATCH,
        outcome=outcome,
        after={"asset_kind": asset_kind},
        prime_endpoint=CREATE_BATCH,
        prime_response=_kraken_answer(exc),
        message=message,
    )


def _find_active_batch(*, asset_kind: str, actor: Any) -> Batch | None:
    """The active batch of a kind: from the mirror, else from ListPrimeSettlementBatches."""
    known = Batch.objects.filter(asset_kind=asset_kind, is_final=False).first()
    if known is not None:
        return known
    try:
        client = door.get_prime_client()
        page = client.list_settlement_batches(statuses=list(ACTIVE_STATUSES), limit=50)
        found = next((b for b in page.batches if b.asset_kind == asset_kind), None)
        if found is None:
            return None
        remote = client.get_settlement_batch(found.id)
    except prime_errors.PrimeError:
        logger.warning("could not look up the active %s batch at Kraken", asset_kind)
        return None
    return batch_apply(remote=remote, actor=actor).batch


# --- four eyes ------------------------------------------------------------------------------


def requests_expire_stale(*, actor: Actor = SystemActor.EXPIRY, batch: Batch | None = None) -> int:
    """Expire requests nobody approved in time; returns how many."""
    now = timezone.now()
    stale = SettlementRequest.objects.filter(state=IntentState.REQUESTED, expires_at__lte=now)
    if batch is not None:
        stale = stale.filter(batch=batch)
    if not stale.exists():  # the usual case costs one cheap query and no write lock
        return 0
    count = 0
    with transaction.atomic():
        for intent in stale.select_for_update(of=("self",)).select_related("batch").order_by("pk"):
            _expire(intent, actor=actor, now=now)
            count += 1
    return count


def _expire(intent: SettlementRequest, *, actor: Any, now: datetime) -> None:
    _move_intent(
        intent,
        {
            "state": IntentState.EXPIRED,
            "finished_at": now,
            "note": "Expired: nobody approved it in time. Request it again if it is still wanted.",
        },
        actor=actor,
        action=AuditAction.LEG_EXPIRED,
        message=f"Requested at {intent.requested_at.isoformat()}, expired at "
        f"{intent.expires_at.isoformat()}.",
    )


def leg_request(*, leg: Leg, actor: Any) -> SettlementRequest:
    """An Operator asks to settle one leg, for the amount and direction the mirror shows now."""
    batch_id = leg.batch.prime_batch_id
    if not actor.has_perm(REQUEST_SETTLEMENT):
        raise _refuse(
            actor=actor,
            action=AuditAction.LEG_REQUESTED,
            message="You need the Operator role to request settlement.",
            prime_batch_id=batch_id,
            asset=leg.asset,
            error=NotAllowedError,
        )
    now = timezone.now()
    refusal = ""
    intent = None
    with transaction.atomic():
        locked = Leg.objects.select_for_update(of=("self",)).select_related("batch").get(pk=leg.pk)
        for stale in (
            SettlementRequest.objects.select_for_update(of=("self",))
            .select_related("batch")
            .filter(leg=locked, state=IntentState.REQUESTED, expires_at__lte=now)
        ):
            _expire(stale, actor=SystemActor.EXPIRY, now=now)
        open_intent = SettlementRequest.objects.filter(leg=locked, state__in=OPEN_STATES).first()
        if locked.batch.is_final:
            refusal = "This batch is completed; there is nothing left to settle."
        elif open_intent is not None:
            refusal = (
                f"This leg already has an open request ({open_intent.get_state_display()}). "
                "Deal with that one first."
            )
        elif locked.status != LegStatus.UNSETTLED:
            refusal = f"Kraken shows this leg as {locked.status}; it cannot be requested."
        elif not locked.can_settle:
            refusal = "Kraken says this leg cannot be settled now (can_settle is false)."
        else:
            try:
                with transaction.atomic():
                    intent = SettlementRequest.objects.create(
                        batch=locked.batch,
                        leg=locked,
                        asset=locked.asset,
                        amount=locked.amount,
                        direction=locked.direction,
                        requested_by=actor,
                        requested_at=now,
                        expires_at=now + _ttl(),
                        prior_transfer_id=locked.transfer_id,
                    )
            except IntegrityError:
                # Another request won the race; the constraint is the last word.
                refusal = "This leg already has an open request. Deal with that one first."
            else:
                _audit_leg(
                    actor=actor,
                    action=AuditAction.LEG_REQUESTED,
                    intent=intent,
                    after=_intent_view(intent) | {"expires_at": intent.expires_at},
                    message=f"Settle {_what(intent)}.",
                )
    if refusal:
        raise _refuse(
            actor=actor,
            action=AuditAction.LEG_REQUESTED,
            message=refusal,
            prime_batch_id=batch_id,
            asset=leg.asset,
        )
    assert intent is not None
    return intent


def leg_reject(*, request_id: int, actor: Any, reason: str) -> SettlementRequest:
    """An Approver who is not the requester turns a request down, with a reason."""
    reason = (reason or "").strip()
    intent = SettlementRequest.objects.select_related("batch").get(pk=request_id)
    refusal = _approver_refusal(intent, actor, verb="reject")
    if refusal:
        raise _refuse(
            actor=actor,
            action=AuditAction.LEG_REJECTED,
            message=refusal,
            intent=intent,
            error=NotAllowedError,
        )
    if not reason:
        raise _refuse(
            actor=actor,
            action=AuditAction.LEG_REJECTED,
            message="Give a reason for the rejection.",
            intent=intent,
        )
    now = timezone.now()
    with transaction.atomic():
        intent = (
            SettlementRequest.objects.select_for_update(of=("self",))
            .select_related("batch")
            .get(pk=request_id)
        )
        if intent.state == IntentState.REQUESTED and intent.expires_at <= now:
            _expire(intent, actor=SystemActor.EXPIRY, now=now)
        if intent.state == IntentState.REQUESTED:
            reason = reason[:1000]
            _move_intent(
                intent,
                {
                    "state": IntentState.REJECTED,
                    "rejected_by": actor,
                    "rejected_at": now,
                    "reject_reason": reason,
                    "finished_at": now,
                    "note": f"Rejected: {reason}",
                },
                actor=actor,
                action=AuditAction.LEG_REJECTED,
                after_extra={"reason": reason},
                message=reason,
            )
            return intent
    raise _refuse(
        actor=actor,
        action=AuditAction.LEG_REJECTED,
        message=f"This request is already {intent.get_state_display().lower()}; "
        "it can no longer be rejected.",
        intent=intent,
    )


def _approver_refusal(intent: SettlementRequest, actor: Any, *, verb: str) -> str:
    if not actor.has_perm(APPROVE_SETTLEMENT):
        return f"You need the Approver role to {verb} settlement."
    if intent.requested_by_id == actor.pk:
        return f"You requested this settlement, so you cannot {verb} it; another Approver must."
    return ""


def leg_approve(*, request_id: int, actor: Any) -> ActionResult:
    """An Approver who is not the requester approves; the leg is then sent to Kraken once.

    A second click, a retry, or a concurrent approval never sends again: only the
    caller that moves the intent from `approved` to `submitting` sends.
    """
    intent = SettlementRequest.objects.select_related("batch").get(pk=request_id)
    refusal = _approver_refusal(intent, actor, verb="approve")
    if refusal:
        raise _refuse(
            actor=actor,
            action=AuditAction.LEG_APPROVED,
            message=refusal,
            intent=intent,
            error=NotAllowedError,
        )
    now = timezone.now()
    refusal = ""
    with transaction.atomic():
        intent = (
            SettlementRequest.objects.select_for_update(of=("self",))
            .select_related("batch", "leg")
            .get(pk=request_id)
        )
        if intent.state == IntentState.REQUESTED:
            if intent.expires_at <= now:
                _expire(intent, actor=SystemActor.EXPIRY, now=now)
                refusal = intent.note
            elif (intent.leg.amount, intent.leg.direction) != (intent.amount, intent.direction):
                _void_against_mirror(intent, actor=actor, now=now)
                refusal = intent.note
            else:
                _move_intent(
                    intent,
                    {"state": IntentState.APPROVED, "approved_by": actor, "approved_at": now},
                    actor=actor,
                    action=AuditAction.LEG_APPROVED,
                    message=f"Approved {_what(intent)}.",
                )
    if refusal:
        raise _refuse(actor=actor, action=AuditAction.LEG_APPROVED, message=refusal, intent=intent)
    if intent.state != IntentState.APPROVED:
        return ActionResult(
            intent=intent,
            message=f"Nothing to do: this request is already {intent.get_state_display().lower()}."
            + (f" {intent.note}" if intent.note else ""),
            level="info",
        )
    return intent_send(request_id=request_id, actor=actor)


def _void_against_mirror(intent: SettlementRequest, *, actor: Any, now: datetime) -> None:
    leg = intent.leg
    remote_like = prime_models.Leg(
        asset=leg.asset,
        amount=leg.amount,
        direction=leg.direction,
        status=leg.status,
        can_settle=leg.can_settle,
    )
    _void(intent, remote_like, actor=actor, now=now)


# --- the one send ---------------------------------------------------------------------------


def intent_send(*, request_id: int, actor: Any) -> ActionResult:
    """Send one approved intent to Kraken, exactly once, and record what came back."""
    now = timezone.now()
    with transaction.atomic():
        intent = (
            SettlementRequest.objects.select_for_update(of=("self",))
            .select_related("batch", "leg")
            .get(pk=request_id)
        )
        if intent.state != IntentState.APPROVED:
            return ActionResult(
                intent=intent,
                message=f"Not sent again: this request is already "
                f"{intent.get_state_display().lower()}.",
                level="info",
            )
        if (intent.leg.amount, intent.leg.direction) != (intent.amount, intent.direction):
            _void_against_mirror(intent, actor=actor, now=now)
            return ActionResult(intent=intent, message=intent.note, level="warning")
        intent.state = IntentState.SUBMITTING
        intent.submitting_at = now
        intent.prior_transfer_id = intent.leg.transfer_id
        intent.save(update_fields=["state", "submitting_at", "prior_transfer_id"])
    # Committed: from here on no one else can claim this intent. No transaction is open.
    prime_batch_id, asset = intent.batch.prime_batch_id, intent.asset
    result: prime_models.SettleResult | None = None
    error: BaseException | None = None
    try:
        result = door.get_prime_client().settle_settlement_batch_asset(prime_batch_id, asset)
    except Exception as exc:  # anything at all: the call may have reached Kraken
        error = exc
    return _record_send(request_id=request_id, actor=actor, result=result, error=error)


def _record_send(
    *,
    request_id: int,
    actor: Any,
    result: prime_models.SettleResult | None,
    error: BaseException | None,
) -> ActionResult:
    now = timezone.now()
    unknown = error is not None and (
        not isinstance(error, prime_errors.PrimeError) or error.outcome_unknown
    )
    if error is not None and not isinstance(error, prime_errors.PrimeError):
        logger.exception("settle call raised an unexpected error", exc_info=error)
    leg_id = SettlementRequest.objects.values_list("leg_id", flat=True).get(pk=request_id)
    with transaction.atomic():
        # Leg before intent: the lock order of _apply_batch.
        Leg.objects.select_for_update().filter(pk=leg_id).first()
        intent = (
            SettlementRequest.objects.select_for_update(of=("self",))
            .select_related("batch", "leg")
            .get(pk=request_id)
        )
        still_ours = intent.state == IntentState.SUBMITTING
        if result is not None:
            changes: dict[str, Any] = {}
            if still_ours:
                changes = {
                    "state": IntentState.SUBMITTED,
                    "transfer_id": result.transfer.id,
                    "submitted_at": now,
                    "note": f"Kraken started transfer {result.transfer.id}.",
                }
                _mirror_leg_after_settle(intent.leg, result)
            _move_intent(
                intent,
                changes,
                actor=actor,
                action=AuditAction.LEG_SUBMITTED,
                endpoint=SETTLE,
                answer=result,
                message=""
                if still_ours
                else "Kraken's answer arrived after the portal had already checked with Kraken.",
            )
            message = (
                f"Approved and sent to Kraken: transfer {result.transfer.id} "
                f"({result.transfer.status}) for {amount_text(intent.amount)} {intent.asset}."
            )
            return ActionResult(intent=intent, message=message)
        assert error is not None
        if unknown:
            note = (
                "Kraken did not answer the settle call (timeout, dropped connection or "
                "server error), so it may have gone through. Nothing will be sent again; "
                "the portal is checking with Kraken."
            )
            action, outcome = AuditAction.LEG_OUTCOME_UNKNOWN, Outcome.UNKNOWN
            new_state = IntentState.OUTCOME_UNKNOWN
        else:
            assert isinstance(error, prime_errors.PrimeError)
            note = describe_settle_refusal(error)
            action, outcome = AuditAction.LEG_SETTLE_FAILED, Outcome.FAILED
            new_state = IntentState.FAILED
        changes = {}
        if still_ours:
            changes = {"state": new_state, "note": note}
            if new_state == IntentState.FAILED:
                changes["finished_at"] = now
        _move_intent(
            intent,
            changes,
            actor=actor,
            action=action,
            outcome=outcome,
            endpoint=SETTLE,
            answer=error if isinstance(error, prime_errors.PrimeError) else repr(error)[:200],
            message=note,
        )
    if not unknown or not still_ours:
        return ActionResult(intent=intent, message=intent.note or note, level="error")
    # Ask Kraken at once what happened; the poller keeps asking if this fails too.
    try:
        batch_refresh(prime_batch_id=intent.batch.prime_batch_id, actor=actor)
    except SettlementError as exc:
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


def intents_send_left_behind(*, actor: Any, older_than: timedelta) -> int:
    """Send intents approved but never claimed (the approver's process stopped in between)."""
    cutoff = timezone.now() - older_than
    ids = list(
        SettlementRequest.objects.filter(
            state=IntentState.APPROVED, approved_at__lte=cutoff
        ).values_list("pk", flat=True)
    )
    for pk in ids:
        intent_send(request_id=pk, actor=actor)
    return len(ids)


def amount_text(amount: Decimal) -> str:
    """A Decimal without exponent or trailing zeros."""
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"
