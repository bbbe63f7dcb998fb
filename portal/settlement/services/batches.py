"""Batches: create one at Kraken, and refresh one from Kraken (which also reconciles)."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from portal.actors import Actor, SystemActor
from portal.approvals import services as approvals
from portal.approvals.models import ChangeKind
from portal.approvals.policy import needs_approval
from portal.approvals.services import ChangeOutcome
from portal.audit.models import AuditAction, Outcome, TargetType
from portal.audit.services import audit_record
from portal.connection import door
from portal.settlement import messages
from portal.settlement.models import Batch, BatchStatus
from portal.settlement.services.common import (
    CREATE_BATCH,
    ActiveBatchExistsError,
    ApplySummary,
    NotAllowedError,
    SettlementError,
    kraken_answer,
)
from portal.settlement.services.mirror import apply_batch, audit_batch_created, batch_apply
from portal.staff.models import Staff
from portal.staff.roles import REQUEST_SETTLEMENT
from primeapi import errors as prime_errors
from primeapi import models as prime_models

logger = logging.getLogger("portal.settlement")

ACTIVE_STATUSES = (
    BatchStatus.UNSETTLED.value,
    BatchStatus.PARTIALLY_SETTLED.value,
    BatchStatus.SETTLED.value,
)


def batch_refresh(*, prime_batch_id: str, actor: Actor) -> ApplySummary:
    """Ask Kraken for one batch (GetPrimeSettlementBatch) and bring the mirror up to date."""
    attempt = door.attempt_prime(lambda client: client.get_settlement_batch(prime_batch_id))
    if not attempt.done:
        raise SettlementError(messages.CHECK_FAILED + attempt.message)
    return batch_apply(remote=attempt.result(), actor=actor)


def batch_create(*, asset_kind: str, actor: Actor) -> Batch:
    """Ask Kraken for a new batch of `asset_kind` and mirror it."""
    if not isinstance(actor, SystemActor) and not actor.has_perm(REQUEST_SETTLEMENT):
        audit_record(
            actor=actor,
            action=AuditAction.BATCH_CREATED,
            target_type=TargetType.BATCH,
            outcome=Outcome.REFUSED,
            message="missing permission to create batches",
        )
        raise NotAllowedError(messages.NEED_OPERATOR_TO_CREATE)
    attempt = door.attempt_prime(lambda client: client.create_settlement_batch(asset_kind))
    if not attempt.done:
        assert attempt.error is not None
        raise _creation_refused(asset_kind=asset_kind, actor=actor, attempt=attempt)
    remote = attempt.result()
    with transaction.atomic():
        summary = apply_batch(remote=remote, actor=actor, now=timezone.now(), created=True)
        audit_batch_created(remote, actor=actor)
    return summary.batch


def batch_create_request(*, asset_kind: str, actor: Staff) -> Batch | ChangeOutcome:
    """Create a batch now, or, if the policy puts batch creation under approval, request it."""
    if actor.has_perm(REQUEST_SETTLEMENT) and needs_approval(kind=ChangeKind.BATCH_CREATE):
        try:
            return approvals.change_request_create(
                kind=ChangeKind.BATCH_CREATE,
                target_id=asset_kind,
                payload={"asset_kind": asset_kind},
                actor=actor,
                summary=f"Create a {asset_kind.replace('_', ' ')} settlement batch",
            )
        except approvals.ApprovalError as exc:
            raise SettlementError(exc.message) from exc
    return batch_create(asset_kind=asset_kind, actor=actor)


def _creation_refused(
    *, asset_kind: str, actor: Actor, attempt: door.Attempt[prime_models.SettlementBatch]
) -> SettlementError:
    """Audit a batch Kraken did not make, and the error that tells the person why."""
    error = attempt.error
    assert error is not None
    kind = asset_kind.replace("_", " ")
    detail = (getattr(error, "detail", "") or "").lower()
    outcome = Outcome.FAILED
    message = attempt.message
    refusal: SettlementError | None = None
    if attempt.outcome_unknown:
        outcome, message = Outcome.UNKNOWN, messages.CREATE_UNANSWERED
    elif isinstance(error, prime_errors.InvalidArgumentsError):
        outcome = Outcome.REFUSED
        if "active batch exists" in detail:
            existing = _find_active_batch(asset_kind=asset_kind, actor=actor)
            known = f" ({existing.prime_batch_id})" if existing else ""
            message = messages.ACTIVE_BATCH_EXISTS.format(kind=kind, known=known)
            refusal = ActiveBatchExistsError(message, batch=existing)
        elif "no unsettled trades" in detail:
            message = messages.NO_UNSETTLED_TRADES.format(kind=kind)
    audit_record(
        actor=actor,
        action=AuditAction.BATCH_CREATED,
        target_type=TargetType.BATCH,
        outcome=outcome,
        after={"asset_kind": asset_kind},
        prime_endpoint=CREATE_BATCH,
        prime_response=kraken_answer(error),
        message=message,
    )
    return refusal or SettlementError(message)


def _find_active_batch(*, asset_kind: str, actor: Actor) -> Batch | None:
    """The active batch of a kind: from the mirror, else from ListPrimeSettlementBatches."""
    known = Batch.objects.filter(asset_kind=asset_kind, is_final=False).first()
    if known is not None:
        return known
    listed = door.attempt_prime(
        lambda client: client.list_settlement_batches(statuses=list(ACTIVE_STATUSES), limit=50)
    )
    if not listed.done:
        logger.warning("could not list the active %s batches at Kraken", asset_kind)
        return None
    found = next((b for b in listed.result().batches if b.asset_kind == asset_kind), None)
    if found is None:
        return None
    fetched = door.attempt_prime(lambda client: client.get_settlement_batch(found.id))
    if not fetched.done:
        logger.warning("could not look up the active %s batch at Kraken", asset_kind)
        return None
    return batch_apply(remote=fetched.result(), actor=actor).batch
