"""Three real worker processes on PostgreSQL: one leader polls, `kill -9` moves the lead,
the queue runs each scheduled job once, and Kraken never sees more than the shared budget."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection
from django.utils import timezone

BASE_DIR = Path(__file__).resolve().parents[2]
BUDGET_PER_MINUTE = 12  # capacity: max(1, 12 / 6) = 2 requests at once
CAPACITY = 2
TAKEOVER_LIMIT = 15.0
POLLED = ("GetPrimeSettlementBatch", "ListPrimeSettlementBatches")


def _database_url() -> str:
    s = connection.settings_dict
    auth = quote(s["USER"] or "")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"])
    return f"postgresql://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def _leadership():
    from portal.worker.models import Leadership
    from portal.worker.runner import POLLER_ROLE

    return Leadership.objects.filter(role=POLLER_ROLE).first()


def _wait_for(predicate, timeout: float, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(step)
    return None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_three_workers_one_poller_failover_within_15s_jobs_once_budget_shared(
    prime_settings, tmp_path
):
    from django_q.models import Schedule, Task

    from portal.settlement.models import Batch
    from portal.worker.models import JobRun
    from portal.worker.schedules import ensure_schedules

    # The schedules come from a migration; an earlier test's flush may have emptied them.
    ensure_schedules(Schedule)
    # A batch the poller wants to refresh on every cycle: only the budget holds it back.
    Batch.objects.create(prime_batch_id="WORKER-TEST-BATCH", created_at=timezone.now())
    sandbox = prime_settings
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PRIME_", "DATABASE_URL", "DJANGO_SETTINGS_MODULE"))
    }
    env.update(
        DATABASE_URL=_database_url(),
        PRIME_API_URL=sandbox.url,
        PRIME_API_KEY=sandbox.admin_key,
        PRIME_API_SECRET=sandbox.admin_secret,
        PRIME_POLL_INTERVAL_SECONDS="1",
        PRIME_POLL_BUDGET_PER_MINUTE=str(BUDGET_PER_MINUTE),
        WORKER_LEADER_RETRY_SECONDS="2",
        WORKER_PROCESSES="1",
        PORTAL_VAR_DIR=str(tmp_path),
        PORTAL_LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    sandbox.control.clear_calls()
    started = time.time()
    logs = [tmp_path / f"worker{i}.log" for i in range(3)]
    workers = [
        subprocess.Popen(
            [sys.executable, "manage.py", "worker"],
            cwd=BASE_DIR,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the test can clean up each worker's whole group
        )
        for log in logs
    ]
    by_pid = {w.pid: w for w in workers}
    try:
        first = _wait_for(lambda: (lead := _leadership()) and lead.cycles >= 2 and lead, 45)
        assert first is not None, [log.read_text()[-1500:] for log in logs]
        leader_pid = int(first.holder.rsplit(":", 1)[1])
        assert leader_pid in by_pid
        time.sleep(8)
        polling = [log for log in logs if "leader=" in log.read_text()]
        assert len(polling) == 1, "exactly one worker polls Kraken"

        killed_at = time.time()
        os.kill(leader_pid, signal.SIGKILL)
        by_pid[leader_pid].wait(timeout=10)
        taken = _wait_for(
            lambda: (
                (lead := _leadership())
                and lead.holder != first.holder
                and lead.last_cycle_at is not None
                and lead.last_cycle_at.timestamp() > killed_at
                and lead
            ),
            TAKEOVER_LIMIT + 10,
        )
        assert taken is not None, "nobody took over"
        takeover = taken.last_cycle_at.timestamp() - killed_at
        print(f"\nfailover: a new leader polled {takeover:.1f} s after kill -9 of the old one")
        assert takeover < TAKEOVER_LIMIT

        # Let the whole run last a minute, then stop the survivors politely.
        time.sleep(max(0.0, started + 62 - time.time()))
        elapsed = time.time() - started
        survivors = [w for w in workers if w.pid != leader_pid]
        for w in survivors:
            w.send_signal(signal.SIGTERM)
        for w in survivors:
            assert w.wait(timeout=60) == 0, logs
    finally:
        for w in workers:
            if w.poll() is None:
                os.killpg(w.pid, signal.SIGKILL)
                w.wait(timeout=10)

    calls = [c for c in sandbox.control.calls() if c["endpoint"] in POLLED]
    allowed = CAPACITY + BUDGET_PER_MINUTE * elapsed / 60
    print(f"Kraken calls by the pollers: {len(calls)} in {elapsed:.0f} s (budget {allowed:.1f})")
    assert 0 < len(calls) <= allowed

    text = "".join(log.read_text() for log in logs)
    assert "already ran; skipped" not in text  # the queue never handed a job out twice
    runs = list(JobRun.objects.values_list("job", "slot"))
    assert "expire_change_requests" in {job for job, _ in runs}, text[-3000:]
    assert len(runs) == len(set(runs))
    expiry = Task.objects.filter(func="portal.worker.jobs.expire_change_requests")
    assert expiry.count() == len([r for r in runs if r[0] == "expire_change_requests"])
