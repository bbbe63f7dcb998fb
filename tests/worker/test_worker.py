"""The worker's parts on either database: leader locks, the shared budget, the job ledger."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from portal.worker.budget import SharedTokenBucket
from portal.worker.leader import FileLeaderLock
from portal.worker.ledger import intended_time, run_once
from portal.worker.models import JobRun, Leadership
from portal.worker.runner import POLLER_ROLE, lead_or_wait


def test_only_one_file_lock_leads_until_it_lets_go(tmp_path):
    first, second = FileLeaderLock("poller", tmp_path), FileLeaderLock("poller", tmp_path)
    assert first.acquire()
    assert not second.acquire()
    first.release()
    assert second.acquire()
    second.release()


def test_the_budget_is_shared_by_every_bucket_on_the_same_row(db):
    clock = [1000.0]
    a = SharedTokenBucket("poller", 6, capacity=2, clock=lambda: clock[0])
    b = SharedTokenBucket("poller", 6, capacity=2, clock=lambda: clock[0])
    assert [a.take(), b.take(), a.take(), b.take()] == [True, True, False, False]
    clock[0] += 10  # 6 a minute: one more after 10 s, for whichever asks first
    assert b.take() and not a.take()


def test_a_job_runs_once_per_slot(db):
    calls = []
    at = datetime(2026, 1, 1, 12, 0, 10, tzinfo=UTC)
    assert run_once("expire", 60, lambda: calls.append(1), now=at)
    assert not run_once("expire", 60, lambda: calls.append(2), now=at + timedelta(seconds=40))
    assert run_once("expire", 60, lambda: calls.append(3), now=at + timedelta(seconds=60))
    assert calls == [1, 3]
    assert JobRun.objects.filter(job="expire").count() == 2


def test_slots_follow_the_intended_time_not_the_moment_the_queue_ran_the_job(db):
    """A one-minute schedule anchored at :41 whose runs the queue's 30-second scheduler
    starts at 12:30:13 and 12:30:43: both are runs of their own minute and both run;
    the same intended time handed out a second time is skipped."""
    calls = []
    first, second = "2026-01-01T12:29:41.600000+00:00", "2026-01-01T12:30:41.600000+00:00"
    assert run_once("expire", 60, lambda: calls.append(1), now=intended_time(first))
    assert run_once("expire", 60, lambda: calls.append(2), now=intended_time(second))
    assert not run_once("expire", 60, lambda: calls.append(3), now=intended_time(second))
    assert calls == [1, 2]
    assert sorted(JobRun.objects.values_list("slot", flat=True)) == [
        "2026-01-01T12:29:00",
        "2026-01-01T12:30:00",
    ]


def test_the_queue_hands_each_scheduled_job_its_intended_time(db, monkeypatch):
    """django-q2's own scheduler, run in-process (sync), passes `intended` to the job."""
    from django_q.conf import Conf
    from django_q.models import Schedule
    from django_q.scheduler import scheduler

    from portal.worker.schedules import INTENDED_KWARG, ensure_schedules

    Schedule.objects.all().delete()
    ensure_schedules(Schedule)
    assert set(Schedule.objects.values_list("intended_date_kwarg", flat=True)) == {INTENDED_KWARG}
    meant = datetime(2026, 1, 1, 12, 29, 41, 600000, tzinfo=UTC)
    Schedule.objects.filter(name="expire change requests").update(next_run=meant)
    Schedule.objects.exclude(name="expire change requests").update(
        next_run=datetime(2099, 1, 1, tzinfo=UTC)
    )
    monkeypatch.setattr(Conf, "SYNC", True)
    scheduler()
    assert list(JobRun.objects.values_list("job", "slot")) == [
        ("expire_change_requests", "2026-01-01T12:29:00")
    ]


class _Lock:
    def __init__(self, grants: int) -> None:
        self.grants, self.checks, self.released = grants, 0, 0

    def acquire(self) -> bool:
        return True

    def held(self) -> bool:
        self.checks += 1
        return self.checks != self.grants + 1  # lost once, after `grants` cycles

    def release(self) -> None:
        self.released += 1


class _Report:
    backoff = 0.0

    def line(self, *args) -> str:
        return "cycle"


class _Poller:
    interval = 0.01

    def __init__(self, stop: threading.Event, after: int) -> None:
        self.cycles, self.stop, self.after = 0, stop, after
        self.bucket = SharedTokenBucket(POLLER_ROLE, 60)

    def run_cycle(self):
        self.cycles += 1
        if self.cycles >= self.after:
            self.stop.set()
        return _Report()


@pytest.mark.django_db(transaction=True)
def test_the_leader_polls_only_while_it_holds_the_lock():
    stop = threading.Event()
    lock = _Lock(grants=3)
    pollers = []

    def factory():
        pollers.append(_Poller(stop, after=5))
        return pollers[-1]

    lead_or_wait(stop, lock=lock, poller_factory=factory, retry_every=0.01, identity="w1")
    # Lost the lock after 3 cycles, took it again, polled until stopped.
    assert [p.cycles for p in pollers] == [3, 5]
    assert lock.released >= 2
    assert Leadership.objects.get(role=POLLER_ROLE).holder == "w1"
