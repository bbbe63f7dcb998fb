"""The one send to Kraken, its refusals and unknown outcomes, against the real sandbox."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from portal.actors import SystemActor
from portal.audit.models import AuditAction, AuditEvent, Outcome
from portal.settlement import messages, services
from portal.settlement.models import Batch, IntentState, Leg, SettlementIntent
from tests.settlement.conftest import TRADES, open_intent, said, settle_calls

pytestmark = pytest.mark.django_db


def _leg(batch, asset="BTC") -> Leg:
    return Leg.objects.select_related("batch").get(batch=batch, asset=asset)


def _request_and_approve(batch, operator, approver, asset="BTC"):
    intent = services.intent_request(leg=_leg(batch, asset), actor=operator)
    result = services.intent_approve(intent_id=intent.pk, actor=approver)
    result.intent.refresh_from_db()
    return result


def test_creating_a_batch_mirrors_kraken_and_is_audited(prime_settings, operator):
    prime_settings.control.add_trades(TRADES)
    batch = services.batch_create(asset_kind="currency", actor=operator)
    assert batch.prime_batch_id.startswith("B_")
    assert batch.trade_count == 2 and len(batch.trade_ids) == 2
    legs = {leg.asset: (leg.direction, leg.amount) for leg in batch.legs.all()}
    assert legs == {"BTC": ("incoming", 1.5), "ETH": ("outgoing", 10), "USD": ("outgoing", 25000)}
    event = AuditEvent.objects.get(action=AuditAction.BATCH_CREATED)
    assert event.target_id == batch.prime_batch_id
    assert event.prime_endpoint == "CreatePrimeSettlementBatch"


def test_an_active_batch_at_kraken_is_named_with_a_link(prime_settings, operator):
    prime_settings.control.add_trades(TRADES)
    first = services.batch_create(asset_kind="currency", actor=operator)
    prime_settings.control.add_trades(TRADES)
    with pytest.raises(services.ActiveBatchExistsError) as refused:
        services.batch_create(asset_kind="currency", actor=operator)
    assert refused.value.batch == first
    assert first.prime_batch_id in str(refused.value)


def test_an_active_batch_unknown_to_the_portal_is_found_at_kraken(prime_settings, operator):
    prime_settings.control.add_trades(TRADES)
    first = services.batch_create(asset_kind="currency", actor=operator)
    Batch.objects.all().delete()  # the portal forgot it (e.g. made by another tool)
    prime_settings.control.add_trades(TRADES)
    with pytest.raises(services.ActiveBatchExistsError) as refused:
        services.batch_create(asset_kind="currency", actor=operator)
    assert refused.value.batch.prime_batch_id == first.prime_batch_id
    assert len(refused.value.batch.trade_ids) == 2
    calls = [c["endpoint"] for c in prime_settings.control.calls()]
    assert "ListPrimeSettlementBatches" in calls


def test_no_pending_trades_is_said_plainly(prime_settings, operator):
    with pytest.raises(services.SettlementError, match=said(messages.NO_UNSETTLED_TRADES)):
        services.batch_create(asset_kind="currency", actor=operator)
    assert not Batch.objects.exists()
    refused = AuditEvent.objects.get(action=AuditAction.BATCH_CREATED)
    assert refused.outcome == Outcome.REFUSED
    assert refused.prime_response["errors"] == ["EGeneral:Invalid arguments:No unsettled trades"]


def test_approval_sends_the_leg_once_and_the_poll_sees_it_settle(
    kraken_batch, operator, approver, prime_settings
):
    result = _request_and_approve(kraken_batch, operator, approver)
    intent = result.intent
    assert intent.state == IntentState.SUBMITTED
    assert intent.approved_by == approver
    assert intent.transfer_id
    leg = _leg(kraken_batch)
    assert (leg.status, leg.transfer_id, leg.transfer_status) == (
        "settling",
        intent.transfer_id,
        "pending",
    )
    submitted = AuditEvent.objects.get(action=AuditAction.LEG_SUBMITTED)
    assert submitted.prime_endpoint == "SettlePrimeSettlementBatchAsset"
    assert submitted.prime_response["transfer"]["id"] == intent.transfer_id

    prime_settings.control.complete_transfer(intent.transfer_id)
    services.batch_refresh(prime_batch_id=kraken_batch.prime_batch_id, actor=SystemActor.POLLER)
    intent.refresh_from_db()
    leg.refresh_from_db()
    assert intent.state == IntentState.SETTLED
    assert leg.status == "settled" and leg.settled_at is not None
    assert len(settle_calls(prime_settings)) == 1


def test_a_double_click_or_retry_of_approve_does_not_resend(
    kraken_batch, operator, approver, second_approver, prime_settings
):
    first = _request_and_approve(kraken_batch, operator, approver)
    again = services.intent_approve(intent_id=first.intent.pk, actor=approver)
    other = services.intent_approve(intent_id=first.intent.pk, actor=second_approver)
    assert again.level == other.level == "info"
    assert re.match(said(messages.NOTHING_TO_DO), again.message)
    assert services.intent_send(intent_id=first.intent.pk, actor=approver).level == "info"
    assert len(settle_calls(prime_settings)) == 1
    assert AuditEvent.objects.filter(action=AuditAction.LEG_APPROVED).count() == 1


def test_an_unconfirmed_batch_is_refused_plainly_and_the_leg_is_requestable_again(
    prime_settings, operator, approver
):
    prime_settings.control.add_trades(TRADES)
    batch = services.batch_create(asset_kind="currency", actor=operator)
    result = _request_and_approve(batch, operator, approver)
    assert result.level == "error"
    assert result.intent.state == IntentState.FAILED
    assert result.message == messages.SETTLE_NOT_CONFIRMED
    assert result.intent.note == messages.SETTLE_NOT_CONFIRMED
    failed = AuditEvent.objects.get(action=AuditAction.LEG_SETTLE_FAILED)
    assert failed.prime_response["errors"] == ["EGeneral:Invalid arguments:Batch not confirmed"]
    assert settle_calls(prime_settings) == []

    prime_settings.control.confirm_batch(batch.prime_batch_id)
    retry = _request_and_approve(batch, operator, approver)
    assert retry.intent.state == IntentState.SUBMITTED
    assert len(settle_calls(prime_settings)) == 1


def test_a_leg_kraken_will_not_settle_is_refused_plainly(
    kraken_batch, operator, approver, prime_settings
):
    intent = services.intent_request(leg=_leg(kraken_batch), actor=operator)
    prime_settings.control.set_can_settle(kraken_batch.prime_batch_id, "BTC", False)
    result = services.intent_approve(intent_id=intent.pk, actor=approver)
    assert result.intent.state == IntentState.FAILED
    assert result.message == messages.SETTLE_CANNOT_SETTLE
    assert settle_calls(prime_settings) == []


def test_a_timeout_after_kraken_executed_is_reconciled_without_a_second_settle(
    kraken_batch, operator, approver, prime_settings, settings
):
    settings.PRIME_TIMEOUT_SECONDS = 1
    prime_settings.control.inject_fault(
        "timeout_after_execute", "SettlePrimeSettlementBatchAsset", seconds=2.5
    )
    result = _request_and_approve(kraken_batch, operator, approver)
    intent = result.intent
    # Unknown at first, then GetPrimeSettlementBatch found the transfer.
    assert AuditEvent.objects.filter(action=AuditAction.LEG_OUTCOME_UNKNOWN).count() == 1
    reconciled = AuditEvent.objects.get(action=AuditAction.LEG_RECONCILED)
    assert intent.state == IntentState.SUBMITTED
    assert intent.transfer_id
    assert f"transfer {intent.transfer_id}" in intent.note
    assert reconciled.message == intent.note
    assert "went through" in result.message

    assert services.intent_approve(intent_id=intent.pk, actor=approver).level == "info"
    with pytest.raises(services.SettlementError):
        services.intent_request(leg=_leg(kraken_batch), actor=operator)
    prime_settings.control.complete_pending_transfers()
    services.batch_refresh(prime_batch_id=kraken_batch.prime_batch_id, actor=SystemActor.POLLER)
    intent.refresh_from_db()
    assert intent.state == IntentState.SETTLED
    assert len(settle_calls(prime_settings, executed=None)) == 1


def test_a_dropped_connection_is_reconciled_without_a_second_settle(
    kraken_batch, operator, approver, prime_settings
):
    prime_settings.control.inject_fault("drop_after_execute", "SettlePrimeSettlementBatchAsset")
    result = _request_and_approve(kraken_batch, operator, approver)
    assert result.intent.state == IntentState.SUBMITTED
    assert AuditEvent.objects.filter(action=AuditAction.LEG_OUTCOME_UNKNOWN).count() == 1
    assert len(settle_calls(prime_settings, executed=None)) == 1


def test_a_5xx_stays_unknown_until_kraken_shows_nothing_happened(
    kraken_batch, operator, approver, prime_settings, settings
):
    settings.SETTLEMENT_RECONCILE_GRACE_SECONDS = 3600
    prime_settings.control.inject_fault("http_500", "SettlePrimeSettlementBatchAsset")
    result = _request_and_approve(kraken_batch, operator, approver)
    intent = result.intent
    assert intent.state == IntentState.OUTCOME_UNKNOWN
    assert intent.note == messages.RECONCILE_WAITING
    assert result.level == "warning"
    # Nothing can be sent or requested while the outcome is unknown.
    assert services.intent_approve(intent_id=intent.pk, actor=approver).level == "info"
    with pytest.raises(services.SettlementError, match=said(messages.LEG_HAS_OPEN_INTENT)):
        services.intent_request(leg=_leg(kraken_batch), actor=operator)

    settings.SETTLEMENT_RECONCILE_GRACE_SECONDS = 0
    services.batch_refresh(prime_batch_id=kraken_batch.prime_batch_id, actor=SystemActor.POLLER)
    intent.refresh_from_db()
    assert intent.state == IntentState.FAILED
    assert re.fullmatch(said(messages.RECONCILED_NOT_SENT), intent.note)
    assert settle_calls(prime_settings) == []

    retry = _request_and_approve(kraken_batch, operator, approver)
    assert retry.intent.state == IntentState.SUBMITTED
    assert len(settle_calls(prime_settings)) == 1
    assert len(settle_calls(prime_settings, executed=False)) == 1  # the refused 5xx


def test_unknown_outcome_survives_kraken_being_unreachable_for_the_check(
    kraken_batch, operator, approver, prime_settings
):
    control = prime_settings.control
    control.inject_fault("drop_after_execute", "SettlePrimeSettlementBatchAsset")
    control.inject_fault("http_500", "GetPrimeSettlementBatch", count=10)
    result = _request_and_approve(kraken_batch, operator, approver)
    assert result.intent.state == IntentState.OUTCOME_UNKNOWN
    assert messages.CHECK_FAILED in result.message
    control.clear_faults()
    services.batch_refresh(prime_batch_id=kraken_batch.prime_batch_id, actor=SystemActor.POLLER)
    result.intent.refresh_from_db()
    assert result.intent.state == IntentState.SUBMITTED
    assert len(settle_calls(prime_settings, executed=None)) == 1


def test_a_send_left_submitting_by_a_crash_is_treated_as_unknown(
    kraken_batch, operator, approver, prime_settings
):
    # The crashed process had reached Kraken: the sandbox holds a transfer for BTC.
    prime_settings.control.inject_fault("drop_after_execute", "SettlePrimeSettlementBatchAsset")
    from primeapi import OutcomeUnknownError, PrimeClient

    client = PrimeClient(prime_settings.url, prime_settings.admin_key, prime_settings.admin_secret)
    with pytest.raises(OutcomeUnknownError):
        client.settle_settlement_batch_asset(kraken_batch.prime_batch_id, "BTC")
    long_ago = timezone.now() - timedelta(hours=1)
    intent = open_intent(
        _leg(kraken_batch),
        operator,
        state=IntentState.SUBMITTING,
        approved_by=approver,
        approved_at=long_ago,
        submitting_at=long_ago,
    )
    services.batch_refresh(prime_batch_id=kraken_batch.prime_batch_id, actor=SystemActor.POLLER)
    intent.refresh_from_db()
    assert intent.state == IntentState.SUBMITTED
    actions = list(
        AuditEvent.objects.filter(target_id=intent.audit_id).values_list("action", flat=True)
    )
    assert AuditAction.LEG_OUTCOME_UNKNOWN in actions
    assert AuditAction.LEG_RECONCILED in actions
    assert len(settle_calls(prime_settings, executed=None)) == 1


def test_a_recent_submitting_row_is_left_to_its_sender(kraken_batch, operator, approver):
    intent = open_intent(
        _leg(kraken_batch),
        operator,
        state=IntentState.SUBMITTING,
        approved_by=approver,
        approved_at=timezone.now(),
        submitting_at=timezone.now(),
    )
    services.batch_refresh(prime_batch_id=kraken_batch.prime_batch_id, actor=SystemActor.POLLER)
    intent.refresh_from_db()
    assert intent.state == IntentState.SUBMITTING


def test_a_failed_transfer_makes_the_leg_requestable_again(
    kraken_batch, operator, approver, prime_settings
):
    intent = _request_and_approve(kraken_batch, operator, approver).intent
    prime_settings.control.fail_transfer(intent.transfer_id)
    services.batch_refresh(prime_batch_id=kraken_batch.prime_batch_id, actor=SystemActor.POLLER)
    intent.refresh_from_db()
    assert intent.state == IntentState.FAILED
    assert "failed" in intent.note
    assert AuditEvent.objects.filter(action=AuditAction.LEG_SETTLE_FAILED).count() == 1
    retry = _request_and_approve(kraken_batch, operator, approver)
    assert retry.intent.state == IntentState.SUBMITTED
    assert retry.intent.transfer_id != intent.transfer_id
    assert len(settle_calls(prime_settings)) == 2  # two intents, one send each


def test_every_leg_of_a_batch_settles_and_the_batch_becomes_final(
    kraken_batch, operator, approver, prime_settings
):
    for asset in ("BTC", "ETH", "USD"):
        _request_and_approve(kraken_batch, operator, approver, asset)
    prime_settings.control.complete_pending_transfers()
    services.batch_refresh(prime_batch_id=kraken_batch.prime_batch_id, actor=SystemActor.POLLER)
    kraken_batch.refresh_from_db()
    assert kraken_batch.status == "completed" and kraken_batch.is_final
    states = set(SettlementIntent.objects.values_list("state", flat=True))
    assert states == {IntentState.SETTLED}
    assert AuditEvent.objects.filter(action=AuditAction.BATCH_STATUS_CHANGED).exists()
