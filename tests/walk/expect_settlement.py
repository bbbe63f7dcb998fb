"""Permission walk entries for the settlement app."""

from __future__ import annotations

import uuid
from datetime import timedelta

from tests.walk.cases import ALL_ROLES, Case

VIEWERS = ALL_ROLES
OPERATOR = frozenset({"Operator"})
APPROVER = frozenset({"Approver"})
OPERATOR_OR_APPROVER = frozenset({"Operator", "Approver"})


def _batch(sandbox=None):
    from tests.settlement.conftest import mirror_batch

    return mirror_batch(prime_batch_id=f"B_{uuid.uuid4().hex[:8].upper()}")


def _batch_kwargs(sandbox) -> dict:
    return {"prime_batch_id": _batch().prime_batch_id}


def _leg_kwargs(sandbox) -> dict:
    return {"prime_batch_id": _batch().prime_batch_id, "asset": "BTC"}


def _intent_kwargs(sandbox) -> dict:
    from django.utils import timezone

    from portal.settlement.models import Leg, SettlementIntent
    from tests.conftest import make_staff

    batch = _batch()
    leg = Leg.objects.get(batch=batch, asset="BTC")
    requester = make_staff(f"walk-requester-{uuid.uuid4().hex[:6]}", "Operator")
    now = timezone.now()
    intent = SettlementIntent.objects.create(
        batch=batch,
        leg=leg,
        asset=leg.asset,
        amount=leg.amount,
        direction=leg.direction,
        requested_by=requester,
        requested_at=now,
        expires_at=now + timedelta(hours=1),
    )
    return {"intent_id": intent.pk}


CASES = [
    Case("settlement:batch-list", allowed=VIEWERS),
    Case("settlement:batch-create", allowed=OPERATOR),
    Case("settlement:batch-create", allowed=OPERATOR, method="POST"),
    Case("settlement:batch-detail", allowed=VIEWERS, kwargs=_batch_kwargs),
    Case("settlement:batch-live", allowed=VIEWERS, kwargs=_batch_kwargs, htmx=True),
    Case(
        "settlement:batch-refresh",
        allowed=OPERATOR_OR_APPROVER,
        method="POST",
        kwargs=_batch_kwargs,
    ),
    Case("settlement:leg-request", allowed=OPERATOR, method="POST", kwargs=_leg_kwargs),
    Case("settlement:intent-approve", allowed=APPROVER, method="POST", kwargs=_intent_kwargs),
    Case(
        "settlement:intent-reject",
        allowed=APPROVER,
        method="POST",
        kwargs=_intent_kwargs,
        data={"reason": "walk"},
    ),
]
