"""Requests, approvals and rejections: the four-eyes rules, on any database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.actors import SystemActor
from portal.audit.models import AuditAction, AuditEvent, Outcome
from portal.settlement import messages, services
from portal.settlement.models import OPEN_STATES, IntentState, Leg, SettlementIntent
from tests.settlement.conftest import mirror_batch, open_intent, said

pytestmark = pytest.mark.django_db


def _leg(batch, asset="BTC") -> Leg:
    return Leg.objects.select_related("batch").get(batch=batch, asset=asset)


def test_an_operator_requests_a_leg_for_the_exact_amount_and_direction(operator):
    batch = mirror_batch()
    intent = services.intent_request(leg=_leg(batch), actor=operator)
    assert intent.state == IntentState.REQUESTED
    assert (intent.asset, intent.direction, intent.amount) == ("BTC", "incoming", 1.5)
    assert intent.requested_by == operator
    assert intent.expires_at > timezone.now()
    event = AuditEvent.objects.get(action=AuditAction.LEG_REQUESTED)
    assert event.target_id == f"{batch.prime_batch_id}:BTC"
    assert event.actor_label == operator.username


def test_the_request_expires_after_the_configured_time(operator, settings):
    settings.SETTLEMENT_REQUEST_TTL_SECONDS = 90
    intent = services.intent_request(leg=_leg(mirror_batch()), actor=operator)
    ttl = intent.expires_at - intent.requested_at
    assert ttl == timedelta(seconds=90)


def test_a_second_request_for_the_same_leg_is_refused_while_one_is_open(operator):
    leg = _leg(mirror_batch())
    services.intent_request(leg=leg, actor=operator)
    with pytest.raises(services.SettlementError, match=said(messages.LEG_HAS_OPEN_INTENT)):
        services.intent_request(leg=leg, actor=operator)
    assert SettlementIntent.objects.filter(leg=leg).count() == 1
    refused = AuditEvent.objects.get(action=AuditAction.LEG_REQUESTED, outcome=Outcome.REFUSED)
    assert "open request" in refused.message


def test_only_operators_may_request(approver, viewer):
    leg = _leg(mirror_batch())
    for person in (approver, viewer):
        with pytest.raises(services.NotAllowedError):
            services.intent_request(leg=leg, actor=person)
    assert not SettlementIntent.objects.exists()
    assert AuditEvent.objects.filter(outcome=Outcome.REFUSED).count() == 2


def test_a_settled_or_unsettleable_leg_cannot_be_requested(operator):
    batch = mirror_batch()
    Leg.objects.filter(batch=batch, asset="BTC").update(status="settling", can_settle=False)
    Leg.objects.filter(batch=batch, asset="USD").update(can_settle=False)
    with pytest.raises(services.SettlementError, match=said(messages.LEG_NOT_UNSETTLED)):
        services.intent_request(leg=_leg(batch, "BTC"), actor=operator)
    with pytest.raises(services.SettlementError, match=said(messages.LEG_CANNOT_SETTLE)):
        services.intent_request(leg=_leg(batch, "USD"), actor=operator)


def test_a_completed_batch_cannot_be_requested(operator):
    batch = mirror_batch(status="completed")
    Leg.objects.filter(batch=batch).update(status="unsettled", can_settle=True)
    with pytest.raises(services.SettlementError, match=said(messages.BATCH_FINAL)):
        services.intent_request(leg=_leg(batch), actor=operator)


def test_the_requester_cannot_approve_their_own_request(db):
    from tests.conftest import make_staff

    both = make_staff("olga.both", "Operator", "Approver")
    intent = services.intent_request(leg=_leg(mirror_batch()), actor=both)
    with pytest.raises(services.NotAllowedError, match=said(messages.OWN_INTENT)):
        services.intent_approve(intent_id=intent.pk, actor=both)
    intent.refresh_from_db()
    assert intent.state == IntentState.REQUESTED
    refused = AuditEvent.objects.get(action=AuditAction.LEG_APPROVED)
    assert refused.outcome == Outcome.REFUSED
    assert refused.actor_label == "olga.both"


def test_the_requester_cannot_reject_their_own_request_either(db):
    from tests.conftest import make_staff

    both = make_staff("olga.both", "Operator", "Approver")
    intent = services.intent_request(leg=_leg(mirror_batch()), actor=both)
    with pytest.raises(services.NotAllowedError):
        services.intent_reject(intent_id=intent.pk, actor=both, reason="no")
    intent.refresh_from_db()
    assert intent.state == IntentState.REQUESTED


def test_an_operator_cannot_approve(operator, admin):
    intent = services.intent_request(leg=_leg(mirror_batch()), actor=operator)
    with pytest.raises(services.NotAllowedError, match=said(messages.NEED_APPROVER)):
        services.intent_approve(intent_id=intent.pk, actor=admin)


def test_an_approver_rejects_with_a_reason(operator, approver):
    intent = services.intent_request(leg=_leg(mirror_batch()), actor=operator)
    with pytest.raises(services.SettlementError, match=said(messages.REASON_REQUIRED)):
        services.intent_reject(intent_id=intent.pk, actor=approver, reason="   ")
    rejected = services.intent_reject(intent_id=intent.pk, actor=approver, reason="Wrong amount")
    assert rejected.state == IntentState.REJECTED
    assert rejected.rejected_by == approver
    assert rejected.reject_reason == "Wrong amount"
    event = AuditEvent.objects.get(action=AuditAction.LEG_REJECTED, outcome=Outcome.SUCCEEDED)
    assert event.message == "Wrong amount"
    # Rejected is final: the leg can be requested again.
    again = services.intent_request(leg=_leg(intent.batch), actor=operator)
    assert again.state == IntentState.REQUESTED


def test_an_expired_request_cannot_be_approved(operator, approver):
    intent = services.intent_request(leg=_leg(mirror_batch()), actor=operator)
    SettlementIntent.objects.filter(pk=intent.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(services.SettlementError, match=said(messages.EXPIRED)):
        services.intent_approve(intent_id=intent.pk, actor=approver)
    intent.refresh_from_db()
    assert intent.state == IntentState.EXPIRED
    assert AuditEvent.objects.filter(action=AuditAction.LEG_EXPIRED).count() == 1


def test_stale_requests_expire_and_free_the_leg(operator):
    leg = _leg(mirror_batch())
    intent = services.intent_request(leg=leg, actor=operator)
    SettlementIntent.objects.filter(pk=intent.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert services.intents_expire_stale() == 1
    assert services.intents_expire_stale() == 0
    intent.refresh_from_db()
    assert intent.state == IntentState.EXPIRED
    assert services.intent_request(leg=leg, actor=operator).state == IntentState.REQUESTED


def test_a_request_whose_leg_changed_in_the_mirror_is_void_at_approval(operator, approver):
    leg = _leg(mirror_batch())
    intent = services.intent_request(leg=leg, actor=operator)
    Leg.objects.filter(pk=leg.pk).update(amount="1.6")
    with pytest.raises(services.SettlementError, match=said(messages.VOID)):
        services.intent_approve(intent_id=intent.pk, actor=approver)
    intent.refresh_from_db()
    assert intent.state == IntentState.VOIDED
    assert AuditEvent.objects.filter(action=AuditAction.LEG_VOIDED).count() == 1


def test_the_database_allows_one_open_intent_per_leg(operator):
    leg = _leg(mirror_batch())
    open_intent(leg, operator)
    with pytest.raises(IntegrityError), transaction.atomic():
        open_intent(leg, operator, state=IntentState.OUTCOME_UNKNOWN)


@pytest.mark.parametrize(
    "closed",
    [
        IntentState.SETTLED,
        IntentState.REJECTED,
        IntentState.EXPIRED,
        IntentState.VOIDED,
        IntentState.FAILED,
    ],
)
def test_closed_intents_do_not_hold_the_leg(operator, closed):
    leg = _leg(mirror_batch())
    open_intent(leg, operator, state=closed)
    open_intent(leg, operator, state=closed)
    assert open_intent(leg, operator).state == IntentState.REQUESTED


def test_the_constraint_covers_exactly_the_open_states():
    constraint = next(
        c for c in SettlementIntent._meta.constraints if c.name == "settle_one_open_intent_per_leg"
    )
    (lookup, values) = constraint.condition.children[0]
    assert lookup == "state__in"
    assert sorted(values) == sorted(str(s) for s in OPEN_STATES)


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
    btc = services.intent_request(leg=_leg(batch, "BTC"), actor=operator)
    usd = services.intent_request(leg=_leg(batch, "USD"), actor=operator)
    SettlementIntent.objects.filter(pk=usd.pk).update(state=IntentState.APPROVED)
    remote = _remote(batch, [("BTC", "incoming", "1.5000"), ("USD", "incoming", "45000")])

    summary = services.batch_apply(remote=remote, actor=SystemActor.POLLER)

    assert summary.voided == 1
    btc.refresh_from_db()
    usd.refresh_from_db()
    assert btc.state == IntentState.REQUESTED  # same amount, written differently
    assert usd.state == IntentState.VOIDED
    assert "outgoing 45000 USD" in usd.note and "incoming 45000 USD" in usd.note
    voided = AuditEvent.objects.get(action=AuditAction.LEG_VOIDED)
    assert voided.actor_label == "system:prime_poll"
    assert voided.target_id == f"{batch.prime_batch_id}:USD"
    changed = AuditEvent.objects.get(action=AuditAction.LEG_STATUS_CHANGED)
    assert changed.before["direction"] == "outgoing" and changed.after["direction"] == "incoming"
    # The void request no longer holds the leg.
    assert services.intent_request(leg=_leg(batch, "USD"), actor=operator).direction == "incoming"


def test_a_leg_gone_at_kraken_voids_its_request(operator):
    batch = mirror_batch()
    intent = services.intent_request(leg=_leg(batch, "USD"), actor=operator)
    services.batch_apply(
        remote=_remote(batch, [("BTC", "incoming", "1.5")]), actor=SystemActor.POLLER
    )
    intent.refresh_from_db()
    assert intent.state == IntentState.VOIDED
    assert messages.VOID_LEG_GONE in intent.note


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
