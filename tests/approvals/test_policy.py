"""The approval policy: defaults, limits, and a change that needs another Admin."""

from __future__ import annotations

import pytest

from portal.approvals import messages, services
from portal.approvals.models import ChangeKind, RequestState, StepUpMethod, VoteDecision
from portal.approvals.policy import needs_approval, policy_for, policy_rules, rule_validate
from portal.audit.models import AuditAction, AuditEvent
from tests.conftest import make_staff

pytestmark = pytest.mark.django_db


def test_the_defaults_put_access_and_money_under_approval_and_removals_at_once():
    rules = {rule.kind: rule for rule in policy_rules()}
    assert set(rules) == set(ChangeKind.values)
    for kind in (
        ChangeKind.KEY_ISSUE,
        ChangeKind.ALLOWLIST_WIDEN,
        ChangeKind.ROLE_ESCALATE,
        ChangeKind.USER_ENABLE,
        ChangeKind.SETTLEMENT_LEG,
        ChangeKind.POLICY_CHANGE,
    ):
        assert (rules[kind].needs_approval, rules[kind].approvers) == (True, 1), kind
    for kind in (
        ChangeKind.KEY_REVOKE,
        ChangeKind.ROLE_DEMOTE,
        ChangeKind.USER_DISABLE,
        ChangeKind.ALLOWLIST_NARROW,
    ):
        assert not rules[kind].needs_approval, kind


@pytest.mark.parametrize("kind", [ChangeKind.SETTLEMENT_LEG, ChangeKind.POLICY_CHANGE])
def test_settlement_and_the_policy_itself_can_never_go_below_one_approver(kind, admin):
    with pytest.raises(ValueError):
        rule_validate(kind=kind, needs_approval=False, approvers=1)
    with pytest.raises(services.ApprovalError) as refused:
        services.policy_change_request(
            kind=kind,
            needs_approval=False,
            approvers=1,
            require_step_up_every_time=False,
            actor=admin,
        )
    assert refused.value.message in (
        messages.POLICY_SETTLEMENT_MINIMUM,
        messages.POLICY_POLICY_MINIMUM,
    )


@pytest.mark.parametrize("approvers", [0, 3, -1])
def test_approvers_are_one_or_two(approvers):
    with pytest.raises(ValueError):
        rule_validate(kind=ChangeKind.KEY_ISSUE, needs_approval=True, approvers=approvers)


def test_a_policy_change_takes_effect_only_after_a_second_admin_approves(admin, approver):
    other_admin = make_staff("ben.admin", "Admin")
    requested = services.policy_change_request(
        kind=ChangeKind.KEY_REVOKE,
        needs_approval=True,
        approvers=2,
        require_step_up_every_time=True,
        actor=admin,
        reason="revocations need review first",
    )
    change = requested.change
    assert change.state == RequestState.PENDING
    assert not needs_approval(kind=ChangeKind.KEY_REVOKE)

    for who, words in ((admin, messages.OWN_REQUEST), (approver, messages.NOT_ALLOWED_TO_APPROVE)):
        with pytest.raises(services.ApprovalError) as refused:
            services.change_vote(
                change_id=change.pk,
                actor=who,
                decision=VoteDecision.APPROVE,
                step_up=StepUpMethod.TOTP,
            )
        assert refused.value.message == words
    assert not needs_approval(kind=ChangeKind.KEY_REVOKE)

    done = services.change_vote(
        change_id=change.pk, actor=other_admin, decision=VoteDecision.APPROVE, step_up="totp"
    )

    assert done.change.state == RequestState.DONE
    rule = policy_for(kind=ChangeKind.KEY_REVOKE)
    assert (rule.needs_approval, rule.approvers, rule.require_step_up_every_time) == (
        True,
        2,
        True,
    )
    event = AuditEvent.objects.get(action=AuditAction.APPROVAL_POLICY_CHANGED)
    assert event.before["needs_approval"] is False
    assert event.after["approvers"] == 2
    assert event.actor_label == "ben.admin"


def test_a_policy_change_is_void_if_the_policy_changed_meanwhile(admin):
    other_admin = make_staff("ben.admin", "Admin")
    third_admin = make_staff("cy.admin", "Admin")
    first = services.policy_change_request(
        kind=ChangeKind.USER_CREATE,
        needs_approval=True,
        approvers=1,
        require_step_up_every_time=False,
        actor=admin,
    ).change
    second = services.policy_change_request(
        kind=ChangeKind.USER_CREATE,
        needs_approval=True,
        approvers=2,
        require_step_up_every_time=False,
        actor=admin,
    ).change
    services.change_vote(
        change_id=first.pk, actor=other_admin, decision=VoteDecision.APPROVE, step_up="totp"
    )

    outcome = services.change_vote(
        change_id=second.pk, actor=third_admin, decision=VoteDecision.APPROVE, step_up="totp"
    )

    assert outcome.change.state == RequestState.VOIDED
    assert policy_for(kind=ChangeKind.USER_CREATE).approvers == 1


def test_asking_for_the_policy_already_in_force_is_refused(admin):
    with pytest.raises(services.ApprovalError) as refused:
        services.policy_change_request(
            kind=ChangeKind.SETTLEMENT_LEG,
            needs_approval=True,
            approvers=1,
            require_step_up_every_time=False,
            actor=admin,
        )
    assert refused.value.message == messages.POLICY_UNCHANGED


def test_only_an_admin_may_request_a_policy_change(operator):
    with pytest.raises(services.ApprovalError) as refused:
        services.policy_change_request(
            kind=ChangeKind.KEY_ISSUE,
            needs_approval=True,
            approvers=2,
            require_step_up_every_time=False,
            actor=operator,
        )
    assert refused.value.forbidden
