"""Four OS processes share one Prime key through get_prime_client(): no nonce ever trips."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

BASE_DIR = Path(__file__).resolve().parents[2]
PROCESSES = 4
CALLS_EACH = 50


def _database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = quote(s["USER"] or "")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"])
    return f"postgresql://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def _run_workers(sandbox) -> list[dict]:
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
        PORTAL_LOG_LEVEL="WARNING",
    )
    start_at = time.time() + 3
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.connection.nonce_worker", str(CALLS_EACH), str(start_at)],
            cwd=BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def _check(sandbox, results: list[dict]) -> None:
    assert [r["errors"] for r in results] == [[]] * PROCESSES
    assert sum(r["ok"] for r in results) == PROCESSES * CALLS_EACH
    calls = [
        c
        for c in sandbox.control.calls(endpoint="ListPrimeApiUsers")
        if c["api_key"] == sandbox.admin_key
    ]
    accepted = [int(c["nonce"]) for c in sorted(calls, key=lambda c: c["seq"]) if c["executed"]]
    assert len(accepted) == PROCESSES * CALLS_EACH
    assert all(a < b for a, b in itertools.pairwise(accepted))
    # The gate keeps nonces in order across processes, so Kraken never even refuses one
    # (refusals would count towards a temporary lockout of the key).
    refused = [c for c in calls if "EAPI:Invalid nonce" in (c["error"] or [])]
    assert refused == []


@pytest.mark.django_db(transaction=True)
def test_four_processes_never_trip_the_nonce_on_sqlite_or_the_default_database(fresh_sandbox):
    fresh_sandbox.control.clear_calls()
    results = _run_workers(fresh_sandbox)
    _check(fresh_sandbox, results)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_four_processes_never_trip_the_nonce_on_postgresql(fresh_sandbox):
    assert connection.vendor == "postgresql"
    fresh_sandbox.control.clear_calls()
    results = _run_workers(fresh_sandbox)
    _check(fresh_sandbox, results)
