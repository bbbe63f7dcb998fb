"""Render a bench run's results (the JSON `bench/run` writes) as a Markdown page."""

from __future__ import annotations

import json
from pathlib import Path

MODE_NOTES = {
    "single": "One client, one request after another: each page's own cost, no contention.",
    "paced": "People using the portal: every client waits a think time between requests "
    "(exponential; the live-status poll at a fixed interval, as htmx polls). The page targets "
    "are judged here.",
    "saturation": "Every client sends its next request as soon as the answer arrives: the most "
    "the machine serves (req/s), and the queueing latency at that point.",
}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _queries(q: dict) -> str:
    if q.get("min") is None:
        return "-"
    if q["min"] == q["max"]:
        return str(q["min"])
    return f"{q['min']}-{q['max']}"


def render(results: dict) -> str:
    """The run as Markdown: context, one table per kind of figure, then the targets."""
    settings = results["settings"]
    gunicorn = settings["gunicorn"]
    load_avg = results["load_average"]
    git = results["git"]
    lines = [
        f"# Bench results: {results['name']}",
        "",
        f"- When: {results['started_at']} (total {results.get('total_s', '?')} s)",
        f"- Command: `{results['command']}`",
        f"- Commit: `{git['commit']}`"
        + (" (with uncommitted changes)" if git.get("uncommitted_changes") else ""),
        f"- Machine: {results['machine']['nproc']} CPUs ({results['machine']['cpu']}), "
        f"{results['machine']['memory_gib']} GiB, Python {results['machine']['python']}",
        f"- Database: {results['database']} ({results['database_url']})",
        f"- Seeded: {json.dumps(results.get('seeded', {}))}",
        f"- Seed time (s): {json.dumps(results.get('seed_timings_s', {}))}",
        f"- Portal: gunicorn {gunicorn['workers']} x {gunicorn['worker_class']} worker(s)"
        + (f", {gunicorn['threads']} threads" if gunicorn["threads"] > 1 else "")
        + ", `bench.settings` (DEBUG off)",
        f"- Load: up to {settings['concurrency']} concurrent signed-in clients per page "
        f"(each its own session), modes {', '.join(settings.get('modes', []))}; paced think "
        f"time {settings['think_s']} s (mean), live-status poll every "
        f"{settings.get('poll_interval_s')} s; {settings['duration_s']} s measured per page in "
        f"the paced mode, half that in the others, after {settings['warmup_s']} s warm-up",
        "- Load average (1, 5, 15 min): "
        + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in load_avg.items()),
        "",
    ]
    load = results.get("load")
    if load:
        lines += [
            "## Pages",
            "",
            "Latency as the client sees it (connect, send, whole body). *Server* is the time "
            "inside Django (bench middleware), *DB* the part of it spent in SQL; *SQL* the "
            "queries per request (session, auth and session save included).",
            "",
        ]
        modes: dict[str, list[dict]] = {}
        for s in load["scenarios"]:
            modes.setdefault(s.get("mode", ""), []).append(s)
        for mode, scenarios in modes.items():
            first = scenarios[0]
            think = (
                f", think time {first['think_s']} s" if first.get("think_s") else ", no think time"
            )
            lines += [
                f"### {mode or 'load'}: {first['concurrency']} client(s){think}",
                "",
                MODE_NOTES.get(mode, ""),
                "",
                "| page | example URL | p50 ms | p95 ms | p99 ms | req/s | SQL | server p50 ms "
                "| DB p50 ms | KiB | bad answers |",
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
            ]
            for s in scenarios:
                lat = s["latency_ms"]
                bad = ", ".join(f"{k}x{v}" for k, v in s["unexpected_statuses"].items()) or "0"
                lines.append(
                    f"| {s['name']} | `{s['example_url']}` | {_ms(lat['p50'])} "
                    f"| {_ms(lat['p95'])} | {_ms(lat['p99'])} | {s['rps'] or 0:.0f} "
                    f"| {_queries(s['queries'])} | {_ms(s['server_ms']['p50'])} "
                    f"| {_ms(s['db_ms']['p50'])} | {(s['bytes_median'] or 0) / 1024:.0f} | {bad} |"
                )
            lines.append("")
        lines += [
            f"Sign-in of all clients took {load['sign_in_s']} s (not measured); the load "
            f"process used {load.get('load_process_cpu_s', '?')} s of CPU.",
            "",
        ]
    workers = results.get("workers")
    if workers:
        lines += [
            "## Memory per gunicorn worker",
            "",
            "| worker pid | peak RSS MiB (VmHWM) | RSS at end MiB |",
            "|---|---:|---:|",
        ]
        lines += [f"| {w['pid']} | {w['peak_rss_mib']} | {w['rss_mib']} |" for w in workers]
        lines.append("")
    lines += ["## Anchors", ""]
    by_mode: dict[str, dict[str, dict]] = {}
    for s in (load or {}).get("scenarios", []):
        by_mode.setdefault(s.get("mode", ""), {})[s["name"]] = s
    pairs = (("audit_unfiltered", "admin_unfiltered"), ("audit_filtered", "admin_filtered"))
    rows = []
    for mode, pages in by_mode.items():
        for portal, admin in pairs:
            if portal in pages and admin in pages and pages[admin]["requests"]:
                a, b = pages[portal]["latency_ms"]["p95"], pages[admin]["latency_ms"]["p95"]
                rows.append(
                    f"| {mode} | {portal.split('_')[1]} | {_ms(a)} | {_ms(b)} "
                    f"| {b / max(a, 1e-9):.1f}x |"
                )
    if rows:
        lines += [
            "| load | audit trail, same data | portal audit page p95 ms "
            "| Django admin changelist p95 ms | admin / portal |",
            "|---|---|---:|---:|---:|",
            *rows,
            "",
        ]
    signing = results.get("signing")
    if signing:
        lines += [
            f"Request preparation, `{signing['endpoint']}` with the same parameters, best of "
            f"{signing['repeats']} x {signing['iterations']:,} (python-kraken-sdk "
            f"{signing['kraken_sdk_version']}; signatures agree: {signing['signatures_agree']}):",
            "",
            "| what | primeapi µs | python-kraken-sdk µs | ratio |",
            "|---|---:|---:|---:|",
            f"| prepare (nonce, JSON body, signature, headers) | "
            f"{signing['primeapi_prepare_us']:.2f} | {signing['kraken_prepare_us']:.2f} | "
            f"{signing['prepare_ratio']:.3f} |",
            f"| whole call, transport answering at once | "
            f"{signing['primeapi_call_noop_transport_us']:.2f} | "
            f"{signing['kraken_call_noop_transport_us']:.2f} | {signing['call_ratio']:.3f} |",
            "",
        ]
    verify = results.get("verify_audit")
    if verify:
        lines += [
            f"`manage.py verify_audit`: {verify['events']:,} events in {verify['seconds']} s = "
            f"**{verify['events_per_s']:,} events/s** (wall time with Django start-up "
            f"{verify['wall_s_including_startup']} s).",
            "",
        ]
    poll = results.get("poll_watchers")
    if poll is not None:
        lines += _poll_lines(poll)
    targets = results.get("targets")
    if targets:
        lines += ["## Targets", "", "| target | value | met |", "|---|---:|---|"]
        for t in targets:
            value = t.get("value")
            if value is None:
                shown = "-"
            elif isinstance(value, float):
                shown = f"{value:.3f}" if value < 10 else f"{value:,.1f}"
            else:
                shown = f"{value:,}"
            note = f" — {t['note']}" if t.get("note") else ""
            lines.append(f"| {t['target']} | {shown} | {'yes' if t['met'] else '**no**'}{note} |")
        lines.append("")
    missing = results.get("plan_missing")
    if missing:
        lines += ["Not measured: " + "; ".join(f"{k} ({v})" for k, v in missing.items()), ""]
    return "\n".join(lines)


