"""Permission walk entries for the settlement app."""

from __future__ import annotations

import uuid

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


def _request_kwargs(sandbox) -> dict:
    from portal.settlement.models import Leg
    from tests.conftest import make_staff
    from tests.settlement.conftest import open_request

    batch = _batch()
    leg = Leg.objects.select_related("batch").get(batch=batch, asset="BTC")
    requester = make_staff(f"walk-requester-{uuid.uuid4().hex[:6]}", "Operator")
    return {"change_id": open_request(leg, requester).pk}


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
    Case("settlement:legs-request-all", allowed=OPERATOR, method="POST", kwargs=_batch_kwargs),
    Case("settlement:legs-approve", allowed=APPROVER, method="POST", kwargs=_batch_kwargs),
    Case(
        "settlement:request-reject",
        allowed=APPROVER,
        method="POST",
        kwargs=_request_kwargs,
        data={"reason": "walk"},
    ),
]
