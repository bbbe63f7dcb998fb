"""Leg requests on the approvals engine: the four-eyes rules, on any database."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.actors import SystemActor
from portal.approvals import messages as approvals_messages
from portal.approvals.models import ChangeKind, ChangeRequest, RequestState
from portal.audit.models import AuditAction, AuditEvent, Outcome
from portal.settlement import messages, services
from portal.settlement.models import Leg
from tests.settlement.conftest import approve, mirror_batch, open_request, request_leg, said

pytestmark = pytest.mark.django_db


def _leg(batch, asset="BTC") -> Leg:
    return Leg.objects.select_related("batch").get(batch=batch, asset=asset)


def test_an_operator_requests_a_leg_for_the_exact_amount_and_direction(operator):
    batch = mirror_batch()
    change = request_leg(_leg(batch), operator)
    assert change.state == RequestState.PENDING
    assert change.kind == ChangeKind.SETTLEMENT_LEG
    payload = json.loads(change.payload)
    assert (payload["asset"], payload["direction"], payload["amount_exact"]) == (
        "BTC",
        "incoming",
        "1.5",
    )
    assert payload["batch"] == batch.prime_batch_id
    assert change.requested_by == operator
    assert change.expires_at > timezone.now()
    event = AuditEvent.objects.get(action=AuditAction.CHANGE_REQUESTED)
    assert event.after["target"] == f"leg:{batch.prime_batch_id}:BTC"
    assert event.actor_label == operator.username


def test_the_request_expires_after_the_configured_time(operator, settings):
    settings.SETTLEMENT_REQUEST_TTL_SECONDS = 90
    change = request_leg(_leg(mirror_batch()), operator)
    ttl = change.expires_at - change.created_at
    assert ttl == timedelta(seconds=90)


def test_a_second_request_for_the_same_leg_is_refused_while_one_is_open(operator):
    leg = _leg(mirror_batch())
    request_leg(leg, operator)
    with pytest.raises(services.SettlementError, match=said(messages.LEG_HAS_OPEN_INTENT)):
        request_leg(leg, operator)
    assert ChangeRequest.objects.filter(target_id=leg.audit_id).count() == 1
    refused = AuditEvent.objects.get(action=AuditAction.LEG_REQUESTED, outcome=Outcome.REFUSED)
    assert "open request" in refused.message


def test_only_operators_may_request(approver, viewer):
    leg = _leg(mirror_batch())
    for person in (approver, viewer):
        with pytest.raises(services.NotAllowedError):
            request_leg(leg, person)
    assert not ChangeRequest.objects.exists()
    assert AuditEvent.objects.filter(outcome=Outcome.REFUSED).count() == 2


def test_a_settled_or_unsettleable_leg_cannot_be_requested(operator):
    batch = mirror_batch()
    Leg.objects.filter(batch=batch, asset="BTC").update(status="settled")
    Leg.objects.filter(batch=batch, asset="USD").update(can_settle=False)
    with pytest.raises(services.SettlementError, match=said(messages.LEG_NOT_UNSETTLED)):
        request_leg(_leg(batch, "BTC"), operator)
    with pytest.raises(services.SettlementError, match=said(messages.LEG_CANNOT_SETTLE)):
        request_leg(_leg(batch, "USD"), operator)


def test_a_completed_batch_cannot_be_requested(operator):
    batch = mirror_batch(status="completed")
    Leg.objects.filter(batch=batch).update(status="unsettled", can_settle=True)
    with pytest.raises(services.SettlementError, match=said(messages.BATCH_FINAL)):
        request_leg(_leg(batch), operator)


def test_the_requester_cannot_approve_their_own_request(db):
    from tests.conftest import make_staff

    both = make_staff("both", "Operator", "Approver")
    change = request_leg(_leg(mirror_batch()), both)
    (outcome,) = approve([change.pk], both)
    assert outcome.level == "error" and outcome.message == approvals_messages.OWN_REQUEST
    change.refresh_from_db()
    assert change.state == RequestState.PENDING


def test_the_requester_cannot_reject_their_own_request_either(db):
    from tests.conftest import make_staff

    both = make_staff("both", "Operator", "Approver")
    change = request_leg(_leg(mirror_batch()), both)
    with pytest.raises(services.NotAllowedError):
        services.leg_reject(change_id=change.pk, actor=both, reason="no")
    change.refresh_from_db()
    assert change.state == RequestState.PENDING


def test_an_operator_cannot_approve(operator, admin):
    change = request_leg(_leg(mirror_batch()), operator)
    (outcome,) = approve([change.pk], admin)
    assert outcome.message == approvals_messages.NOT_ALLOWED_TO_APPROVE
    change.refresh_from_db()
    assert change.state == RequestState.PENDING


def test_an_approver_rejects_with_a_reason(operator, approver):
    change = request_leg(_leg(mirror_batch()), operator)
    with pytest.raises(services.SettlementError, match=said(messages.REASON_REQUIRED)):
        services.leg_reject(change_id=change.pk, actor=approver, reason="   ")
    rejected = services.leg_reject(change_id=change.pk, actor=approver, reason="Wrong amount")
    assert rejected.change.state == RequestState.REJECTED
    vote = rejected.change.votes.get()
    assert (vote.voter, vote.comment) == (approver, "Wrong amount")
    event = AuditEvent.objects.get(action=AuditAction.CHANGE_VOTE_REJECTED)
    assert event.message == "Wrong amount"
    # Rejected is final: the leg can be requested again.
    batch = Leg.objects.get(batch__prime_batch_id=change.target_id.split(":")[0], asset="BTC")
    assert request_leg(_leg(batch.batch), operator).state == RequestState.PENDING


def test_an_expired_request_cannot_be_approved(operator, approver):
    change = request_leg(_leg(mirror_batch()), operator)
    ChangeRequest.objects.filter(pk=change.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    (outcome,) = approve([change.pk], approver)
    assert outcome.message == approvals_messages.EXPIRED
    change.refresh_from_db()
    assert change.state == RequestState.EXPIRED
    assert AuditEvent.objects.filter(action=AuditAction.CHANGE_EXPIRED).count() == 1


def test_stale_requests_expire_and_free_the_leg(operator):
    from portal.approvals.services import change_expire_due

    leg = _leg(mirror_batch())
    change = request_leg(leg, operator)
    ChangeRequest.objects.filter(pk=change.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert change_expire_due() == 1
    assert change_expire_due() == 0
    change.refresh_from_db()
    assert change.state == RequestState.EXPIRED
    assert request_leg(leg, operator).state == RequestState.PENDING


def test_a_request_whose_leg_changed_in_the_mirror_is_void_at_approval(operator, approver):
    leg = _leg(mirror_batch())
    change = request_leg(leg, operator)
    Leg.objects.filter(pk=leg.pk).update(amount="1.6")
    (outcome,) = approve([change.pk], approver)
    assert outcome.level == "error"
    change.refresh_from_db()
    assert change.state == RequestState.VOIDED
    assert AuditEvent.objects.filter(action=AuditAction.CHANGE_VOIDED).count() == 1


def test_the_database_allows_one_open_request_per_leg(operator):
    leg = _leg(mirror_batch())
    open_request(leg, operator)
    with pytest.raises(IntegrityError), transaction.atomic():
        open_request(leg, operator, state=RequestState.OUTCOME_UNKNOWN)


@pytest.mark.parametrize(
    "closed",
    [
        RequestState.DONE,
        RequestState.REJECTED,
        RequestState.EXPIRED,
        RequestState.VOIDED,
        RequestState.FAILED,
        RequestState.WITHDRAWN,
    ],
)
def test_closed_requests_do_not_hold_the_leg(operator, closed):
    leg = _leg(mirror_batch())
    open_request(leg, operator, state=closed)
    open_request(leg, operator, state=closed)
    assert open_request(leg, operator).state == RequestState.PENDING


def test_the_constraint_covers_exactly_the_open_states():
    constraint = next(
        c for c in ChangeRequest._meta.constraints if c.name == "approvals_one_open_leg_request"
    )
    children = dict(constraint.condition.children)
    assert children["kind"] == ChangeKind.SETTLEMENT_LEG
    assert sorted(children["state__in"]) == sorted(str(s) for s in services.legs.HOLDING_STATES)


def _remote(batch, legs, *, status="unsettled"):
    """Kraken's answer for `batch`, as the client parses it."""
    from decimal import Decimal

    from primeapi.models import Leg as RemoteLeg
    from primeapi.models import SettlementBatch

    return SettlementBatch(
        id=batch.prime_batch_id,
        status=status,
        confirmed=True,
        created_at=batch.created_at,
        updated_at=timezone.now(),
        trade_count=2,
        asset_kind="currency",
        legs=tuple(
            RemoteLeg(
                asset=asset,
                amount=Decimal(amount),
                direction=direction,
                status="unsettled",
                can_settle=True,
            )
            for asset, direction, amount in legs
        ),
        trade_ids=tuple(batch.trade_ids),
    )