def _poll_lines(poll: dict) -> list[str]:
    """The live-status check (bench/poll_watchers.py) as a small table."""
    if not poll.get("available"):
        return [f"Live status (poll watchers): not run - {poll.get('note', '')}.", ""]
    found = poll.get("result") or {}
    lines = [
        f"Live status (`bench/poll_watchers.py`, its own sandbox, database and gunicorn): "
        f"{'PASS' if poll.get('ok') else 'FAIL'} (exit {poll.get('exit_code')}).",
        "",
    ]
    phases = found.get("phases") or {}
    if phases:
        lines += [
            "| phase | watchers | seconds | Kraken calls | by the poller | by the web servers "
            "| fragments served | fragment p95 ms |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, phase in phases.items():
            calls = phase.get("calls", {})
            by_key = calls.get("by_key", {})
            latency = phase.get("fragment_latency_ms") or {}
            lines.append(
                f"| {name} | {phase.get('watchers', '-')} | {phase.get('seconds', '-')} "
                f"| {calls.get('total', '-')} | {by_key.get('poller', 0)} "
                f"| {by_key.get('web', 0)} | {phase.get('fragment_requests', '-')} "
                f"| {latency.get('p95', '-')} |"
            )
        lines.append("")
    if "allowed_poller_calls_in_watch" in found:
        lines += [
            f"The poller's allowance for the watch phase (budget x minutes + burst): "
            f"{found['allowed_poller_calls_in_watch']} calls.",
            "",
        ]
    return lines


def write_results(results: dict, out_dir: Path) -> list[Path]:
    """`<name>.json` and `<name>.md` in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{results['name']}.json"
    md_path = out_dir / f"{results['name']}.md"
    json_path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(render(results), encoding="utf-8")
    return [json_path, md_path]
