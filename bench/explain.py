"""Why is a page slow? Its queries, their times and PostgreSQL's plan, one request at a time.

    DJANGO_SETTINGS_MODULE=bench.settings \
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/portal_bench \
        .venv/bin/python -m bench.explain [PAGE ...] [--repeat N] [--analyze]

PAGE is a scenario name of the bench (users_list, batch_page, audit_filtered, ...; all
when none given). Uses the seeded bench database and its manifest
(var/bench/<database>-manifest.json), Django's test client signed in as the bench
viewer (or the admin for the admin anchor), no server, no concurrency: this is the
page's own cost. For each page: the median time of the request, of its SQL, and each
query with its median time; with --analyze, EXPLAIN ANALYZE of the slowest query.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--analyze", action="store_true", help="EXPLAIN ANALYZE the slowest")
    parser.add_argument("--manifest", help="default: var/bench/<database>-manifest.json")
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="also run N requests of each page under cProfile and print where the time goes",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    os.environ.setdefault("DJANGO_DEBUG", "false")
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    name = settings.DATABASES["default"]["NAME"]
    manifest_path = Path(
        args.manifest or ROOT / "var" / "bench" / f"{Path(name).name}-manifest.json"
    )
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    staff = get_user_model().objects
    clients = {}
    for role in ("viewer", "admin"):
        client = Client()
        client.force_login(staff.get(username=manifest[role]))
        clients[role] = client
    urls = manifest["urls"]
    for page in args.pages or list(urls):
        client = clients["admin" if page.startswith("admin") else "viewer"]
        headers = {"HTTP_HX_REQUEST": "true"} if page in ("users_search", "batch_live") else {}
        totals, sql_totals, per_query = [], [], {}
        for n in range(args.repeat):
            url = urls[page][n % len(urls[page])]
            timed: list[tuple[str, object, float]] = []

            def timer(execute, sql, params, many, context, timed=timed):
                started = time.perf_counter()
                try:
                    return execute(sql, params, many, context)
                finally:
                    timed.append((sql, params, (time.perf_counter() - started) * 1000))

            # Captures BEGIN/COMMIT too (they bypass execute wrappers), at 1 ms resolution.
            with CaptureQueriesContext(connection) as captured, connection.execute_wrapper(timer):
                started = time.perf_counter()
                response = client.get(url, **headers)
                totals.append((time.perf_counter() - started) * 1000)
            assert response.status_code in (200, 286), (url, response.status_code)
            control = [q for q in captured.captured_queries if q["sql"] in _CONTROL]
            sql_totals.append(sum(ms for *_, ms in timed))
            for index, (sql, params, ms) in enumerate(timed):
                entry = per_query.setdefault(index, {"sql": sql, "params": params, "ms": []})
                entry["ms"].append(ms)
            per_query.setdefault("control", {"ms": []})["ms"].append(
                sum(float(q["time"]) for q in control) * 1000
            )
            per_query["control"]["sql"] = " + ".join(q["sql"] for q in control) or "none"
        control = per_query.pop("control")
        print(
            f"\n== {page}  {urls[page][0]}\n   request median {statistics.median(totals):.1f} ms, "
            f"SQL median {statistics.median(sql_totals):.1f} ms in {len(per_query)} statements, "
            f"plus {control['sql']} ≈ {statistics.median(control['ms']):.1f} ms"
        )
        for index, entry in per_query.items():
            print(f"   {index:2d} {statistics.median(entry['ms']):7.2f} ms  {entry['sql'][:140]}")
        if args.profile:
            profile_page(client, urls[page], headers, args.profile)
        selects = [e for e in per_query.values() if e["sql"].lstrip().upper().startswith("SELECT")]
        if args.analyze and selects and connection.vendor == "postgresql":
            slowest = max(selects, key=lambda e: statistics.median(e["ms"]))
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + slowest["sql"], slowest["params"])
                print("   slowest query's plan:")
                for (line,) in cursor.fetchall():
                    print(f"     {line}")
    return 0


def profile_page(client, urls: list[str], headers: dict, count: int) -> None:
    """`count` requests under cProfile: the functions with most time, own and cumulative."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for n in range(count):
        client.get(urls[n % len(urls)], **headers)
    profiler.disable()
    for order, limit in (("cumulative", 45), ("tottime", 25)):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order)
        stats.print_stats(limit)
        text = out.getvalue()
        print(f"   cProfile of {count} requests, by {order}:")
        print("\n".join("     " + line for line in text.splitlines() if line.strip()))


if __name__ == "__main__":
    sys.exit(main())
