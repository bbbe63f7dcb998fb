"""The engine's rules on any database: quorum, one vote each, void, expiry, exactly once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from portal.actors import SystemActor
from portal.approvals import messages, services
from portal.approvals.models import ChangeRequest, RequestState, StepUpMethod, Vote, VoteDecision
from portal.audit.models import AuditAction, AuditEvent, TargetType
from portal.connection.door import get_prime_client
from tests.approvals.conftest import (
    LATE_RENAME,
    RENAME,
    UPDATE,
    WAITING_RENAME,
    WaitingRenameKind,
    executed_writes,
    kraken_name,
)
from tests.conftest import make_staff

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rename_kind")]


def _request(prime_user, operator, name="Desk 4 renamed", kind=RENAME, quorum=None):
    outcome = services.change_request_create(
        kind=kind,
        target_id=prime_user,
        payload={"name": name},
        actor=operator,
        reason="tidy names",
        summary=f"rename to {name}",
    )
    if quorum is not None:
        ChangeRequest.objects.filter(pk=outcome.change.pk).update(quorum=quorum)
    return outcome.change


def _approve(change, who, method=StepUpMethod.TOTP):
    return services.change_vote(
        change_id=change.pk, actor=who, decision=VoteDecision.APPROVE, step_up=method
    )


def _actions(change) -> list[str]:
    return list(
        AuditEvent.objects.filter(target_type=TargetType.CHANGE_REQUEST, target_id=str(change.pk))
        .order_by("seq")
        .values_list("action", flat=True)
    )


def test_a_request_alone_never_reaches_kraken(prime_user, operator, prime_settings):
    change = _request(prime_user, operator)

    assert change.state == RequestState.PENDING
    assert change.quorum == 1
    assert executed_writes(prime_settings) == []
    assert kraken_name(prime_user) == "Desk 4 bot"
    assert change.target_fingerprint["name"] == "Desk 4 bot"
    assert _actions(change) == [AuditAction.CHANGE_REQUESTED]


def test_one_approval_executes_exactly_the_stored_payload_once(
    prime_user, operator, approver, prime_settings
):
    change = _request(prime_user, operator)

    outcome = _approve(change, approver)

    assert outcome.message == messages.APPROVED_AND_DONE
    change.refresh_from_db()
    assert change.state == RequestState.DONE
    assert change.result["name"] == "Desk 4 renamed"
    assert kraken_name(prime_user) == "Desk 4 renamed"
    assert len(executed_writes(prime_settings)) == 1
    assert Vote.objects.get(change=change).step_up == StepUpMethod.TOTP
    assert _actions(change) == [
        AuditAction.CHANGE_REQUESTED,
        AuditAction.CHANGE_VOTE_APPROVED,
        AuditAction.CHANGE_EXECUTED,
    ]
    # A second execution (a double click) sends nothing.
    again = services.change_execute(change_id=change.pk, actor=approver)
    assert again.level == "info" and again.message == messages.ALREADY_RUNNING
    assert len(executed_writes(prime_settings)) == 1


def test_the_requester_cannot_approve_their_own_request(prime_user, prime_settings):
    both = make_staff("bo.both", "Operator", "Approver")
    change = _request(prime_user, both)

    with pytest.raises(services.ApprovalError) as refused:
        _approve(change, both)

    assert refused.value.message == messages.OWN_REQUEST
    assert refused.value.forbidden
    assert not Vote.objects.exists()
    assert executed_writes(prime_settings) == []


def test_a_person_without_the_approve_permission_cannot_vote(prime_user, operator, viewer):
    change = _request(prime_user, operator)
    with pytest.raises(services.ApprovalError) as refused:
        _approve(change, viewer)
    assert refused.value.message == messages.NOT_ALLOWED_TO_APPROVE


def test_quorum_two_needs_two_distinct_approvers_and_one_vote_each(
    prime_user, operator, approver, second_approver, prime_settings
):
    change = _request(prime_user, operator, quorum=2)

    first = _approve(change, approver)
    assert first.message == messages.APPROVED_VOTE
    with pytest.raises(services.ApprovalError) as twice:
        _approve(change, approver)
    assert twice.value.message == messages.ALREADY_VOTED
    assert executed_writes(prime_settings) == []

    second = _approve(change, second_approver)
    assert second.change.state == RequestState.DONE
    assert len(executed_writes(prime_settings)) == 1


def test_one_rejection_stops_the_change(prime_user, operator, approver, prime_settings):
    change = _request(prime_user, operator, quorum=2)
    outcome = services.change_vote(
        change_id=change.pk, actor=approver, decision=VoteDecision.REJECT, step_up=StepUpMethod.NONE
    )
    assert outcome.change.state == RequestState.REJECTED
    assert executed_writes(prime_settings) == []


def test_approving_without_a_second_factor_is_refused(prime_user, operator, approver):
    change = _request(prime_user, operator)
    with pytest.raises(services.ApprovalError) as refused:
        _approve(change, approver, method=StepUpMethod.NONE)
    assert refused.value.message == messages.STEP_UP_NEEDED


def test_a_request_whose_target_changed_at_kraken_is_voided_not_executed(
    prime_user, operator, approver, prime_settings
):
    change = _request(prime_user, operator)
    get_prime_client().update_api_user(prime_user, name="Renamed at Kraken")
    prime_settings.control.clear_calls()

    outcome = _approve(change, approver)

    change.refresh_from_db()
    assert change.state == RequestState.VOIDED
    assert outcome.level == "error"
    assert change.void_changes == [
        {"path": "name", "kind": "changed", "old": "Desk 4 bot", "new": "Renamed at Kraken"}
    ]
    assert executed_writes(prime_settings) == []
    assert kraken_name(prime_user) == "Renamed at Kraken"
    assert _actions(change)[-1] == AuditAction.CHANGE_VOIDED


def test_an_app_voids_open_requests_on_a_target_it_saw_change(prime_user, operator):
    change = _request(prime_user, operator)
    count = services.change_void_for_target(
        target_type="prime_user",
        target_id=prime_user,
        actor=SystemActor.SYNC,
        reason="sync found the user renamed",
        now_state={"name": "Other", "status": "Enabled", "roles": ["Viewer"]},
    )
    change.refresh_from_db()
    assert count == 1
    assert change.state == RequestState.VOIDED
    assert change.void_reason == "sync found the user renamed"


def test_an_expired_request_cannot_be_approved(prime_user, operator, approver, prime_settings):
    change = _request(prime_user, operator)
    ChangeRequest.objects.filter(pk=change.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    with pytest.raises(services.ApprovalError) as refused:
        _approve(change, approver)

    assert refused.value.message == messages.EXPIRED
    change.refresh_from_db()
    assert change.state == RequestState.EXPIRED
    assert not Vote.objects.exists()
    assert executed_writes(prime_settings) == []
    assert _actions(change)[-1] == AuditAction.CHANGE_EXPIRED


def test_the_expiry_command_expires_overdue_requests_only(prime_user, operator, capsys):
    overdue = _request(prime_user, operator)
    fresh = _request(prime_user, operator, name="Other name")
    ChangeRequest.objects.filter(pk=overdue.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )

    call_command("expire_change_requests")

    overdue.refresh_from_db()
    fresh.refresh_from_db()
    assert (overdue.state, fresh.state) == (RequestState.EXPIRED, RequestState.PENDING)
    assert "Expired 1 change request." in capsys.readouterr().out
    event = AuditEvent.objects.get(action=AuditAction.CHANGE_EXPIRED)
    assert event.actor_label == "system:expiry"


def test_the_requester_withdraws_and_nobody_else_can(prime_user, operator, approver):
    change = _request(prime_user, operator)
    with pytest.raises(services.ApprovalError):
        services.change_withdraw(change_id=change.pk, actor=approver)
    services.change_withdraw(change_id=change.pk, actor=operator)
    change.refresh_from_db()
    assert change.state == RequestState.WITHDRAWN
    with pytest.raises(services.ApprovalError):
        _approve(change, approver)


def test_a_payload_altered_after_approval_is_never_sent(
    prime_user, operator, approver, prime_settings
):
    change = _request(prime_user, operator, quorum=2)
    _approve(change, approver)
    ChangeRequest.objects.filter(pk=change.pk).update(payload='{"name":"Evil"}')

    outcome = _approve(change, make_staff("cory.approver", "Approver"))

    assert outcome.message == messages.PAYLOAD_TAMPERED
    assert outcome.change.state == RequestState.FAILED
    assert executed_writes(prime_settings) == []


def test_an_unknown_outcome_is_reconciled_before_anything_is_sent_again(
    prime_user, operator, approver, second_approver, prime_settings
):
    prime_settings.control.inject_fault("drop_after_execute", UPDATE)
    change = _request(prime_user, operator)

    first = _approve(change, approver)

    assert first.change.state == RequestState.OUTCOME_UNKNOWN
    assert first.message == messages.OUTCOME_UNKNOWN
    with pytest.raises(services.ApprovalError):
        _approve(change, second_approver)
    again = services.change_execute(change_id=change.pk, actor=approver)
    assert again.message == messages.ALREADY_RUNNING
    assert len(executed_writes(prime_settings)) == 1

    reconciled = services.change_reconcile(change_id=change.pk, actor=approver)

    assert reconciled.message == messages.RECONCILED_DONE
    assert reconciled.change.state == RequestState.DONE
    assert len(executed_writes(prime_settings)) == 1
    assert AuditAction.CHANGE_RECONCILED in _actions(change)


def test_a_reconciled_change_kraken_did_not_make_is_sent_once_more(
    prime_user, operator, approver, prime_settings
):
    prime_settings.control.inject_fault("drop_after_execute", UPDATE)
    change = _request(prime_user, operator)
    _approve(change, approver)
    # As if the lost call had never been executed: Kraken still has the old name.
    get_prime_client().update_api_user(prime_user, name="Desk 4 bot")
    prime_settings.control.clear_calls()

    outcome = services.change_reconcile(change_id=change.pk, actor=approver)

    assert outcome.message == messages.RECONCILED_RESENT
    assert outcome.change.state == RequestState.DONE
    assert len(executed_writes(prime_settings)) == 1
    assert kraken_name(prime_user) == "Desk 4 renamed"


def test_a_claim_left_by_a_stopped_process_is_reconciled_not_sent_again(
    prime_user, operator, prime_settings
):
    stale = _request(prime_user, operator)
    fresh = _request(prime_user, operator, name="Desk 4 other")
    # The process that claimed `stale` sent it and died before storing Kraken's answer.
    get_prime_client().update_api_user(prime_user, name="Desk 4 renamed")
    now = timezone.now()
    ChangeRequest.objects.filter(pk=stale.pk).update(
        state=RequestState.EXECUTING, claimed_at=now - timedelta(hours=1)
    )
    ChangeRequest.objects.filter(pk=fresh.pk).update(state=RequestState.EXECUTING, claimed_at=now)
    prime_settings.control.clear_calls()

    marked = services.changes_mark_stale_claims(
        actor=SystemActor.POLLER, older_than=timedelta(minutes=5)
    )

    assert marked == 1
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.state == RequestState.OUTCOME_UNKNOWN
    assert stale.result_message == messages.STALE_CLAIM
    assert fresh.state == RequestState.EXECUTING
    assert _actions(stale)[-1] == AuditAction.CHANGE_OUTCOME_UNKNOWN

    assert services.changes_reconcile_unknown(actor=SystemActor.POLLER) == 1

    stale.refresh_from_db()
    assert stale.state == RequestState.DONE
    assert executed_writes(prime_settings) == []
    assert AuditAction.CHANGE_RECONCILED in _actions(stale)


def test_a_refused_call_fails_the_request_with_krakens_answer(
    prime_user, operator, approver, prime_settings
):
    prime_settings.control.inject_fault("rate_limit", UPDATE)
    change = _request(prime_user, operator)
    outcome = _approve(change, approver)
    assert outcome.change.state == RequestState.FAILED
    assert outcome.change.result["error"] == "RateLimitedError"
    assert _actions(change)[-1] == AuditAction.CHANGE_EXECUTION_FAILED


def test_a_requester_executed_kind_waits_for_the_requester_within_the_deadline(
    prime_user, operator, approver, prime_settings
):
    change = _request(prime_user, operator, kind=LATE_RENAME)
    approved = _approve(change, approver)
    assert approved.change.state == RequestState.APPROVED
    assert approved.change.execute_by is not None
    assert executed_writes(prime_settings) == []
    with pytest.raises(services.ApprovalError) as not_theirs:
        services.change_execute(change_id=change.pk, actor=approver)
    assert not_theirs.value.forbidden

    done = services.change_execute(change_id=change.pk, actor=operator)

    assert done.change.state == RequestState.DONE
    assert done.value.name == "Desk 4 renamed"  # the call's answer, in memory for the requester
    assert len(executed_writes(prime_settings)) == 1


def test_a_requester_executed_kind_expires_after_its_deadline(
    prime_user, operator, approver, prime_settings
):
    change = _request(prime_user, operator, kind=LATE_RENAME)
    _approve(change, approver)
    ChangeRequest.objects.filter(pk=change.pk).update(
        execute_by=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(services.ApprovalError) as late:
        services.change_execute(change_id=change.pk, actor=operator)
    assert late.value.message == messages.DEADLINE_PASSED
    change.refresh_from_db()
    assert change.state == RequestState.EXPIRED
    assert executed_writes(prime_settings) == []


def test_the_stored_payload_is_canonical_json_with_its_hash(prime_user, operator):
    change = _request(prime_user, operator, name="Ünïcode desk")
    assert change.payload == '{"name":"Ünïcode desk"}'
    assert change.payload_hash == services.payload_hash(change.payload)
    assert len(change.payload_hash) == 64


def test_an_unknown_kind_cannot_be_requested(operator):
    with pytest.raises(services.ApprovalError) as refused:
        services.change_request_create(
            kind="no_such_kind", target_id="x", payload={}, actor=operator
        )
    assert refused.value.message == messages.KIND_UNAVAILABLE


def test_an_approved_change_that_must_wait_is_sent_by_itself_once_it_can(
    prime_user, operator, approver, prime_settings
):
    change = _request(prime_user, operator, kind=WAITING_RENAME)

    approved = _approve(change, approver)

    assert approved.message == messages.WAITING.format(reason="Kraken confirms the batch")
    assert approved.change.state == RequestState.APPROVED
    assert services.change_execute_ready(kind=WAITING_RENAME, actor=SystemActor.POLLER) == []
    assert executed_writes(prime_settings) == []

    WaitingRenameKind.confirmed = True
    sent = services.change_execute_ready(kind=WAITING_RENAME, actor=SystemActor.POLLER)

    assert [o.change.state for o in sent] == [RequestState.DONE]
    assert services.change_execute_ready(kind=WAITING_RENAME, actor=SystemActor.POLLER) == []
    assert len(executed_writes(prime_settings)) == 1
    assert AuditEvent.objects.get(action=AuditAction.CHANGE_EXECUTED).actor_label == (
        "system:prime_poll"
    )
