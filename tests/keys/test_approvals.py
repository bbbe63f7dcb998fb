"""Users and keys changes under the approvals engine (issue 11).

For every users/keys kind the default policy puts under approval (key issue for a Trader
user, allow-list widening, escalation, enable), an Operator's request alone never reaches
Kraken (the sandbox's call log has no executed write), and after approval exactly one
call does. Kinds that run at once still do, and are listed for review afterwards.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from portal.approvals import selectors as approval_selectors
from portal.approvals import services as approvals
from portal.approvals.models import (
    ApprovalPolicy,
    ChangeKind,
    ChangeRequest,
    RequestState,
    StepUpMethod,
    VoteDecision,
)
from portal.audit.models import AuditAction, AuditEvent, TargetType
from portal.keys.approvals import allowlist_kind
from portal.keys.models import ApiKey
from portal.keys.services import key_issue
from portal.users.models import PrimeUser
from tests.conftest import make_staff
from tests.staff.otp import totp_code, verified_login
from tests.users.conftest import HX

pytestmark = pytest.mark.django_db


def executed(control, endpoint: str) -> list[dict]:
    return control.calls(endpoint, executed=True)


def issue_form(client, user, **fields) -> dict:
    import re

    page = client.get(reverse("keys:list", args=[user.prime_id])).content.decode()
    token = re.search(r'name="token" value="([^"]+)"', page).group(1)
    return {"token": token, "label": "", "whitelisted_ips": "", **fields}


def pending() -> ChangeRequest:
    return ChangeRequest.objects.get(state=RequestState.PENDING)


# --- needs approval: nothing reaches Kraken before, exactly one call after -------------------


@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "htmx"])
def test_enable_waits_for_an_approver_then_runs_once(
    op_client, prime_user, admin_client, control, approve, headers
):
    admin_client.update_api_user(prime_user.prime_id, status="Disabled")
    PrimeUser.objects.filter(pk=prime_user.pk).update(status="Disabled")
    control.clear_calls()
    url = reverse("users:status", args=[prime_user.prime_id])
    response = op_client.post(url, {"status": "Enabled"}, headers=headers, follow=not headers)
    assert "Sent for approval" in response.content.decode()
    change = pending()
    assert change.kind == ChangeKind.USER_ENABLE
    assert reverse("approvals:detail", args=[change.pk]) in response.content.decode()
    assert executed(control, "UpdatePrimeApiUser") == []
    assert admin_client.get_api_user(prime_user.prime_id).status == "Disabled"
    outcome = approve(change)
    assert outcome.change.state == RequestState.DONE
    assert len(executed(control, "UpdatePrimeApiUser")) == 1
    assert admin_client.get_api_user(prime_user.prime_id).status == "Enabled"
    assert PrimeUser.objects.get(pk=prime_user.pk).status == "Enabled"
    # The usual audit event on the user is there too, by the approver who executed it.
    assert AuditEvent.objects.filter(
        action=AuditAction.PRIME_USER_ENABLED, target_id=prime_user.prime_id
    ).exists()


def test_escalation_waits_for_an_approver_then_runs_once(
    op_client, prime_user, operator, control, approve
):
    key = key_issue(user=prime_user, actor=operator).key
    control.clear_calls()
    op_client.post(
        reverse("keys:user-role", args=[prime_user.prime_id]),
        {"role": "Trader", "expected_role": "Viewer"},
        headers=HX,
    )
    change = pending()
    assert change.kind == ChangeKind.ROLE_ESCALATE
    assert executed(control, "UpdatePrimeApiUserRoles") == []
    before, after = ("Viewer", "Trader")
    leaves = {c.path: (c.old, c.new) for c in approval_selectors.change_diff(change=change)}
    assert leaves["role"] == (before, after)
    approve(change)
    assert len(executed(control, "UpdatePrimeApiUserRoles")) == 1
    prime_user.refresh_from_db()
    assert prime_user.role == "Trader"
    assert "write::orders" in ApiKey.objects.get(pk=key.pk).permissions


@pytest.mark.parametrize(
    ("old", "new"),
    [(["192.0.2.1"], "192.0.2.1\n198.51.100.7"), (["192.0.2.1"], "")],
    ids=["entry-added", "emptied-to-anywhere"],
)
def test_allowlist_widening_waits_for_an_approver_then_runs_once(
    op_client, prime_user, operator, admin_client, control, approve, old, new
):
    key = key_issue(user=prime_user, actor=operator, whitelisted_ips=old).key
    control.clear_calls()
    response = op_client.post(
        reverse("keys:allowlist", args=[key.prime_key_id]),
        {"entries": new, "base": "\n".join(old), "confirm_anywhere": "on"},
        headers=HX,
    )
    assert "Sent for approval" in response.content.decode()
    change = pending()
    assert change.kind == ChangeKind.ALLOWLIST_WIDEN
    assert executed(control, "UpdatePrimeApiUserKey") == []
    approve(change)
    calls = executed(control, "UpdatePrimeApiUserKey")
    assert len(calls) == 1
    (upstream,) = admin_client.list_api_user_keys(prime_user.prime_id)
    assert sorted(upstream.whitelisted_ips) == sorted(e for e in new.split("\n") if e)


def test_a_trader_key_is_authorised_by_the_approver_and_issued_by_the_requester(
    op_client, make_prime_user, operator, approver, control, approve
):
    trader = make_prime_user(name="Trading bot", role="Trader")
    control.clear_calls()
    response = op_client.post(
        reverse("keys:issue", args=[trader.prime_id]),
        issue_form(op_client, trader, label="desk 4", whitelisted_ips="192.0.2.1"),
        headers=HX,
    )
    body = response.content.decode()
    assert "Sent for approval" in body and 'id="secret-value"' not in body
    change = pending()
    assert (change.kind, change.requester_executes) == (ChangeKind.KEY_ISSUE, True)
    assert executed(control, "CreatePrimeApiUserKey") == []

    outcome = approve(change)
    assert outcome.change.state == RequestState.APPROVED  # authorised, not issued
    assert executed(control, "CreatePrimeApiUserKey") == []

    url = reverse("keys:issue-approved", args=[change.pk])
    # The approver cannot carry it out; another Operator cannot even see it.
    approver_client = Client()
    approver_client.force_login(approver)
    assert approver_client.post(url).status_code == 403
    other = Client()
    other.force_login(make_staff("olga.operator", "Operator"))
    assert other.post(url).status_code == 404
    with pytest.raises(approvals.ApprovalError):
        approvals.change_execute(change_id=change.pk, actor=approver)
    assert executed(control, "CreatePrimeApiUserKey") == []

    confirm = op_client.get(url)
    assert "Issue the key now" in confirm.content.decode()
    assert "no-store" in confirm.headers["Cache-Control"]
    shown = op_client.post(url, headers=HX)
    body = shown.content.decode()
    assert 'id="secret-value"' in body
    assert 'hx-history="false"' in body
    assert "no-store" in shown.headers["Cache-Control"]
    assert len(executed(control, "CreatePrimeApiUserKey")) == 1
    key = ApiKey.objects.get(user=trader)
    assert key.whitelisted_ips == ["192.0.2.1"] and key.label == "desk 4"
    # Shown once: posting again or reopening shows no secret, and sends nothing.
    again = op_client.post(url).content.decode()
    assert 'id="secret-value"' not in again
    assert len(executed(control, "CreatePrimeApiUserKey")) == 1
    change.refresh_from_db()
    assert change.state == RequestState.DONE
    assert "secret" not in str(change.result).lower()


def test_a_viewer_users_key_is_still_issued_at_once(op_client, prime_user, control):
    control.clear_calls()
    response = op_client.post(
        reverse("keys:issue", args=[prime_user.prime_id]),
        issue_form(op_client, prime_user),
        headers=HX,
    )
    assert 'id="secret-value"' in response.content.decode()
    assert len(executed(control, "CreatePrimeApiUserKey")) == 1
    assert not ChangeRequest.objects.exists()


def test_the_requester_cannot_issue_after_the_deadline(
    op_client, make_prime_user, control, approve
):
    trader = make_prime_user(name="Trading bot", role="Trader")
    op_client.post(reverse("keys:issue", args=[trader.prime_id]), issue_form(op_client, trader))
    change = approve().change
    ChangeRequest.objects.filter(pk=change.pk).update(
        execute_by=timezone.now() - timedelta(seconds=1)
    )
    control.clear_calls()
    response = op_client.post(reverse("keys:issue-approved", args=[change.pk]))
    assert 'id="secret-value"' not in response.content.decode()
    assert executed(control, "CreatePrimeApiUserKey") == []
    change.refresh_from_db()
    assert change.state == RequestState.EXPIRED


def test_the_requester_cannot_approve_their_own_request(op_client, prime_user, operator):
    op_client.post(
        reverse("keys:user-role", args=[prime_user.prime_id]),
        {"role": "Trader", "expected_role": "Viewer"},
    )
    with pytest.raises(approvals.ApprovalError):
        approvals.change_vote(
            change_id=pending().pk,
            actor=operator,
            decision=VoteDecision.APPROVE,
            step_up=StepUpMethod.TOTP,
        )


def test_a_target_changed_at_kraken_voids_the_request(
    op_client, prime_user, admin_client, control, approve
):
    op_client.post(
        reverse("keys:user-role", args=[prime_user.prime_id]),
        {"role": "Trader", "expected_role": "Viewer"},
    )
    change = pending()
    admin_client.update_api_user(prime_user.prime_id, name="Renamed at Kraken")
    control.clear_calls()
    outcome = approve(change)
    assert outcome.change.state == RequestState.VOIDED
    assert executed(control, "UpdatePrimeApiUserRoles") == []
    assert admin_client.get_api_user(prime_user.prime_id).role == "Viewer"
    assert any(c["path"] == "name" for c in outcome.change.void_changes)


def test_an_unknown_outcome_is_reconciled_with_kraken_not_sent_again(
    op_client, prime_user, control, approve, approver, settings
):
    op_client.post(
        reverse("keys:user-role", args=[prime_user.prime_id]),
        {"role": "Trader", "expected_role": "Viewer"},
    )
    settings.PRIME_TIMEOUT_SECONDS = 1
    control.inject_fault("timeout_after_execute", "UpdatePrimeApiUserRoles", seconds=2)
    outcome = approve()
    assert outcome.change.state == RequestState.OUTCOME_UNKNOWN
    assert len(executed(control, "UpdatePrimeApiUserRoles")) == 1
    done = approvals.change_reconcile(change_id=outcome.change.pk, actor=approver)
    assert done.change.state == RequestState.DONE
    assert len(executed(control, "UpdatePrimeApiUserRoles")) == 1  # asked, not sent again
    prime_user.refresh_from_db()
    assert prime_user.role == "Trader"


def test_a_policy_can_put_disabling_under_approval(op_client, prime_user, control, approve):
    ApprovalPolicy.objects.create(kind=ChangeKind.USER_DISABLE, needs_approval=True, approvers=1)
    control.clear_calls()
    op_client.post(reverse("users:status", args=[prime_user.prime_id]), {"status": "Disabled"})
    assert pending().kind == ChangeKind.USER_DISABLE
    assert executed(control, "UpdatePrimeApiUser") == []
    approve()
    assert len(executed(control, "UpdatePrimeApiUser")) == 1


def test_an_operator_may_not_approve(op_client, prime_user, operator):
    op_client.post(
        reverse("keys:user-role", args=[prime_user.prime_id]),
        {"role": "Trader", "expected_role": "Viewer"},
    )
    colleague = make_staff("olga.operator", "Operator")
    with pytest.raises(approvals.ApprovalError) as refused:
        approvals.change_vote(
            change_id=pending().pk,
            actor=colleague,
            decision=VoteDecision.APPROVE,
            step_up=StepUpMethod.TOTP,
        )
    assert refused.value.forbidden


# --- runs at once, reviewed afterwards -------------------------------------------------------


def test_changes_that_remove_access_run_at_once_and_are_reviewed_afterwards(
    op_client, make_prime_user, operator, approver, control
):
    trader = make_prime_user(name="Trading bot", role="Trader")
    viewer = make_prime_user(name="Reader")
    key = key_issue(user=viewer, actor=operator).key
    control.clear_calls()
    op_client.post(
        reverse("keys:user-role", args=[trader.prime_id]),
        {"role": "Viewer", "expected_role": "Trader"},
    )
    op_client.post(reverse("users:status", args=[viewer.prime_id]), {"status": "Disabled"})
    op_client.post(
        reverse("keys:revoke", args=[key.prime_key_id]),
        {"public_key": key.public_key, "reason": "rotate"},
    )
    assert len(executed(control, "UpdatePrimeApiUserRoles")) == 1
    assert len(executed(control, "UpdatePrimeApiUser")) == 1
    assert len(executed(control, "DeletePrimeApiUserKey")) == 1
    done = ChangeRequest.objects.filter(state=RequestState.DONE, quorum=0)
    assert {c.kind for c in done} == {
        ChangeKind.ROLE_DEMOTE,
        ChangeKind.USER_DISABLE,
        ChangeKind.KEY_REVOKE,
    }

    # The approver sees them "to review" and marks each reviewed (audited).
    client = Client()
    verified_login(client, approver)
    inbox = client.get(reverse("approvals:inbox")).content.decode()
    assert "To review (3)" in inbox
    for change in done:
        response = client.post(
            reverse("approvals:reviewed", args=[change.pk]), {"next": "inbox"}, follow=True
        )
        assert "Marked reviewed" in response.content.decode()
    assert "To review" not in client.get(reverse("approvals:inbox")).content.decode()
    reviewed = AuditEvent.objects.filter(
        action=AuditAction.CHANGE_REVIEWED, target_type=TargetType.CHANGE_REQUEST
    )
    assert reviewed.count() == 3 and {e.actor_label for e in reviewed} == {approver.username}
    # Once is enough.
    again = approvals.change_mark_reviewed(change_id=done[0].pk, actor=approver)
    assert again.level == "info" and reviewed.count() == 3


def test_only_another_approver_reviews(op_client, prime_user, operator, control):
    op_client.post(reverse("users:status", args=[prime_user.prime_id]), {"status": "Disabled"})
    change = ChangeRequest.objects.get(kind=ChangeKind.USER_DISABLE)
    with pytest.raises(approvals.ApprovalError):
        approvals.change_mark_reviewed(change_id=change.pk, actor=operator)
    assert op_client.post(reverse("approvals:reviewed", args=[change.pk])).status_code == 403
    change.refresh_from_db()
    assert change.reviewed_at is None


def test_a_change_that_needed_approval_is_not_reviewed_afterwards(
    op_client, prime_user, approver, approve
):
    op_client.post(
        reverse("keys:user-role", args=[prime_user.prime_id]),
        {"role": "Trader", "expected_role": "Viewer"},
    )
    change = approve().change
    with pytest.raises(approvals.ApprovalError):
        approvals.change_mark_reviewed(change_id=change.pk, actor=approver)
    assert list(approval_selectors.change_to_review(staff=approver)) == []


def test_approving_through_the_page_asks_for_the_code(op_client, prime_user, approver, control):
    op_client.post(
        reverse("keys:user-role", args=[prime_user.prime_id]),
        {"role": "Trader", "expected_role": "Viewer"},
    )
    change = pending()
    client = Client()
    device = verified_login(client, approver)
    control.clear_calls()
    vote = reverse("approvals:vote", args=[change.pk])
    client.post(vote, {"decision": "approve", "code": ""})
    assert executed(control, "UpdatePrimeApiUserRoles") == []
    client.post(vote, {"decision": "approve", "code": totp_code(device)})
    assert len(executed(control, "UpdatePrimeApiUserRoles")) == 1


# --- the rule of widening ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "kind"),
    [
        ([], ["192.0.2.1"], ChangeKind.ALLOWLIST_NARROW),  # anywhere -> one address
        (["192.0.2.1"], [], ChangeKind.ALLOWLIST_WIDEN),  # one address -> anywhere
        (["192.0.2.1"], ["192.0.2.1", "192.0.2.2"], ChangeKind.ALLOWLIST_WIDEN),
        (["192.0.2.1", "192.0.2.2"], ["192.0.2.1"], ChangeKind.ALLOWLIST_NARROW),
        (["192.0.2.1"], ["192.0.2.2"], ChangeKind.ALLOWLIST_WIDEN),  # swapped: one added
        ([], [], ChangeKind.ALLOWLIST_NARROW),
    ],
)
def test_which_allowlist_changes_widen(old, new, kind):
    assert allowlist_kind(old, new) == kind


def test_a_key_asked_for_while_the_escalation_waits_is_a_trader_key(
    op_client, prime_user, control, approve
):
    """Promote a Viewer and issue it a key: both wait; the key is issued once it is a Trader."""
    op_client.post(
        reverse("keys:user-role", args=[prime_user.prime_id]),
        {"role": "Trader", "expected_role": "Viewer"},
    )
    escalation = pending()
    response = op_client.post(
        reverse("keys:issue", args=[prime_user.prime_id]), issue_form(op_client, prime_user)
    )
    assert "Sent for approval" in response.content.decode()
    issue = ChangeRequest.objects.get(kind=ChangeKind.KEY_ISSUE)
    assert issue.state == RequestState.PENDING and '"role":"Trader"' in issue.payload
    control.clear_calls()
    approve(issue)
    url = reverse("keys:issue-approved", args=[issue.pk])
    early = op_client.post(url).content.decode()
    assert "Not yet" in early and 'id="secret-value"' not in early
    assert executed(control, "CreatePrimeApiUserKey") == []
    approve(escalation)
    shown = op_client.post(url).content.decode()
    assert 'id="secret-value"' in shown
    assert len(executed(control, "CreatePrimeApiUserKey")) == 1
    assert "write::orders" in ApiKey.objects.get(user=prime_user).permissions


def test_a_sync_that_finds_the_target_changed_voids_the_waiting_request(
    op_client, prime_user, admin_client, control, approver
):
    op_client.post(
        reverse("keys:user-role", args=[prime_user.prime_id]),
        {"role": "Trader", "expected_role": "Viewer"},
    )
    change = pending()
    admin_client.update_api_user(prime_user.prime_id, status="Disabled")
    from portal.keys.services import prime_sync

    prime_sync(actor=operator_of(change))
    change.refresh_from_db()
    assert change.state == RequestState.VOIDED
    assert "changed at Kraken" in change.void_reason
    assert AuditEvent.objects.filter(
        action=AuditAction.CHANGE_VOIDED, target_id=str(change.pk)
    ).exists()
    with pytest.raises(approvals.ApprovalError):
        approvals.change_vote(
            change_id=change.pk,
            actor=approver,
            decision=VoteDecision.APPROVE,
            step_up=StepUpMethod.TOTP,
        )
    assert executed(control, "UpdatePrimeApiUserRoles") == []


def operator_of(change: ChangeRequest):
    return change.requested_by


def test_a_trader_key_is_never_issued_where_its_secret_would_be_lost(
    op_client, make_prime_user, operator, control, approve
):
    """The generic "carry out" of the engine refuses a key issue: nothing is sent."""
    trader = make_prime_user(name="Trading bot", role="Trader")
    op_client.post(reverse("keys:issue", args=[trader.prime_id]), issue_form(op_client, trader))
    change = approve().change
    control.clear_calls()
    outcome = approvals.change_execute(change_id=change.pk, actor=operator)
    assert outcome.change.state == RequestState.FAILED
    assert executed(control, "CreatePrimeApiUserKey") == []
    assert not ApiKey.objects.filter(user=trader).exists()