def test_a_leg_changed_at_kraken_voids_its_unsent_requests(operator, approver):
    batch = mirror_batch()
    btc = request_leg(_leg(batch, "BTC"), operator)
    usd = request_leg(_leg(batch, "USD"), operator)
    ChangeRequest.objects.filter(pk=usd.pk).update(state=RequestState.APPROVED)
    remote = _remote(batch, [("BTC", "incoming", "1.5000"), ("USD", "incoming", "45000")])

    summary = services.batch_apply(remote=remote, actor=SystemActor.POLLER)

    assert summary.voided == 1
    btc.refresh_from_db()
    usd.refresh_from_db()
    assert btc.state == RequestState.PENDING  # same amount, written differently
    assert usd.state == RequestState.VOIDED
    assert "outgoing 45,000.00 USD" in usd.void_reason
    assert "incoming 45,000.00 USD" in usd.void_reason
    voided = AuditEvent.objects.get(action=AuditAction.CHANGE_VOIDED)
    assert voided.actor_label == "system:prime_poll"
    assert voided.target_id == str(usd.pk)
    changed = AuditEvent.objects.get(action=AuditAction.LEG_STATUS_CHANGED)
    assert changed.before["direction"] == "outgoing" and changed.after["direction"] == "incoming"
    # The void request no longer holds the leg.
    again = request_leg(_leg(batch, "USD"), operator)
    assert json.loads(again.payload)["direction"] == "incoming"


