"""The benchmark harness itself: one quick run end to end, and its pieces."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from bench import harness, load, report

ROOT = Path(__file__).resolve().parents[2]


def test_a_quick_run_measures_every_page_in_every_mode_and_writes_the_results(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "bench.harness", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads((tmp_path / "quick.json").read_text())
    measured = {(s["mode"], s["name"]) for s in results["load"]["scenarios"]}
    pages = (*harness.PORTAL_PAGES, *harness.ANCHOR_PAGES)
    assert measured == {(mode, page) for mode in harness.MODES for page in pages}
    for scenario in results["load"]["scenarios"]:
        assert scenario["requests"] > 0, scenario["name"]
        assert scenario["unexpected_statuses"] == {}, scenario["name"]
        assert scenario["queries"]["min"] > 0, scenario["name"]
        assert scenario["latency_ms"]["p95"] >= scenario["latency_ms"]["p50"] > 0
    assert len(results["workers"]) == 4
    assert all(w["peak_rss_mib"] > 0 for w in results["workers"])
    assert results["signing"]["signatures_agree"] is True
    assert results["verify_audit"]["events"] >= 2_000
    assert results["machine"]["nproc"] >= 1
    assert results["command"].startswith("bench/run --quick")
    targets = {t["target"] for t in results["targets"]}
    assert {f"{p} p95 < 50 ms" for p in harness.PORTAL_PAGES} <= targets
    text = (tmp_path / "quick.md").read_text()
    assert "## Pages" in text and "## Targets" in text and "users_search" in text


def test_percentiles_are_nearest_rank():
    values = [float(n) for n in range(1, 101)]
    assert load.percentile(values, 50) == 50
    assert load.percentile(values, 95) == 95
    assert load.percentile(values, 99) == 99
    assert load.percentile([7.0], 95) == 7.0
    assert load.percentile([], 95) is None


@pytest.mark.parametrize("name", ["postgres", "template1", "test_portal", "bad-name"])
def test_the_harness_never_drops_a_database_that_is_not_its_own(name):
    with pytest.raises(harness.BenchError, match="refusing"):
        harness.prepare_postgres(f"postgresql://postgres@127.0.0.1:5432/{name}", reuse=False)


@pytest.mark.django_db
def test_the_bench_middleware_reports_every_query_of_the_request(client, viewer, settings):
    settings.MIDDLEWARE = ["bench.middleware.QueryCountMiddleware", *settings.MIDDLEWARE]
    client.force_login(viewer)
    client.get(reverse("users:list"))
    with CaptureQueriesContext(connection) as captured:
        response = client.get(reverse("users:list"))
    executed = [q for q in captured.captured_queries if q["sql"] not in ("BEGIN", "COMMIT")]
    assert int(response.headers["X-Bench-Queries"]) == len(executed)
    assert float(response.headers["X-Bench-Ms"]) >= float(response.headers["X-Bench-DB-Ms"])


@pytest.mark.django_db
def test_the_bench_urls_serve_the_admin_changelist_over_audit_events(client, settings):
    from django.contrib.auth import get_user_model

    settings.ROOT_URLCONF = "bench.urls"
    boss = get_user_model().objects.create_superuser(username="bench.boss", password="x" * 20)
    client.force_login(boss)
    response = client.get(reverse("bench_admin:audit_auditevent_changelist"))
    assert response.status_code == 200


def _scenario(mode: str, name: str, p95: float) -> dict:
    return {
        "mode": mode,
        "name": name,
        "requests": 10,
        "latency_ms": {"p50": p95 / 2, "p95": p95, "p99": p95, "max": p95, "mean": p95},
        "unexpected_statuses": {},
        "server_ms": {"p50": 1.0, "p95": 2.0},
        "db_ms": {"p50": 0.5, "p95": 1.0},
        "queries": {"min": 9, "median": 9.0, "max": 9},
        "rps": 100.0,
        "bytes_median": 2048.0,
        "example_url": "/x/",
        "concurrency": 32,
        "think_s": 1.0,
    }


def test_targets_are_judged_in_the_paced_mode_with_the_others_noted():
    results = {
        "plan_missing": {},
        "load": {
            "scenarios": [
                _scenario("paced", "users_list", 20.0),
                _scenario("saturation", "users_list", 200.0),
                _scenario("paced", "audit_unfiltered", 10.0),
                _scenario("paced", "admin_unfiltered", 250.0),
            ]
        },
        "signing": {"prepare_ratio": 0.6},
        "verify_audit": {"events_per_s": 250_000},
    }
    targets = {t["target"]: t for t in harness.evaluate(results)}
    assert targets["users_list p95 < 50 ms"]["met"] is True
    assert "saturation: 200.0 ms" in targets["users_list p95 < 50 ms"]["note"]
    assert targets["batch_page p95 < 50 ms"]["met"] is False
    assert targets["admin changelist p95 / audit_unfiltered p95 >= 20"]["value"] == 25.0
    assert targets["request preparation <= 0.5 x python-kraken-sdk"]["met"] is False
    assert targets["verify_audit >= 200,000 events/s"]["met"] is True


def test_the_markdown_report_has_a_table_per_mode():
    results = {
        "name": "t",
        "started_at": "2026-01-01T00:00:00+00:00",
        "command": "bench/run",
        "git": {"commit": "abc", "uncommitted_changes": False},
        "machine": {"nproc": 2, "cpu": "cpu", "memory_gib": 1.0, "python": "3.11"},
        "database": "PostgreSQL",
        "database_url": "127.0.0.1:5432/portal_bench",
        "settings": {
            "concurrency": 32,
            "duration_s": 20,
            "warmup_s": 3,
            "think_s": 1.0,
            "poll_interval_s": 3.0,
            "modes": ["paced", "saturation"],
            "gunicorn": {"workers": 4, "worker_class": "sync", "threads": 1},
        },
        "load_average": {"start": [0.1, 0.2, 0.3]},
        "load": {
            "sign_in_s": 1.0,
            "scenarios": [
                _scenario("paced", "users_list", 20.0),
                _scenario("saturation", "users_list", 200.0),
            ],
        },
        "targets": [{"target": "users_list p95 < 50 ms", "value": 20.0, "met": True}],
    }
    text = report.render(results)
    assert "### paced: 32 client(s)" in text
    assert "### saturation: 32 client(s)" in text
    assert "| users_list | `/x/` | 10.0 | 20.0 |" in text
    assert "| users_list p95 < 50 ms | 20.0 | yes |" in text
