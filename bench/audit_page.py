"""Time the audit page (unfiltered and with each filter) against the configured database.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/audit_bench \\
        .venv/bin/python bench/audit_page.py --requests 50 [--explain]

Requests go through the Django test client (URL routing, middleware, sign-in,
selector, template), so the figures are the server's time per page without the
network. Prints a Markdown table of p50/p95/max per scenario; --explain also
prints PostgreSQL's EXPLAIN ANALYZE of each scenario's main query.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402

from portal.audit.models import AuditEvent  # noqa: E402
from portal.audit.verify import read_head  # noqa: E402


def _pick(**filters) -> AuditEvent:
    """An event from the middle of the trail matching filters (for realistic parameters)."""
    head = read_head()[0]
    return AuditEvent.objects.filter(seq__lte=head // 2, **filters).order_by("-seq").first()


def scenarios() -> list[tuple[str, dict[str, str]]]:
    head = read_head()[0]
    key = _pick(target_type="key")
    leg = _pick(target_type="leg")
    person = _pick(actor_label__contains=".")
    middle = AuditEvent.objects.get(seq=head // 2).occurred_at
    week_start = middle.strftime("%Y-%m-%dT%H:%M")
    week_end = (middle + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M")
    oldest = AuditEvent.objects.get(seq=1).occurred_at
    first_week = oldest.strftime("%Y-%m-%dT%H:%M")
    first_week_end = (oldest + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M")
    return [
        ("unfiltered, newest page", {}),
        ("unfiltered, page deep in the trail (older=head/2)", {"older": str(head // 2)}),
        ("actor (one staff member)", {"actor": person.actor_label}),
        ("actor (system:prime_poll)", {"actor": "system:prime_poll"}),
        ("action (key_issued)", {"action": "key_issued"}),
        ("action (leg_rejected, rare)", {"action": "leg_rejected"}),
        ("target type + id (one key)", {"target_type": "key", "target_id": key.target_id}),
        ("target type + id (one leg)", {"target_type": "leg", "target_id": leg.target_id}),
        ("target id without type", {"target_id": key.target_id}),
        ("target type only (batch)", {"target_type": "batch"}),
        ("outcome (unknown, 1%)", {"outcome": "unknown"}),
        ("outcome (failed)", {"outcome": "failed"}),
        ("time range (one week, mid-trail)", {"since": week_start, "until": week_end}),
        ("free text, rare (5 chars of a key id)", {"q": key.target_id[3:8].lower()}),
        ("free text, common ('poll')", {"q": "poll"}),
        (
            "actor + outcome + week",
            {
                "actor": person.actor_label,
                "outcome": "succeeded",
                "since": week_start,
                "until": week_end,
            },
        ),
        (
            "action + outcome, rare together (key_issued, unknown)",
            {"action": "key_issued", "outcome": "unknown"},
        ),
        ("target type + outcome (batch, unknown)", {"target_type": "batch", "outcome": "unknown"}),
        ("free text, 2 characters (not applied: needs 3)", {"q": "zq"}),
        ("free text, 3 letters ('qxq')", {"q": "qxq"}),
        ("free text, punctuation (not applied)", {"q": "a.b"}),
        ("free text, no match", {"q": "no-such-thing"}),
        (
            "first week of the trail, common filter",
            {"since": first_week, "until": first_week_end, "outcome": "succeeded"},
        ),
        ("htmx fragment, unfiltered", {"__htmx": "1"}),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--explain", action="store_true")
    parser.add_argument(
        "--export", action="store_true", help="also stream the unfiltered CSV and JSONL exports"
    )
    args = parser.parse_args()
    setup_test_environment()
    user, _ = get_user_model().objects.get_or_create(username="bench.viewer")
    from django.contrib.auth.models import Group

    from portal.staff.roles import ensure_roles

    ensure_roles()
    user.groups.add(Group.objects.get(name="Viewer"))
    client = Client()
    client.force_login(user)
    head = read_head()
    print(
        f"Audit events: {head[0]:,} (head #{head[0]}), database: {connection.vendor}, "
        f"{args.requests} requests per scenario\n"
    )
    print("| scenario | rows | p50 ms | p95 ms | max ms | queries |")
    print("|---|---:|---:|---:|---:|---:|")
    explains = []
    for name, params in scenarios():
        params = dict(params)
        headers = {"HX-Request": "true"} if params.pop("__htmx", None) else {}
        response = client.get("/audit/", params, headers=headers)  # warm-up
        assert response.status_code == 200, (name, response.status_code)
        page = response.context["page"] if response.context else None
        rows = len(page.events) if page else response.content.count(b'<tr id="event-')
        timings = []
        for _ in range(args.requests):
            started = time.perf_counter()
            response = client.get("/audit/", params, headers=headers)
            timings.append((time.perf_counter() - started) * 1000)
        with CaptureQueriesContext(connection) as queries:
            client.get("/audit/", params, headers=headers)
        timings.sort()
        p95 = timings[max(0, round(0.95 * len(timings)) - 1)]
        print(
            f"| {name} | {rows} | {statistics.median(timings):.1f} | {p95:.1f} | "
            f"{timings[-1]:.1f} | {len(queries)} |"
        )
        main_query = next(
            q["sql"]
            for q in queries.captured_queries
            if 'FROM "audit_auditevent"' in q["sql"] and "LIMIT 51" in q["sql"]
        )
        explains.append((name, main_query))
    if args.export:
        print("\n| export through the web view | rows | MB | seconds | rows/s | peak RSS MB |")
        print("|---|---:|---:|---:|---:|---:|")
        for fmt in ("csv", "jsonl"):
            started = time.perf_counter()
            response = client.get("/audit/export/", {"format": fmt})
            size = lines = 0
            for piece in response.streaming_content:  # consumed and dropped: constant memory
                size += len(piece)
                lines += piece.count(b"\n")
            seconds = time.perf_counter() - started
            rows = lines - (2 if fmt == "csv" else 1)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(
                f"| {fmt} | {rows:,} | {size / 1e6:.0f} | {seconds:.1f} | "
                f"{rows / seconds:,.0f} | {peak:.0f} |"
            )
    if args.explain and connection.vendor == "postgresql":
        for name, sql in explains:
            with connection.cursor() as cursor:
                cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}")
                plan = "\n".join(row[0] for row in cursor.fetchall())
            print(f"\n### {name}\n\n```\n{sql}\n\n{plan}\n```")


if __name__ == "__main__":
    main()
