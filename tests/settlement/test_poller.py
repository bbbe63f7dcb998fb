"""`manage.py prime_poll`: budget, backoff, status changes, expiry, sends, reconciliation, signals."""

from __future__ import annotations

import io
import queue
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from portal.approvals.models import RequestState
from portal.audit.models import AuditAction, AuditEvent
from portal.settlement import services
from portal.settlement.models import Batch, Leg
from portal.settlement.poller import Backoff, Poller, TokenBucket
from primeapi import PrimeClient
from tests.settlement.conftest import (
    TRADES,
    approve,
    child_environment,
    mirror_batch,
    open_request,
    request_leg,
)

ROOT = Path(__file__).resolve().parents[2]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeWallClock:
    """An aware wall clock that moves only when the test says so."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


# --- the budget and the backoff (no database, no Kraken) --------------------------------------


def test_the_bucket_allows_a_burst_then_the_rate():
    clock = FakeClock()
    bucket = TokenBucket(60, capacity=3, clock=clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now += 1.0  # 60 a minute = one a second
    assert bucket.take() and not bucket.take()
    clock.now += 100
    assert bucket.available == 3


def test_the_bucket_refuses_a_zero_budget():
    with pytest.raises(ValueError):
        TokenBucket(0)


def test_backoff_grows_is_capped_and_honours_retry_after():
    backoff = Backoff(base=2, cap=20)
    delays = [backoff.next_delay() for _ in range(8)]
    assert 1 <= delays[0] <= 2
    assert 2 <= delays[1] <= 4
    assert all(d <= 20 for d in delays)
    assert delays[-1] >= 10
    assert backoff.next_delay(at_least=45) == 45
    backoff.reset()
    assert backoff.next_delay() <= 2


# --- cycles against the sandbox ---------------------------------------------------------------


@pytest.mark.django_db
def test_a_cycle_follows_a_transfer_to_settled_and_audits_it_as_the_poller(
    kraken_batch, operator, approver, prime_settings
):
    leg = Leg.objects.select_related("batch").get(batch=kraken_batch, asset="BTC")
    change = request_leg(leg, operator)
    approve([change.pk], approver)
    prime_settings.control.complete_pending_transfers()
    poller = Poller(interval=5, budget_per_minute=30)
    report = poller.run_cycle()
    assert report.refreshed == 1 and report.settled == 1 and not report.errors
    leg.refresh_from_db()
    assert leg.status == "settled"
    changed = AuditEvent.objects.filter(
        action=AuditAction.LEG_STATUS_CHANGED, actor_label="system:prime_poll"
    )
    assert changed.filter(target_id=leg.audit_id).exists()
    assert "prime_poll cycle=1" in report.line(1.0, 5.0)


@pytest.mark.django_db
def test_a_cycle_expires_requests_past_their_deadline_on_its_own_clock(
    operator, approver, prime_settings
):
    leg = Leg.objects.get(batch=mirror_batch(), asset="BTC")
    change = request_leg(Leg.objects.select_related("batch").get(pk=leg.pk), operator)
    wall = FakeWallClock(timezone.now())
    poller = Poller(interval=5, budget_per_minute=30, now=wall)
    assert poller.run_cycle().expired == 0  # still within its deadline
    change.refresh_from_db()
    assert change.state == RequestState.PENDING
    wall.advance(change.expires_at - wall.now + timedelta(seconds=1))
    assert poller.run_cycle().expired == 1
    change.refresh_from_db()
    assert change.state == RequestState.EXPIRED
    expired = AuditEvent.objects.get(action=AuditAction.CHANGE_EXPIRED)
    assert expired.actor_label == "system:prime_poll"


@pytest.mark.django_db
def test_a_cycle_stays_within_the_budget(prime_settings):
    for _ in range(10):
        mirror_batch()  # unknown to Kraken: each refresh is one refused call
    prime_settings.control.clear_calls()
    poller = Poller(interval=5, budget_per_minute=12)  # a burst of 2
    report = poller.run_cycle()
    assert report.calls == 2
    assert report.skipped_for_budget == 9  # eight batches and the discovery list
    assert len(prime_settings.control.calls()) == 2
    assert len(report.errors) == 2 and "Unknown batch" in report.errors[0]


@pytest.mark.django_db
def test_a_rate_limit_ends_the_cycle_and_waits_as_kraken_asks(kraken_batch, prime_settings):
    prime_settings.control.inject_fault("throttled", "GetPrimeSettlementBatch", seconds=40)
    poller = Poller(interval=5, budget_per_minute=30)
    report = poller.run_cycle()
    assert report.errors == ["rate limited by Kraken"]
    assert 35 <= report.backoff <= 41
    assert report.calls == 1  # the discovery list was not tried after the refusal


@pytest.mark.django_db
def test_server_errors_and_dropped_connections_back_off_exponentially(kraken_batch, prime_settings):
    control = prime_settings.control
    control.inject_fault("http_500", "GetPrimeSettlementBatch", count=100)
    poller = Poller(interval=4, budget_per_minute=600)
    first = poller.run_cycle()
    assert first.errors and "unavailable" in first.errors[0]
    control.clear_faults()
    control.inject_fault("drop_after_execute", "GetPrimeSettlementBatch", count=100)
    second = poller.run_cycle()
    assert second.errors and "ConnectionDroppedError" in second.errors[0]
    assert poller.backoff.failures == 2
    assert 1 <= first.backoff <= 2 and 2 <= second.backoff <= 4
    control.clear_faults()
    healthy = poller.run_cycle()
    assert not healthy.errors and healthy.backoff == 0 and poller.backoff.failures == 0


@pytest.mark.django_db
def test_a_cycle_expires_stale_requests(operator, prime_settings):
    batch = mirror_batch()
    change = open_request(
        Leg.objects.select_related("batch").get(batch=batch, asset="BTC"),
        operator,
        expires_at=timezone.now() - timedelta(seconds=1),
    )
    report = Poller(interval=5, budget_per_minute=30).run_cycle()
    assert report.expired == 1
    change.refresh_from_db()
    assert change.state == RequestState.EXPIRED
    event = AuditEvent.objects.get(action=AuditAction.CHANGE_EXPIRED)
    assert event.actor_label == "system:prime_poll"


@pytest.mark.django_db
def test_a_cycle_reconciles_an_unknown_outcome(kraken_batch, operator, approver, prime_settings):
    client = PrimeClient(prime_settings.url, prime_settings.admin_key, prime_settings.admin_secret)
    transfer = client.settle_settlement_batch_asset(kraken_batch.prime_batch_id, "ETH").transfer
    change = open_request(
        Leg.objects.select_related("batch").get(batch=kraken_batch, asset="ETH"),
        operator,
        state=RequestState.OUTCOME_UNKNOWN,
        decided_at=timezone.now(),
        executed_at=timezone.now(),
    )
    report = Poller(interval=5, budget_per_minute=30).run_cycle()
    assert report.reconciled == 1
    change.refresh_from_db()
    assert change.state == RequestState.DONE and change.result["transfer_id"] == transfer.id
    event = AuditEvent.objects.get(action=AuditAction.CHANGE_RECONCILED)
    assert event.actor_label == "system:prime_poll"
    assert f"transfer {transfer.id}" in event.prime_response["note"]


@pytest.mark.django_db
def test_a_cycle_sends_an_approval_its_approver_left_unsent(
    kraken_batch, operator, approver, prime_settings
):
    change = open_request(
        Leg.objects.select_related("batch").get(batch=kraken_batch, asset="BTC"),
        operator,
        state=RequestState.APPROVED,
        decided_at=timezone.now() - timedelta(minutes=5),
    )
    report = Poller(interval=5, budget_per_minute=30).run_cycle()
    assert report.sent == 1
    change.refresh_from_db()
    assert change.state == RequestState.DONE
    assert len(prime_settings.control.calls(services.SETTLE, executed=True)) == 1
    Poller(interval=5, budget_per_minute=30).run_cycle()
    assert len(prime_settings.control.calls(services.SETTLE)) == 1


@pytest.mark.django_db
def test_a_cycle_discovers_batches_made_outside_the_portal(prime_settings):
    prime_settings.control.add_trades(TRADES)
    client = PrimeClient(prime_settings.url, prime_settings.admin_key, prime_settings.admin_secret)
    remote = client.create_settlement_batch("currency")
    poller = Poller(interval=5, budget_per_minute=30)
    first = poller.run_cycle()
    assert first.discovered == 1
    batch = Batch.objects.get(prime_batch_id=remote.id)
    assert batch.legs.count() == 3
    second = poller.run_cycle()  # refreshes it; no second list within the minute
    assert second.discovered == 0 and second.refreshed == 1 and second.calls == 1
    assert len(Batch.objects.get(pk=batch.pk).trade_ids) == 2


@pytest.mark.django_db
def test_a_final_batch_is_not_polled(prime_settings):
    mirror_batch(status="completed")
    prime_settings.control.clear_calls()
    report = Poller(interval=5, budget_per_minute=30, discover_every=3600).run_cycle()
    assert report.calls == 1  # only the discovery list
    assert [c["endpoint"] for c in prime_settings.control.calls()] == ["ListPrimeSettlementBatches"]


@pytest.mark.django_db
def test_the_command_runs_one_cycle(kraken_batch, prime_settings):
    out = io.StringIO()
    call_command("prime_poll", "--once", "--budget-per-minute", "10", stdout=out)
    # A budget of 10 a minute allows a burst of one call: the refresh, not the list.
    assert "prime_poll cycle=1 calls=1 refreshed=1 skipped_for_budget=1" in out.getvalue()


@pytest.mark.django_db
def test_the_command_by_hand_never_polls_beside_a_leading_worker(kraken_batch, prime_settings):
    """`prime_poll --once` takes the workers' leader lock: while a worker leads, it polls
    nothing and says who leads; once the lock is free it polls, from the shared budget."""
    from django.core.management.base import CommandError

    from portal.worker.leader import leader_lock
    from portal.worker.models import Leadership, PollBudget
    from portal.worker.runner import POLLER_ROLE

    worker = leader_lock(POLLER_ROLE)
    assert worker.acquire()
    Leadership.objects.create(role=POLLER_ROLE, holder="vm:4242", since=timezone.now())
    prime_settings.control.clear_calls()
    try:
        with pytest.raises(CommandError, match="led by vm:4242"):
            call_command("prime_poll", "--once", stdout=io.StringIO())
        assert prime_settings.control.calls() == []
    finally:
        worker.release()
    out = io.StringIO()
    call_command("prime_poll", "--once", "--budget-per-minute", "10", stdout=out)
    assert "prime_poll cycle=1 calls=1" in out.getvalue()
    assert PollBudget.objects.filter(name=POLLER_ROLE).exists()  # the workers' budget row


@pytest.mark.django_db(transaction=True)
def test_the_process_logs_each_cycle_and_stops_cleanly_on_sigterm(prime_settings):
    env = child_environment(prime_settings)
    process = subprocess.Popen(
        [sys.executable, "manage.py", "prime_poll", "--interval", "0.3"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    kept: list[str] = []
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stderr or ()])
    reader.start()
    try:
        # Wait for two logged cycles (not a fixed time), then ask the process to stop.
        deadline = time.monotonic() + 60
        while sum("prime_poll cycle=" in line for line in kept) < 2:
            try:
                kept.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                break  # the assertions below say what was missing
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        reader.join(timeout=30)
    while not lines.empty():
        kept.append(lines.get())
    err = "".join(kept)
    assert process.returncode == 0, err[-2000:]
    cycles = [line for line in err.splitlines() if "prime_poll cycle=" in line]
    assert len(cycles) >= 2
    assert "prime_poll stopped after" in err


@pytest.mark.django_db
def test_history_made_outside_the_portal_is_discovered_and_completed_once(prime_settings):
    control = prime_settings.control
    control.add_trades(TRADES)
    client = PrimeClient(prime_settings.url, prime_settings.admin_key, prime_settings.admin_secret)
    old = client.create_settlement_batch("currency")
    control.confirm_batch(old.id)
    for leg in old.legs:
        client.settle_settlement_batch_asset(old.id, leg.asset)
    control.complete_pending_transfers()
    poller = Poller(interval=5, budget_per_minute=60)
    first = poller.run_cycle()
    assert first.discovered == 1
    batch = Batch.objects.get(prime_batch_id=old.id)
    assert batch.is_final and batch.trade_ids == []
    second = poller.run_cycle()  # one Get for the trade ids
    assert second.refreshed == 1
    batch.refresh_from_db()
    assert len(batch.trade_ids) == 2
    third = poller.run_cycle()  # complete and final: never asked about again
    assert third.calls == 0


@pytest.mark.django_db
def test_an_approved_leg_waits_for_confirmation_and_the_poller_sends_it_once(
    prime_settings, operator, approver
):
    prime_settings.control.add_trades(TRADES)
    batch = services.batch_create(asset_kind="currency", actor=operator)
    change = request_leg(
        Leg.objects.select_related("batch").get(batch=batch, asset="BTC"), operator
    )
    (approved,) = approve([change.pk], approver)
    assert approved.level == "info"
    poller = Poller(interval=5, budget_per_minute=600)
    assert poller.run_cycle().sent == 0  # Kraken has not confirmed the batch yet
    change.refresh_from_db()
    assert change.state == RequestState.APPROVED
    assert prime_settings.control.calls(services.SETTLE, executed=None) == []

    prime_settings.control.confirm_batch(batch.prime_batch_id)
    assert poller.run_cycle().sent == 1
    assert poller.run_cycle().sent == 0
    change.refresh_from_db()
    assert change.state == RequestState.DONE
    executed = AuditEvent.objects.get(action=AuditAction.CHANGE_EXECUTED)
    assert executed.actor_label == "system:prime_poll"
    assert len(prime_settings.control.calls(services.SETTLE, executed=None)) == 1