def test_a_leg_gone_at_kraken_voids_its_request(operator):
    batch = mirror_batch()
    change = request_leg(_leg(batch, "USD"), operator)
    services.batch_apply(
        remote=_remote(batch, [("BTC", "incoming", "1.5")]), actor=SystemActor.POLLER
    )
    change.refresh_from_db()
    assert change.state == RequestState.VOIDED
    assert messages.VOID_LEG_GONE in change.void_reason


def test_a_status_change_at_kraken_is_audited_once(operator):
    batch = mirror_batch()
    remote = _remote(batch, [("BTC", "incoming", "1.5"), ("USD", "outgoing", "45000")])
    services.batch_apply(remote=remote, actor=SystemActor.POLLER)
    assert not AuditEvent.objects.exists()  # nothing changed
    changed = _remote(
        batch,
        [("BTC", "incoming", "1.5"), ("USD", "outgoing", "45000")],
        status="partially_settled",
    )
    services.batch_apply(remote=changed, actor=SystemActor.POLLER)
    services.batch_apply(remote=changed, actor=SystemActor.POLLER)
    event = AuditEvent.objects.get(action=AuditAction.BATCH_STATUS_CHANGED)
    assert event.before["status"] == "unsettled" and event.after["status"] == "partially_settled"
    batch.refresh_from_db()
    assert batch.status == "partially_settled" and batch.last_refreshed_at is not None
