"""What every settlement service shares: its errors, results and the leg's audit event.

Row locks are taken in one order everywhere in settlement (batch, then legs, then
the legs' open change requests; the audit chain head last, by `audit_record`), so
a poller refresh and a
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
from portal.settlement.models import Batch, leg_audit_id

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
class ApplySummary:
    """What one mirror update changed."""

    batch: Batch
    changes: int = 0
    voided: int = 0
    settled: int = 0


def reconcile_grace() -> timedelta:
    """How long a missing transfer may still be "on its way" at Kraken after a settle call."""
    return timedelta(seconds=settings.SETTLEMENT_RECONCILE_GRACE_SECONDS)


def kraken_answer(value: object) -> object:
    """Kraken's answer (a result or a failure) as plain data for the audit trail."""
    if isinstance(value, BaseException):
        return door.error_answer(value)
    return door.audit_json(value)


def audit_leg(
    *,
    actor: Actor,
    action: AuditAction,
    prime_batch_id: str,
    asset: str,
    outcome: Outcome = Outcome.SUCCEEDED,
    before: object = None,
    after: object = None,
    endpoint: str = "",
    answer: object = None,
    message: str = "",
) -> None:
    """Append one event about a leg (named by its batch id and asset)."""
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


def refuse(
    *,
    actor: Actor,
    action: AuditAction,
    message: str,
    prime_batch_id: str,
    asset: str,
    error: type[SettlementError] = SettlementError,
) -> SettlementError:
    """Audit a refused attempt on a leg (in its own transaction) and return the error to raise."""
    audit_leg(
        actor=actor,
        action=action,
        prime_batch_id=prime_batch_id,
        asset=asset,
        outcome=Outcome.REFUSED,
        message=message,
    )
    return error(message)
