"""Exactly once under real concurrency: threads with their own connections, PostgreSQL row locks."""

from __future__ import annotations

import threading

import pytest

from portal.approvals import services
from portal.approvals.models import ChangeRequest, RequestState, StepUpMethod, Vote, VoteDecision
from portal.audit.models import AuditAction, AuditEvent
from tests.approvals.conftest import RENAME, executed_writes, kraken_name
from tests.conftest import make_staff

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("rename_kind"),
]


def _race(change_id: int, approvers: list) -> list[tuple[str, str]]:
    """Every approver votes at the same instant, each from its own thread and connection."""
    barrier = threading.Barrier(len(approvers))
    outcomes: list[tuple[str, str]] = []
    lock = threading.Lock()

    def one(actor) -> None:
        from django.db import connection

        try:
            barrier.wait(30)
            result = services.change_vote(
                change_id=change_id,
                actor=actor,
                decision=VoteDecision.APPROVE,
                step_up=StepUpMethod.TOTP,
            )
            outcome = (result.level, result.message)
        except services.ApprovalError as exc:
            outcome = ("refused", exc.message)
        except Exception as exc:  # reported to the test, which fails on it
            outcome = ("crashed", repr(exc))
        finally:
            connection.close()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=one, args=(actor,)) for actor in approvers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert len(outcomes) == len(approvers)
    assert not [o for o in outcomes if o[0] == "crashed"], outcomes
    return outcomes


def _request(prime_user, operator, quorum: int) -> ChangeRequest:
    change = services.change_request_create(
        kind=RENAME, target_id=prime_user, payload={"name": "Raced name"}, actor=operator
    ).change
    ChangeRequest.objects.filter(pk=change.pk).update(quorum=quorum)
    return change


def test_two_approvers_voting_at_the_same_instant_with_quorum_two_execute_once(
    prime_user, operator, prime_settings
):
    approvers = [make_staff(f"race.approver{i}", "Approver") for i in range(2)]
    change = _request(prime_user, operator, quorum=2)

    outcomes = _race(change.pk, approvers)

    assert len(executed_writes(prime_settings)) == 1, outcomes
    assert Vote.objects.filter(change=change).count() == 2
    change.refresh_from_db()
    assert change.state == RequestState.DONE
    assert kraken_name(prime_user) == "Raced name"
    assert AuditEvent.objects.filter(action=AuditAction.CHANGE_EXECUTED).count() == 1


def test_sixteen_concurrent_approvals_with_quorum_one_execute_once(
    prime_user, operator, prime_settings
):
    approvers = [make_staff(f"race.approver{i}", "Approver") for i in range(16)]
    change = _request(prime_user, operator, quorum=1)

    outcomes = _race(change.pk, approvers)

    assert len(executed_writes(prime_settings)) == 1, outcomes
    assert [o[0] for o in outcomes].count("success") == 1, outcomes
    assert {o[0] for o in outcomes} == {"success", "refused"}
    assert Vote.objects.filter(change=change).count() == 1
    change.refresh_from_db()
    assert change.state == RequestState.DONE
    assert AuditEvent.objects.filter(action=AuditAction.CHANGE_EXECUTED).count() == 1


def test_sixteen_concurrent_executions_of_one_approved_change_send_once(
    prime_user, operator, approver, prime_settings
):
    change = _request(prime_user, operator, quorum=2)
    services.change_vote(
        change_id=change.pk, actor=approver, decision=VoteDecision.APPROVE, step_up="totp"
    )
    ChangeRequest.objects.filter(pk=change.pk).update(state=RequestState.APPROVED)
    barrier = threading.Barrier(16)
    levels: list[str] = []

    def one() -> None:
        from django.db import connection

        try:
            barrier.wait(30)
            levels.append(services.change_execute(change_id=change.pk, actor=approver).level)
        finally:
            connection.close()

    threads = [threading.Thread(target=one) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)

    assert sorted(levels) == ["info"] * 15 + ["success"]
    assert len(executed_writes(prime_settings)) == 1
