"""The one send to Kraken, its refusals and unknown outcomes, against the real sandbox."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from portal.actors import SystemActor
from portal.approvals import messages as approvals_messages
from portal.approvals.models import ChangeRequest, RequestState
from portal.audit.models import AuditAction, AuditEvent, Outcome
from portal.settlement import messages, services
from portal.settlement.models import Batch, Leg
from tests.settlement.conftest import (
    TRADES,
    approve,
    open_request,
    request_leg,
    said,
    settle_calls,
)

pytestmark = pytest.mark.django_db


def _leg(batch, asset="BTC") -> Leg:
    return Leg.objects.select_related("batch").get(batch=batch, asset=asset)


def _request_and_approve(batch, operator, approver, asset="BTC"):
    """(what the approval said, the request as it is now)."""
    change = request_leg(_leg(batch, asset), operator)
    (result,) = approve([change.pk], approver)
    change.refresh_from_db()
    return result, change


def _transfer(change) -> str:
    return (change.result or {}).get("transfer_id", "")


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
    _result, change = _request_and_approve(kraken_batch, operator, approver)
    assert change.state == RequestState.DONE
    assert list(change.votes.values_list("voter", flat=True)) == [approver.pk]
    transfer_id = _transfer(change)
    assert transfer_id
    leg = _leg(kraken_batch)
    assert (leg.status, leg.transfer_id, leg.transfer_status) == (
        "settling",
        transfer_id,
        "pending",
    )
    submitted = AuditEvent.objects.get(action=AuditAction.LEG_SUBMITTED)
    assert submitted.prime_endpoint == "SettlePrimeSettlementBatchAsset"
    assert submitted.prime_response["transfer"]["id"] == transfer_id

    prime_settings.control.complete_transfer(transfer_id)
    services.batch_refresh(prime_batch_id=kraken_batch.prime_batch_id, actor=SystemActor.POLLER)
    leg.refresh_from_db()
    assert leg.status == "settled" and leg.settled_at is not None
    assert len(settle_calls(prime_settings)) == 1


def test_a_double_click_or_retry_of_approve_does_not_resend(
    kraken_batch, operator, approver, second_approver, prime_settings
):
    from portal.approvals.services import change_execute

    _first, change = _request_and_approve(kraken_batch, operator, approver)
    (again,) = approve([change.pk], approver)
    (other,) = approve([change.pk], second_approver)
    assert again.level == other.level == "error"
    assert re.match(said(approvals_messages.NOT_PENDING), again.message)
    assert change_execute(change_id=change.pk, actor=approver).level == "info"
    assert len(settle_calls(prime_settings)) == 1
    assert AuditEvent.objects.filter(action=AuditAction.CHANGE_VOTE_APPROVED).count() == 1


def test_an_approved_leg_of_an_unconfirmed_batch_waits_and_is_sent_once_confirmed(
    prime_settings, operator, approver
):
    prime_settings.control.add_trades(TRADES)
    batch = services.batch_create(asset_kind="currency", actor=operator)
    result, change = _request_and_approve(batch, operator, approver)
    assert result.level == "info"
    assert result.message == messages.WAITING_NOTE
    assert change.state == RequestState.APPROVED
    assert settle_calls(prime_settings, executed=None) == []
    # Nothing is sent while Kraken has not confirmed, however often the poller looks.
    assert services.legs_send_ready(actor=SystemActor.POLLER) == 0

    prime_settings.control.confirm_batch(batch.prime_batch_id)
    services.batch_refresh(prime_batch_id=batch.prime_batch_id, actor=SystemActor.POLLER)
    assert services.legs_send_ready(actor=SystemActor.POLLER) == 1
    assert services.legs_send_ready(actor=SystemActor.POLLER) == 0
    change.refresh_from_db()
    assert change.state == RequestState.DONE
    assert len(settle_calls(prime_settings, executed=None)) == 1


def test_kraken_refusing_an_unconfirmed_batch_is_said_plainly_and_the_leg_is_requestable_again(
    prime_settings, operator, approver
):
    # The mirror believed the batch confirmed; Kraken says otherwise.
    prime_settings.control.add_trades(TRADES)
    batch = services.batch_create(asset_kind="currency", actor=operator)
    Batch.objects.filter(pk=batch.pk).update(confirmed=True)
    result, change = _request_and_approve(batch, operator, approver)
    assert result.level == "error"
    assert change.state == RequestState.FAILED
    assert result.message == messages.SETTLE_NOT_CONFIRMED
    assert change.result_message == messages.SETTLE_NOT_CONFIRMED
    failed = AuditEvent.objects.get(action=AuditAction.CHANGE_EXECUTION_FAILED)
    assert failed.prime_response["errors"] == ["EGeneral:Invalid arguments:Batch not confirmed"]
    assert settle_calls(prime_settings) == []

    prime_settings.control.confirm_batch(batch.prime_batch_id)
    _retry, again = _request_and_approve(batch, operator, approver)
    assert again.state == RequestState.DONE
    assert len(settle_calls(prime_settings)) == 1


def test_a_leg_kraken_will_not_settle_is_refused_plainly(
    kraken_batch, operator, approver, prime_settings
):
    change = request_leg(_leg(kraken_batch), operator)
    prime_settings.control.set_can_settle(kraken_batch.prime_batch_id, "BTC", False)
    (result,) = approve([change.pk], approver)
    change.refresh_from_db()
    assert change.state == RequestState.FAILED
    assert result.message == messages.SETTLE_CANNOT_SETTLE
    assert settle_calls(prime_settings) == []


def test_a_timeout_after_kraken_executed_is_reconciled_without_a_second_settle(
    kraken_batch, operator, approver, prime_settings, settings
):
    settings.PRIME_TIMEOUT_SECONDS = 1
    prime_settings.control.inject_fault(
        "timeout_after_execute", "SettlePrimeSettlementBatchAsset", seconds=2.5
    )
    result, change = _request_and_approve(kraken_batch, operator, approver)
    # Unknown at first, then GetPrimeSettlementBatch found the transfer.
    assert AuditEvent.objects.filter(action=AuditAction.CHANGE_OUTCOME_UNKNOWN).count() == 1
    reconciled = AuditEvent.objects.get(action=AuditAction.CHANGE_RECONCILED)
    assert change.state == RequestState.DONE
    transfer_id = _transfer(change)
    assert transfer_id
    assert f"transfer {transfer_id}" in change.result["note"]
    assert "went through" in change.result["note"]
    assert reconciled.after == {"kraken": "applied"}
    assert result.level == "success"

    (again,) = approve([change.pk], approver)
    assert again.level == "error"
    prime_settings.control.complete_pending_transfers()
    services.batch_refresh(prime_batch_id=kraken_batch.prime_batch_id, actor=SystemActor.POLLER)
    with pytest.raises(services.SettlementError):
        request_leg(_leg(kraken_batch), operator)  # settled: nothing left to request
    assert _leg(kraken_batch).status == "settled"
    assert len(settle_calls(prime_settings, executed=None)) == 1


def test_a_dropped_connection_is_reconciled_without_a_second_settle(
    kraken_batch, operator, approver, prime_settings
):
    prime_settings.control.inject_fault("drop_after_execute", "SettlePrimeSettlementBatchAsset")
    _result, change = _request_and_approve(kraken_batch, operator, approver)
    assert change.state == RequestState.DONE
    assert AuditEvent.objects.filter(action=AuditAction.CHANGE_OUTCOME_UNKNOWN).count() == 1
    assert len(settle_calls(prime_settings, executed=None)) == 1


def test_a_5xx_stays_unknown_until_kraken_shows_nothing_happened(
    kraken_batch, operator, approver, prime_settings, settings
):
    settings.SETTLEMENT_RECONCILE_GRACE_SECONDS = 3600
    prime_settings.control.inject_fault("http_500", "SettlePrimeSettlementBatchAsset")
    result, change = _request_and_approve(kraken_batch, operator, approver)
    assert change.state == RequestState.OUTCOME_UNKNOWN
    assert result.level == "error"
    # Nothing can be sent or requested while the outcome is unknown.
    assert services.legs_reconcile_unknown(actor=SystemActor.POLLER) == 0
    (again,) = approve([change.pk], approver)
    assert again.level == "error"
    with pytest.raises(services.SettlementError, match=said(messages.LEG_HAS_OPEN_INTENT)):
        request_leg(_leg(kraken_batch), operator)
    assert settle_calls(prime_settings) == []

    # Past the grace, Kraken shows no transfer: the stored leg is sent once more, once.
    settings.SETTLEMENT_RECONCILE_GRACE_SECONDS = 0
    assert services.legs_reconcile_unknown(actor=SystemActor.POLLER) == 1
    change.refresh_from_db()
    assert change.state == RequestState.DONE
    reconciled = AuditEvent.objects.get(action=AuditAction.CHANGE_RECONCILED)
    assert reconciled.after == {"kraken": "not_applied"}
    assert len(settle_calls(prime_settings)) == 1
    assert len(settle_calls(prime_settings, executed=False)) == 1  # the refused 5xx
    assert services.legs_reconcile_unknown(actor=SystemActor.POLLER) == 0


def test_unknown_outcome_survives_kraken_being_unreachable_for_the_check(
    kraken_batch, operator, approver, prime_settings
):
    control = prime_settings.control
    control.inject_fault("drop_after_execute", "SettlePrimeSettlementBatchAsset")
    control.inject_fault("http_500", "GetPrimeSettlementBatch", count=10)
    result, change = _request_and_approve(kraken_batch, operator, approver)
    assert change.state == RequestState.OUTCOME_UNKNOWN
    assert result.message == approvals_messages.STILL_UNKNOWN
    control.clear_faults()
    assert services.legs_reconcile_unknown(actor=SystemActor.POLLER) == 1
    change.refresh_from_db()
    assert change.state == RequestState.DONE
    assert len(settle_calls(prime_settings, executed=None)) == 1


def test_a_send_left_claimed_by_a_crash_is_treated_as_unknown(
    kraken_batch, operator, approver, prime_settings
):
    # The crashed process had reached Kraken: the sandbox holds a transfer for BTC.
    prime_settings.control.inject_fault("drop_after_execute", "SettlePrimeSettlementBatchAsset")
    from primeapi import OutcomeUnknownError, PrimeClient

    client = PrimeClient(prime_settings.url, prime_settings.admin_key, prime_settings.admin_secret)
    with pytest.raises(OutcomeUnknownError):
        client.settle_settlement_batch_asset(kraken_batch.prime_batch_id, "BTC")
    long_ago = timezone.now() - timedelta(hours=1)
    change = open_request(
        _leg(kraken_batch),
        operator,
        state=RequestState.EXECUTING,
        decided_at=long_ago,
        claimed_at=long_ago,
    )
    assert services.legs_reconcile_unknown(actor=SystemActor.POLLER) == 1
    change.refresh_from_db()
    assert change.state == RequestState.DONE
    actions = list(
        AuditEvent.objects.filter(target_id=str(change.pk)).values_list("action", flat=True)
    )
    assert AuditAction.CHANGE_OUTCOME_UNKNOWN in actions
    assert AuditAction.CHANGE_RECONCILED in actions
    assert len(settle_calls(prime_settings, executed=None)) == 1


def test_a_recent_claim_is_left_to_its_sender(kraken_batch, operator, approver):
    change = open_request(
        _leg(kraken_batch),
        operator,
        state=RequestState.EXECUTING,
        decided_at=timezone.now(),
        claimed_at=timezone.now(),
    )
    services.legs_reconcile_unknown(actor=SystemActor.POLLER)
    change.refresh_from_db()
    assert change.state == RequestState.EXECUTING


def test_a_failed_transfer_makes_the_leg_requestable_again(
    kraken_batch, operator, approver, prime_settings
):
    _result, change = _request_and_approve(kraken_batch, operator, approver)
    first_transfer = _transfer(change)
    prime_settings.control.fail_transfer(first_transfer)
    services.batch_refresh(prime_batch_id=kraken_batch.prime_batch_id, actor=SystemActor.POLLER)
    leg = _leg(kraken_batch)
    assert (leg.status, leg.transfer_status) == ("unsettled", "failed")
    _retry, again = _request_and_approve(kraken_batch, operator, approver)
    assert again.state == RequestState.DONE
    assert _transfer(again) != first_transfer
    assert len(settle_calls(prime_settings)) == 2  # two requests, one send each


def test_every_leg_of_a_batch_settles_and_the_batch_becomes_final(
    kraken_batch, operator, approver, prime_settings
):
    for asset in ("BTC", "ETH", "USD"):
        _request_and_approve(kraken_batch, operator, approver, asset)
    prime_settings.control.complete_pending_transfers()
    services.batch_refresh(prime_batch_id=kraken_batch.prime_batch_id, actor=SystemActor.POLLER)
    kraken_batch.refresh_from_db()
    assert kraken_batch.status == "completed" and kraken_batch.is_final
    states = set(ChangeRequest.objects.values_list("state", flat=True))
    assert states == {RequestState.DONE}
    assert set(Leg.objects.values_list("status", flat=True)) == {"settled"}
    assert AuditEvent.objects.filter(action=AuditAction.BATCH_STATUS_CHANGED).exists()


def test_all_legs_are_requested_in_one_step_and_approved_in_one_step(
    kraken_batch, operator, approver, prime_settings
):
    outcomes = services.legs_request_all(batch=kraken_batch, actor=operator)
    assert [o.asset for o in outcomes] == ["BTC", "ETH", "USD"]
    changes = [o.change.pk for o in outcomes]
    assert ChangeRequest.objects.filter(state=RequestState.PENDING).count() == 3
    # Requested alone, nothing reaches Kraken.
    assert settle_calls(prime_settings, executed=None) == []
    assert services.legs_request_all(batch=kraken_batch, actor=operator) == []

    approved = approve(changes, approver)
    assert [a.level for a in approved] == ["success"] * 3
    # Each leg its own request, each sent exactly once.
    assert len(settle_calls(prime_settings)) == 3
    assert set(Leg.objects.values_list("status", flat=True)) == {"settling"}
