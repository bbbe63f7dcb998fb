"""What every settlement service shares: its errors and results, and how an intent moves.

Row locks are taken in one order everywhere in settlement (batch, then legs, then
intents; the audit chain head last, by `audit_record`), so a poller refresh and a
sender recording Kraken's answer cannot deadlock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings

from portal.actors import Actor
from portal.audit.models import AuditAction, Outcome, TargetType
from portal.audit.services import audit_record
from portal.connection import door
from portal.settlement.models import Batch, SettlementIntent, leg_audit_id

SETTLE = "SettlePrimeSettlementBatchAsset"
GET_BATCH = "GetPrimeSettlementBatch"
CREATE_BATCH = "CreatePrimeSettlementBatch"
LIST_BATCHES = "ListPrimeSettlementBatches"

JsonDict = dict[str, object]


class SettlementError(Exception):
    """The portal or Kraken refused; `str()` is the message for the person."""


class NotAllowedError(SettlementError):
    """The person may not do this at all (role, or deciding their own intent)."""


class ActiveBatchExistsError(SettlementError):
    """Kraken already has an active batch of this kind; `batch` is it, when the portal knows it."""

    def __init__(self, message: str, *, batch: Batch | None) -> None:
        super().__init__(message)
        self.batch = batch


@dataclass(frozen=True)
class ActionResult:
    """What an intent action did, in words for the person (`level` is a messages tag)."""

    intent: SettlementIntent | None
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


def intent_ttl() -> timedelta:
    """How long a requested intent waits for an Approver."""
    return timedelta(seconds=settings.SETTLEMENT_REQUEST_TTL_SECONDS)


def reconcile_grace() -> timedelta:
    """How long a missing transfer may still be "on its way" at Kraken after a settle call."""
    return timedelta(seconds=settings.SETTLEMENT_RECONCILE_GRACE_SECONDS)


def submitting_stale_after() -> timedelta:
    """A `submitting` row older than this was left by a process that stopped mid-call."""
    return timedelta(seconds=settings.SETTLEMENT_SUBMITTING_STALE_SECONDS)


def kraken_answer(value: object) -> object:
    """Kraken's answer (a result or a failure) as plain data for the audit trail."""
    if isinstance(value, BaseException):
        return door.error_answer(value)
    return door.audit_json(value)


def intent_view(intent: SettlementIntent) -> JsonDict:
    """An intent as the audit trail's before/after shows it."""
    # The key stays "request": events written before the rename read the same way.
    return {
        "request": intent.pk,
        "state": intent.state,
        "asset": intent.asset,
        "amount": intent.amount,
        "direction": intent.direction,
        "transfer_id": intent.transfer_id,
    }


def audit_leg(
    *,
    actor: Actor,
    action: AuditAction,
    intent: SettlementIntent | None = None,
    prime_batch_id: str = "",
    asset: str = "",
    outcome: Outcome = Outcome.SUCCEEDED,
    before: object = None,
    after: object = None,
    endpoint: str = "",
    answer: object = None,
    message: str = "",
) -> None:
    """Append one event about a leg (named by `intent`, or by batch id and asset)."""
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
        prime_response=kraken_answer(answer),
        message=message,
    )


def move_intent(
    intent: SettlementIntent,
    changes: JsonDict,
    *,
    actor: Actor,
    action: AuditAction,
    message: str,
    outcome: Outcome = Outcome.SUCCEEDED,
    endpoint: str = "",
    answer: object = None,
    after_extra: JsonDict | None = None,
) -> None:
    """Set `changes` on the intent, save just those fields, and audit before/after.

    Call inside `transaction.atomic()` with the intent locked. With no changes the
    intent is left as it is and only the audit event is written.
    """
    before = intent_view(intent)
    for name, value in changes.items():
        setattr(intent, name, value)
    if changes:
        intent.save(update_fields=list(changes))
    audit_leg(
        actor=actor,
        action=action,
        intent=intent,
        outcome=outcome,
        before=before,
        after=intent_view(intent) | (after_extra or {}),
        endpoint=endpoint,
        answer=answer,
        message=message,
    )


def refuse(
    *,
    actor: Actor,
    action: AuditAction,
    message: str,
    intent: SettlementIntent | None = None,
    prime_batch_id: str = "",
    asset: str = "",
    error: type[SettlementError] = SettlementError,
) -> SettlementError:
    """Audit a refused attempt (in its own transaction) and return the error to raise."""
    audit_leg(
        actor=actor,
        action=action,
        intent=intent,
        prime_batch_id=prime_batch_id,
        asset=asset,
        outcome=Outcome.REFUSED,
        after=intent_view(intent) if intent is not None else None,
        message=message,
    )
    return error(message)
