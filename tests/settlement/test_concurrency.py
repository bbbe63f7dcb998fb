"""Exactly once under real concurrency: threads and OS processes on PostgreSQL row locks."""

from __future__ import annotations

import multiprocessing
import threading

import pytest

from portal.actors import SystemActor
from portal.approvals import messages as approvals_messages
from portal.approvals import services as approvals
from portal.approvals.models import ChangeRequest, RequestState, StepUpMethod
from portal.audit.models import AuditAction, AuditEvent
from portal.settlement import services
from portal.settlement.models import Leg
from tests.conftest import make_staff
from tests.settlement import concurrent_child
from tests.settlement.conftest import child_environment, settle_calls

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 16
PROCESSES = 4
THREADS_PER_PROCESS = 2


def _race(
    prime_settings, action: str, object_id: int, actors: list, *, refresh_batch: str = ""
) -> list[tuple]:
    """Run `action` from THREADS threads here and PROCESSES spawned processes, all at once.

    With `refresh_batch`, another thread refreshes that batch from Kraken in a loop
    meanwhile, as the poller would (its row locks meet the senders').
    """
    ctx = multiprocessing.get_context("spawn")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    env = child_environment(prime_settings)
    ids = [actor.pk for actor in actors]
    processes = [
        ctx.Process(
            target=concurrent_child.run_calls,
            args=(
                env,
                action,
                object_id,
                [ids[(p + t) % len(ids)] for t in range(THREADS_PER_PROCESS)],
                ready,
                go,
                results,
            ),
        )
        for p in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get(timeout=60)  # every child has Django set up and its threads waiting

    leg = Leg.objects.select_related("batch").get(pk=object_id) if action == "request" else None
    local: list[tuple] = []
    lock = threading.Lock()

    def one(actor) -> None:
        from django.db import connection

        go.wait(30)
        try:
            if action == "approve":
                (result,) = services.legs_approve(
                    change_ids=[object_id], actor=actor, step_up=StepUpMethod.TOTP
                )
                outcome = ("thread", threading.get_ident(), result.level, result.message)
            elif action == "reconcile":
                done = approvals.change_reconcile(change_id=object_id, actor=actor)
                outcome = ("thread", threading.get_ident(), done.level, done.message)
            else:
                change = services.leg_request(leg=leg, actor=actor).change
                outcome = ("thread", threading.get_ident(), "success", f"request {change.pk}")
        except approvals.ApprovalError as exc:
            outcome = ("thread", threading.get_ident(), "refused", exc.message)
        except services.SettlementError as exc:
            outcome = ("thread", threading.get_ident(), "refused", str(exc))
        except Exception as exc:
            outcome = ("thread", threading.get_ident(), "crashed", repr(exc))
        finally:
            connection.close()
        with lock:
            local.append(outcome)

    refreshing = threading.Event()
    refresh_errors: list[BaseException] = []

    def poll_meanwhile() -> None:
        from django.db import connection

        go.wait(30)
        try:
            while not refreshing.is_set():
                services.batch_refresh(prime_batch_id=refresh_batch, actor=SystemActor.POLLER)
        except BaseException as exc:
            refresh_errors.append(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=one, args=(actors[i % len(actors)],)) for i in range(THREADS)
    ]
    poller = threading.Thread(target=poll_meanwhile) if refresh_batch else None
    for thread in [*threads, *([poller] if poller else [])]:
        thread.start()
    go.set()
    for thread in threads:
        thread.join(90)
    for process in processes:
        process.join(90)
        assert process.exitcode == 0
    if poller is not None:
        refreshing.set()
        poller.join(60)
        assert not refresh_errors, refresh_errors
    remote = [results.get(timeout=5) for _ in range(PROCESSES * THREADS_PER_PROCESS)]
    outcomes = local + remote
    assert len(outcomes) == THREADS + PROCESSES * THREADS_PER_PROCESS
    assert not [o for o in outcomes if o[2] == "crashed"], outcomes
    return outcomes


def test_concurrent_approvals_from_threads_and_processes_while_polling_settle_once(
    kraken_batch, operator, approver, second_approver, prime_settings
):
    third = make_staff("cory.approver", "Approver")
    leg = Leg.objects.select_related("batch").get(batch=kraken_batch, asset="BTC")
    change = services.leg_request(leg=leg, actor=operator).change

    outcomes = _race(
        prime_settings,
        "approve",
        change.pk,
        [approver, second_approver, third],
        refresh_batch=kraken_batch.prime_batch_id,
    )

    sent = [o for o in outcomes if o[2] == "success"]
    assert len(sent) == 1, outcomes
    assert sent[0][3] == approvals_messages.APPROVED_AND_DONE
    # Every other vote found the request no longer pending (or its voter had voted).
    assert {o[2] for o in outcomes} == {"success", "error"}
    assert {o[0] for o in outcomes} == {"thread", "process"}
    assert len(settle_calls(prime_settings, executed=None)) == 1
    change.refresh_from_db()
    assert change.state == RequestState.DONE
    assert AuditEvent.objects.filter(action=AuditAction.CHANGE_VOTE_APPROVED).count() == 1
    assert AuditEvent.objects.filter(action=AuditAction.CHANGE_EXECUTED).count() == 1
    assert AuditEvent.objects.filter(action=AuditAction.LEG_SUBMITTED).count() == 1


def test_concurrent_requests_of_one_leg_make_exactly_one_request(
    kraken_batch, operator, prime_settings
):
    other = make_staff("olive.operator", "Operator")
    leg = Leg.objects.select_related("batch").get(batch=kraken_batch, asset="ETH")

    outcomes = _race(prime_settings, "request", leg.pk, [operator, other])

    assert len([o for o in outcomes if o[2] == "success"]) == 1, outcomes
    assert {o[2] for o in outcomes} == {"success", "refused"}
    assert ChangeRequest.objects.filter(target_id=leg.audit_id).count() == 1
    assert AuditEvent.objects.filter(action=AuditAction.CHANGE_REQUESTED).count() == 1


def test_concurrent_reconciliations_after_an_unknown_outcome_never_resend(
    kraken_batch, operator, approver, second_approver, prime_settings, settings
):
    settings.SETTLEMENT_RECONCILE_GRACE_SECONDS = 3600
    prime_settings.control.inject_fault("drop_after_execute", services.SETTLE)
    prime_settings.control.inject_fault("http_500", services.GET_BATCH, count=20)
    leg = Leg.objects.select_related("batch").get(batch=kraken_batch, asset="USD")
    change = services.leg_request(leg=leg, actor=operator).change
    (_first,) = services.legs_approve(
        change_ids=[change.pk], actor=approver, step_up=StepUpMethod.TOTP
    )
    change.refresh_from_db()
    assert change.state == RequestState.OUTCOME_UNKNOWN
    prime_settings.control.clear_faults()

    approvals_again = _race(prime_settings, "approve", change.pk, [approver, second_approver])
    assert {o[2] for o in approvals_again} == {"error"}, approvals_again
    outcomes = _race(prime_settings, "reconcile", change.pk, [approver, second_approver])

    assert len([o for o in outcomes if o[2] == "success"]) == 1, outcomes
    assert len(settle_calls(prime_settings, executed=None)) == 1
    change.refresh_from_db()
    assert change.state == RequestState.DONE
