"""Settlement's kinds of change on the approvals engine: a settlement leg, a batch create.

A leg request is bound to the exact leg: batch, asset, direction and net amount are
its payload (with the leg's transfer id at request time, so that a transfer Kraken
shows afterwards is known to be ours). Executing it is the one settle call
(`SettlePrimeSettlementBatchAsset`); the engine claims the request and commits before
the call, so it is sent at most once, and an unknown outcome is reconciled with
`GetPrimeSettlementBatch` before anything is sent again. The fingerprint is the leg's
amount and direction in the mirror (kept fresh from Kraken by the poller): a leg that
changed at Kraken voids the request. A leg of a batch Kraken has not confirmed waits
(`waits_for`); the poller sends it once the batch is confirmed.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from portal.actors import Actor, SystemActor
from portal.approvals.kinds import (
    ChangeKindSpec,
    JSONValue,
    Payload,
    Reconciled,
    Reconciliation,
)
from portal.approvals.models import ChangeKind, ChangeRequest, RequestState
from portal.audit.models import AuditAction, TargetType
from portal.connection import door
from portal.settlement import messages
from portal.settlement.messages import amount_text, what_text
from portal.settlement.models import Leg, LegStatus
from portal.staff.roles import APPROVE_SETTLEMENT, REQUEST_SETTLEMENT
from primeapi import errors as prime_errors
from primeapi import models as prime_models


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


def split_leg_id(target_id: str) -> tuple[str, str]:
    """`<prime batch id>:<asset>` as its two parts."""
    prime_batch_id, _, asset = target_id.rpartition(":")
    return prime_batch_id, asset


def leg_payload(leg: Leg) -> Payload:
    """The exact leg a request is bound to (the batch is selected with the leg)."""
    return {
        "batch": leg.batch.prime_batch_id,
        "asset": leg.asset,
        "direction": leg.direction,
        "amount": amount_text(leg.amount),
        "amount_exact": format(leg.amount.normalize(), "f"),
        "prior_transfer_id": leg.transfer_id,
    }


def _leg_state(leg: Leg | None) -> JSONValue:
    if leg is None:
        return {"leg": "not listed by Kraken"}
    return {"direction": leg.direction, "amount": format(leg.amount.normalize(), "f")}


def _find_leg(target_id: str) -> Leg | None:
    prime_batch_id, asset = split_leg_id(target_id)
    return (
        Leg.objects.select_related("batch")
        .filter(batch__prime_batch_id=prime_batch_id, asset=asset)
        .first()
    )


class SettlementLegKind(ChangeKindSpec):
    kind = ChangeKind.SETTLEMENT_LEG
    target_type = TargetType.LEG
    request_permission = REQUEST_SETTLEMENT
    approve_permission = APPROVE_SETTLEMENT
    prime_endpoint = "SettlePrimeSettlementBatchAsset"

    def request_ttl(self) -> timedelta:
        """A leg request waits `SETTLEMENT_REQUEST_TTL_SECONDS` for an Approver."""
        return timedelta(seconds=settings.SETTLEMENT_REQUEST_TTL_SECONDS)

    def validate(self, *, payload: Payload, target_id: str) -> None:
        leg = _find_leg(target_id)
        if leg is None:
            raise ValueError(messages.VOID_LEG_GONE + ".")
        if (payload.get("batch"), payload.get("asset")) != split_leg_id(target_id):
            raise ValueError("The request does not name this leg.")

    def fingerprint(self, *, target_id: str) -> JSONValue:
        return _leg_state(_find_leg(target_id))

    def waits_for(self, *, payload: Payload, target_id: str) -> str:
        leg = _find_leg(target_id)
        if leg is not None and not leg.batch.confirmed:
            return messages.WAITS_FOR_CONFIRMATION
        return ""

    def execute(self, *, payload: Payload, target_id: str, actor: Actor) -> door.Attempt[object]:
        prime_batch_id, asset = split_leg_id(target_id)
        attempt: door.Attempt[object] = door.attempt_prime(
            lambda client: client.settle_settlement_batch_asset(prime_batch_id, asset),
            describe=describe_settle_refusal,
        )
        return attempt

    def record(self, *, payload: Payload, target_id: str, value: object, actor: Actor) -> JSONValue:
        """Mirror the leg as Kraken answered the settle call, and audit it on the leg."""
        from portal.settlement.services.common import audit_leg

        assert isinstance(value, prime_models.SettleResult)
        prime_batch_id, asset = split_leg_id(target_id)
        leg = (
            Leg.objects.select_for_update()
            .filter(batch__prime_batch_id=prime_batch_id, asset=asset)
            .first()
        )
        if leg is not None:
            leg.transfer_id = value.transfer.id
            leg.transfer_status = value.transfer.status
            if value.leg is not None:
                leg.status = value.leg.status
                leg.can_settle = value.leg.can_settle
            else:
                leg.status = LegStatus.SETTLING
                leg.can_settle = False
            leg.save(update_fields=["transfer_id", "transfer_status", "status", "can_settle"])
        note = messages.TRANSFER_STARTED.format(transfer_id=value.transfer.id)
        audit_leg(
            actor=actor,
            action=AuditAction.LEG_SUBMITTED,
            prime_batch_id=prime_batch_id,
            asset=asset,
            after={"transfer_id": value.transfer.id, "transfer_status": value.transfer.status},
            endpoint=self.prime_endpoint,
            answer=value,
            message=note,
        )
        return {
            "transfer_id": value.transfer.id,
            "transfer_status": value.transfer.status,
            "note": note,
        }

    def reconcile(self, *, payload: Payload, target_id: str) -> Reconciliation:
        """Ask Kraken for the batch: a new transfer on the leg means the settle went through."""
        from portal.settlement.services.mirror import batch_apply

        prime_batch_id, asset = split_leg_id(target_id)
        fetched = door.attempt_prime(lambda client: client.get_settlement_batch(prime_batch_id))
        if not fetched.done:
            return Reconciliation(Reconciled.STILL_UNKNOWN)
        remote = fetched.result()
        batch_apply(remote=remote, actor=SystemActor.POLLER)
        remote_leg = next((leg for leg in remote.legs if leg.asset == asset), None)
        transfer = remote_leg.latest_transfer if remote_leg else None
        if transfer is not None and transfer.id != payload.get("prior_transfer_id"):
            found = messages.RECONCILED_FOUND.format(
                transfer_id=transfer.id, status=transfer.status
            )
            return Reconciliation(
                Reconciled.APPLIED,
                {
                    "transfer_id": transfer.id,
                    "transfer_status": transfer.status,
                    "note": messages.RECONCILED_RUNNING.format(found=found),
                },
            )
        if self._within_grace(target_id):
            return Reconciliation(Reconciled.STILL_UNKNOWN, {"note": messages.RECONCILE_WAITING})
        status = remote_leg.status if remote_leg else "missing"
        return Reconciliation(
            Reconciled.NOT_APPLIED, {"note": messages.RECONCILED_NOT_SENT.format(status=status)}
        )

    @staticmethod
    def _within_grace(target_id: str) -> bool:
        """True while the unanswered settle call may still be on its way at Kraken."""
        from portal.settlement.services.common import reconcile_grace

        change = (
            ChangeRequest.objects.filter(
                kind=ChangeKind.SETTLEMENT_LEG, target_id=target_id, state=RequestState.EXECUTING
            )
            .order_by("-pk")
            .first()
        )
        since = change.executed_at if change is not None else None
        return since is not None and timezone.now() - since < reconcile_grace()

    def describe(
        self, *, payload: Payload, target_id: str, fingerprint: JSONValue
    ) -> tuple[JSONValue, JSONValue]:
        asset = str(payload.get("asset", ""))
        amount = str(payload.get("amount_exact", payload.get("amount", "")))
        before: JSONValue = {"leg": target_id, "status": "unsettled"}
        after: JSONValue = {
            "leg": target_id,
            "settle": what_text(str(payload.get("direction", "")), amount, asset),
        }
        return before, after


class BatchCreateKind(ChangeKindSpec):
    """A new batch at Kraken of one asset kind (runs at once under the default policy)."""

    kind = ChangeKind.BATCH_CREATE
    target_type = TargetType.BATCH
    request_permission = REQUEST_SETTLEMENT
    approve_permission = APPROVE_SETTLEMENT
    prime_endpoint = "CreatePrimeSettlementBatch"

    def validate(self, *, payload: Payload, target_id: str) -> None:
        if payload.get("asset_kind") != target_id or not target_id:
            raise ValueError("The request does not name an asset kind.")

    def execute(self, *, payload: Payload, target_id: str, actor: Actor) -> door.Attempt[object]:
        attempt: door.Attempt[object] = door.attempt_prime(
            lambda client: client.create_settlement_batch(target_id)
        )
        return attempt

    def record(self, *, payload: Payload, target_id: str, value: object, actor: Actor) -> JSONValue:
        from portal.settlement.services.mirror import apply_batch, audit_batch_created

        assert isinstance(value, prime_models.SettlementBatch)
        apply_batch(remote=value, actor=actor, now=timezone.now(), created=True)
        audit_batch_created(value, actor=actor)
        return {"batch": value.id, "trade_count": value.trade_count, "legs": len(value.legs)}

    def describe(
        self, *, payload: Payload, target_id: str, fingerprint: JSONValue
    ) -> tuple[JSONValue, JSONValue]:
        return None, {"create batch": target_id.replace("_", " ")}
