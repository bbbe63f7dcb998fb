"""`bench/run`: seed, serve, load, measure the anchors, and write the results.

Steps (each one's time and the machine's load average are recorded):

1. database: a dedicated PostgreSQL database (default `portal_bench` on
   127.0.0.1:5432 as user postgres) dropped and created afresh, or -- with --quick --
   a throwaway SQLite file; then `manage.py migrate`;
2. seed (`bench.seed`): production volume through the apps' models, audit events
   through `manage.py seed_audit_events`, then ANALYZE;
3. serve: the Prime sandbox (`python -m primeapi.sandbox`) and the portal under
   gunicorn (`bench.settings`: the portal's settings, DEBUG off, plus a
   query-counting middleware and Django's admin at /bench-admin/), loopback ports;
4. load (`bench.load`, a separate process): C signed-in clients per scenario;
5. peak RSS of every gunicorn worker (VmHWM), then the servers stop;
6. anchors: request preparation against python-kraken-sdk (`bench.signing`),
   `manage.py verify_audit` throughput, and the settlement helper's
   `bench/poll_watchers.py` when it exists;
7. results: `bench/results/<name>.json` and `<name>.md` (and README.md for the full run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
RESULTS = ROOT / "bench" / "results"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/portal_bench"
_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Pages whose p95 the 50 ms target is about (the admin is the anchor, not a portal page).
PORTAL_PAGES = (
    "home",
    "users_list",
    "users_search",
    "user_keys",
    "batches_list",
    "batch_page",
    "batch_live",
    "audit_unfiltered",
    "audit_filtered",
)
ANCHOR_PAGES = ("admin_unfiltered", "admin_filtered")
HTMX = {"HX-Request": "true"}
TARGETS = {
    "page_p95_ms": 50.0,
    "admin_over_audit_p95": 20.0,
    "prepare_ratio_max": 0.5,
    "verify_events_per_s": 200_000,
    # issue 13: ratios of server time (p50, inside Django) in the same run.
    "admin_over_page_server_p50": 15.0,
    "admin_over_audit_server_p50": 20.0,
    "live_over_home_server_p50_max": 0.5,
    "fixed_statements_max": 3,
}


class BenchError(RuntimeError):
    """A step failed; the message says which and why."""


def log(message: str) -> None:
    stamp = datetime.now().strftime("%H:%M:%S")
    print(f"[bench {stamp}] {message}", file=sys.stderr, flush=True)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def wait_for_quiet(minutes: float, threshold: float) -> None:
    """Wait (at most `minutes`) until the 1-minute load average is below `threshold`."""
    deadline = time.monotonic() + minutes * 60
    while os.getloadavg()[0] >= threshold and time.monotonic() < deadline:
        log(f"waiting for a quiet machine: load average {loadavg()} (want < {threshold})")
        time.sleep(30)
    log(f"load average {loadavg()}; starting")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu or platform.processor(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def git_commit() -> dict:
    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    return {"commit": commit or "unknown (no git history)", "uncommitted_changes": dirty}


# --- database ---------------------------------------------------------------------------


def prepare_postgres(url: str, *, reuse: bool) -> bool:
    """Drop and create the bench database; returns True if it was created afresh."""
    import psycopg
    from psycopg import sql

    parts = url.rsplit("/", 1)
    name = parts[1].split("?", 1)[0]
    if not _DB_NAME.match(name) or name in ("postgres", "template0", "template1"):
        raise BenchError(f"refusing to use database {name!r} for the bench")
    if name.startswith("test"):
        raise BenchError(f"refusing database {name!r}: test_* databases belong to test runs")
    maintenance = f"{parts[0]}/postgres"
    try:
        conn = psycopg.connect(maintenance, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise BenchError(f"PostgreSQL is not reachable at {parts[0]}: {exc}") from exc
    with conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and reuse:
            return False
        # Only the bench's own database is ever dropped (name checked above).
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return True


def django_env(db_url: str, creds: Path | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PRIME_", "DJANGO_", "PORTAL_", "DATABASE_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="bench.settings",
        DATABASE_URL=db_url,
        DJANGO_DEBUG="false",
        PORTAL_ENV="development",
        PORTAL_LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
        PYTHONDONTWRITEBYTECODE="1",
    )
    if creds is not None:
        env["PRIME_CREDENTIALS_FILE"] = str(creds)
    return env


def run_step(args: list[str], env: dict[str, str], *, what: str, timeout: float) -> str:
    started = time.perf_counter()
    done = subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout)[-3000:]
        raise BenchError(f"{what} failed (exit {done.returncode}):\n{tail}")
    log(f"{what}: {time.perf_counter() - started:.1f}s")
    return done.stdout + done.stderr


# --- servers ----------------------------------------------------------------------------


class Servers:
    """The sandbox and gunicorn, stopped on exit whatever happens."""

    def __init__(self, work: Path, env: dict[str, str], options: argparse.Namespace) -> None:
        self.work, self.env, self.options = work, env, options
        self.sandbox: subprocess.Popen | None = None
        self.gunicorn: subprocess.Popen | None = None
        self.base_url = ""

    def __enter__(self) -> Servers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start_sandbox(self, creds: Path) -> None:
        creds.unlink(missing_ok=True)
        log_file = (self.work / "sandbox.log").open("w")
        self.sandbox = subprocess.Popen(
            [
                PY,
                "-m",
                "primeapi.sandbox",
                "--port",
                "0",
                "--credentials-file",
                str(creds),
                "--quiet",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while not creds.exists():
            if self.sandbox.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"the sandbox did not start; see {self.work / 'sandbox.log'}")
            time.sleep(0.1)

    def start_gunicorn(self) -> None:
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        opts = self.options
        command = [
            str(Path(PY).parent / "gunicorn"),
            "portal.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(opts.workers),
            "--worker-class",
            opts.worker_class,
            "--threads",
            str(opts.threads),
            "--backlog",
            "2048",
            "--timeout",
            "120",
            "--log-level",
            "warning",
            "--chdir",
            str(ROOT),
        ]
        log_file = (self.work / "gunicorn.log").open("w")
        self.gunicorn = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=log_file, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while True:
            if self.gunicorn.poll() is not None:
                raise BenchError(f"gunicorn exited; see {self.work / 'gunicorn.log'}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/staff/login/", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"gunicorn did not answer; see {self.work / 'gunicorn.log'}")
            time.sleep(0.2)
        # Every worker up (each imports Django on its own).
        deadline = time.monotonic() + 30
        while len(self.worker_pids()) < opts.workers and time.monotonic() < deadline:
            time.sleep(0.2)

    def worker_pids(self) -> list[int]:
        if self.gunicorn is None:
            return []
        pid = self.gunicorn.pid
        try:
            text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def worker_memory(self) -> list[dict]:
        """Peak (VmHWM) and current (VmRSS) resident memory of every worker, in MiB."""
        found = []
        for pid in self.worker_pids():
            fields = {}
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    key, _, value = line.partition(":")
                    if key in ("VmHWM", "VmRSS"):
                        fields[key] = round(int(value.split()[0]) / 1024, 1)
            except OSError:
                continue
            found.append(
                {"pid": pid, "peak_rss_mib": fields.get("VmHWM"), "rss_mib": fields.get("VmRSS")}
            )
        return found

    def stop(self) -> None:
        for proc in (self.gunicorn, self.sandbox):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (self.gunicorn, self.sandbox):
            if proc is not None:
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        self.gunicorn = self.sandbox = None


# --- the run ----------------------------------------------------------------------------


MODES = ("single", "paced", "saturation")
MODE_TEXT = {
    "single": "1 client, one request after another: the page's own cost, no contention",
    "paced": "C signed-in clients at once, each waiting a think time between requests "
    "(exponential, mean T s; the live-status poll every P s as htmx does): people using it",
    "saturation": "C signed-in clients at once, no think time: the most the 2 cores serve, "
    "and the queueing latency at that point",
}


def build_plan(manifest: dict, base_url: str, options: argparse.Namespace) -> dict:
    """Scenarios mode by mode (single, paced, saturation), page by page."""
    urls = manifest["urls"]
    pages = []
    for name in (*PORTAL_PAGES, *ANCHOR_PAGES):
        if name not in urls:
            continue
        if options.pages and name not in options.pages:
            continue
        page = {"name": name, "urls": urls[name], "account": "viewer"}
        if name in ("users_search", "batch_live"):
            page["headers"] = HTMX
        if name == "batch_live":
            # 204: nothing changed since the version the fragment carries (htmx keeps it).
            page["ok_statuses"] = [200, 204, 286]
            page["follow"] = r'hx-get="([^"]*/live/\?v=[^"]*)"'
        if name in ANCHOR_PAGES:
            page["account"] = "admin"
        pages.append(page)
    scenarios = []
    for mode in options.modes:
        for page in pages:
            scenario = dict(page, mode=mode)
            if mode == "single":
                scenario.update(
                    concurrency=1, duration_s=options.duration / 2, warmup_s=options.warmup / 3
                )
            elif mode == "paced":
                live = page["name"] == "batch_live"
                scenario.update(
                    concurrency=options.concurrency,
                    duration_s=options.duration,
                    warmup_s=options.warmup,
                    think_s=options.poll_interval if live else options.think,
                    think_fixed=live,
                )
            else:
                scenario.update(
                    concurrency=options.concurrency,
                    duration_s=options.duration / 2,
                    warmup_s=options.warmup,
                )
            scenarios.append(scenario)
    return {
        "base_url": base_url,
        "password": manifest["password"],
        "accounts": {"viewer": manifest["viewer"], "admin": manifest["admin"]},
        "concurrency": options.concurrency,
        "warmup_s": options.warmup,
        "duration_s": options.duration,
        "think_s": 0.0,
        "scenarios": scenarios,
    }


def parse_verify(output: str) -> dict:
    """Figures from `verify_audit`'s summary line."""
    match = re.search(r"OK: ([\d,]+) events intact.*?; ([\d.]+)s, ([\d,]+) events/s", output)
    if not match:
        raise BenchError(f"verify_audit did not report OK:\n{output[-2000:]}")
    return {
        "events": int(match.group(1).replace(",", "")),
        "seconds": float(match.group(2)),
        "events_per_s": int(match.group(3).replace(",", "")),
    }


def poll_watchers(env: dict[str, str], work: Path, options: argparse.Namespace) -> dict:
    """The settlement helper's live-status check (bench/poll_watchers.py), if it exists."""
    script = ROOT / "bench" / "poll_watchers.py"
    if not script.exists():
        return {"available": False, "note": "bench/poll_watchers.py does not exist yet"}
    out = work / "poll_watchers.json"
    command = [PY, str(script), *options.poll_args.split()]
    if "--json-out" in script.read_text(encoding="utf-8"):
        command += ["--json-out", str(out)]
    try:
        done = subprocess.run(
            command,
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=options.poll_timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"available": True, "ok": False, "note": "timed out"}
    result: dict = {
        "available": True,
        "command": " ".join(command[1:]),
        "exit_code": done.returncode,
        "ok": done.returncode == 0,
        "output_tail": (done.stdout + done.stderr)[-1500:],
    }
    if out.exists():
        result["result"] = json.loads(out.read_text(encoding="utf-8"))
    return result


def evaluate(results: dict) -> list[dict]:
    """Each target: met or not, and the figure. Pages are judged in the paced mode (people
    using the portal); the other modes' figures are in the notes."""
    scenarios = results.get("load", {}).get("scenarios", [])
    by_mode: dict[str, dict[str, dict]] = {}
    for s in scenarios:
        by_mode.setdefault(s.get("mode", ""), {})[s["name"]] = s
    judged = "paced" if "paced" in by_mode else next(iter(by_mode), "")
    pages = by_mode.get(judged, {})
    targets = []
    limit = TARGETS["page_p95_ms"]

    def others(name: str) -> str:
        shown = [
            f"{mode}: {by_mode[mode][name]['latency_ms']['p95']:.1f} ms"
            for mode in by_mode
            if mode != judged and name in by_mode[mode] and by_mode[mode][name]["requests"]
        ]
        return "; ".join(shown)

    for name in PORTAL_PAGES:
        page = pages.get(name)
        if page is None or not page["requests"]:
            missing = results.get("plan_missing", {}).get(name, "not measured")
            targets.append(
                {"target": f"{name} p95 < {limit:.0f} ms", "met": False, "note": missing}
            )
            continue
        p95 = page["latency_ms"]["p95"]
        bad = sum(page["unexpected_statuses"].values())
        note = [f"{judged} mode"]
        if bad:
            note.append(f"{bad} unexpected answers {page['unexpected_statuses']}")
        if others(name):
            note.append(others(name))
        targets.append(
            {
                "target": f"{name} p95 < {limit:.0f} ms",
                "value": p95,
                "met": p95 < limit and bad == 0,
                "note": "; ".join(note),
            }
        )
    for portal, admin in (
        ("audit_unfiltered", "admin_unfiltered"),
        ("audit_filtered", "admin_filtered"),
    ):
        ratios = {
            mode: pages_[admin]["latency_ms"]["p95"]
            / max(pages_[portal]["latency_ms"]["p95"], 1e-9)
            for mode, pages_ in by_mode.items()
            if portal in pages_ and admin in pages_ and pages_[admin]["requests"]
        }
        if judged in ratios:
            targets.append(
                {
                    "target": f"admin changelist p95 / {portal} p95 >= 20",
                    "value": round(ratios[judged], 2),
                    "met": ratios[judged] >= TARGETS["admin_over_audit_p95"],
                    "note": "; ".join(f"{mode}: {r:.1f}x" for mode, r in ratios.items()),
                }
            )
    targets.extend(_server_ratio_targets(by_mode))
    signing = results.get("signing")
    if signing:
        targets.append(
            {
                "target": "request preparation <= 0.5 x python-kraken-sdk",
                "value": round(signing["prepare_ratio"], 3),
                "met": signing["prepare_ratio"] <= TARGETS["prepare_ratio_max"],
            }
        )
    verify = results.get("verify_audit")
    if verify:
        targets.append(
            {
                "target": "verify_audit >= 200,000 events/s",
                "value": verify["events_per_s"],
                "met": verify["events_per_s"] >= TARGETS["verify_events_per_s"],
            }
        )
    poll = results.get("poll_watchers")
    if poll is not None:
        note = poll.get("note", "")
        watch = ((poll.get("result") or {}).get("phases") or {}).get("watch")
        if watch:
            calls = watch.get("calls", {})
            by_key = calls.get("by_key", {})
            note = (
                f"{calls.get('total')} Kraken calls while {watch.get('watchers')} people watched "
                f"for {watch.get('seconds')} s ({by_key.get('poller', 0)} by the poller, "
                f"{by_key.get('web', 0)} by the web servers); allowance "
                f"{poll['result'].get('allowed_poller_calls_in_watch')}"
            )
        targets.append(
            {
                "target": "50 watchers for a minute: Kraken calls <= poller budget",
                "met": bool(poll.get("ok")),
                "note": note,
            }
        )
    return targets


def _server_p50(page: dict | None) -> float | None:
    if not page or not page.get("requests") or not page.get("server_ms"):
        return None
    return page["server_ms"].get("p50")


def _server_ratio_targets(by_mode: dict[str, dict[str, dict]]) -> list[dict]:
    """issue 13's targets, as ratios of server time (p50) within one run."""
    targets: list[dict] = []
    single = by_mode.get("single", {})
    admin = _server_p50(single.get("admin_unfiltered"))
    if admin:
        for name in PORTAL_PAGES:
            mine = _server_p50(single.get(name))
            if mine:
                ratio = admin / mine
                targets.append(
                    {
                        "target": f"single: admin changelist server p50 / {name} >= 15",
                        "value": round(ratio, 2),
                        "met": ratio >= TARGETS["admin_over_page_server_p50"],
                        "note": f"{admin:.1f} vs {mine:.2f} ms",
                    }
                )
    for portal, anchor in (
        ("audit_unfiltered", "admin_unfiltered"),
        ("audit_filtered", "admin_filtered"),
    ):
        for mode, pages in by_mode.items():
            mine, theirs = _server_p50(pages.get(portal)), _server_p50(pages.get(anchor))
            if mine and theirs:
                ratio = theirs / mine
                targets.append(
                    {
                        "target": f"{mode}: admin server p50 / {portal} server p50 >= 20",
                        "value": round(ratio, 2),
                        "met": ratio >= TARGETS["admin_over_audit_server_p50"],
                        "note": f"{theirs:.1f} vs {mine:.2f} ms",
                    }
                )
    for mode, pages in by_mode.items():
        live, home = _server_p50(pages.get("batch_live")), _server_p50(pages.get("home"))
        if live and home:
            ratio = live / home
            targets.append(
                {
                    "target": f"{mode}: live poll server p50 <= 0.5 x home",
                    "value": round(ratio, 3),
                    "met": ratio <= TARGETS["live_over_home_server_p50_max"],
                    "note": f"{live:.2f} vs {home:.2f} ms",
                }
            )
    saturated = by_mode.get("saturation", {}).get("batch_live")
    if saturated and saturated.get("requests"):
        targets.append(
            {
                "target": "live poll saturation requests/s (recorded)",
                "value": round(float(saturated["rps"]), 1),
                "met": True,
                "note": "recorded, no limit",
            }
        )
    return targets


def run(options: argparse.Namespace) -> dict:
    started = time.perf_counter()
    results: dict = {
        "name": options.name,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": options.command_line,
        "machine": machine(),
        "git": git_commit(),
        "load_average": {"start": loadavg()},
        "settings": {
            "concurrency": options.concurrency,
            "duration_s": options.duration,
            "warmup_s": options.warmup,
            "think_s": options.think,
            "poll_interval_s": options.poll_interval,
            "modes": list(options.modes),
            "gunicorn": {
                "workers": options.workers,
                "worker_class": options.worker_class,
                "threads": options.threads,
            },
            "volume": {
                "prime_users": options.users,
                "keys_per_user": options.keys_per_user,
                "batches": options.batches,
                "legs_per_batch": options.legs,
                "audit_events": options.audit_events,
            },
        },
        "steps_s": {},
    }
    if options.quick and options.db_url is None:
        work = Path(tempfile.mkdtemp(prefix="portal-bench-"))
        db_url = f"sqlite:///{work / 'bench.sqlite3'}"
        fresh = True
    else:
        work = ROOT / "var" / "bench" / options.name
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True, exist_ok=True)
        db_url = options.db_url or DEFAULT_PG
        if db_url.startswith("postgres"):
            fresh = prepare_postgres(db_url, reuse=options.reuse_db)
        else:
            fresh = True
    results["database"] = "PostgreSQL" if db_url.startswith("postgres") else "SQLite"
    results["database_url"] = db_url if "@" not in db_url else db_url.split("@", 1)[1]
    log(f"work dir {work}; database {results['database_url']}; load {loadavg()}")
    creds = work / "sandbox-credentials.json"
    env = django_env(db_url, creds)
    manage = [PY, str(ROOT / "manage.py")]
    # The manifest describes the seeded database, so it is named after the database.
    db_label = re.sub(r"[^A-Za-z0-9_.-]", "_", db_url.rsplit("/", 1)[-1])
    manifest_path = (
        work / "manifest.json"
        if options.quick and options.db_url is None
        else ROOT / "var" / "bench" / f"{db_label}-manifest.json"
    )
    manifest_path.parent.mkdir(parents=True, exist_ok=True)

    mark = time.perf_counter()
    run_step([*manage, "migrate", "--noinput"], env, what="migrate", timeout=900)
    results["steps_s"]["migrate"] = round(time.perf_counter() - mark, 1)
    if fresh or not manifest_path.exists():
        mark = time.perf_counter()
        run_step(
            [
                PY,
                "-m",
                "bench.seed",
                "--manifest",
                str(manifest_path),
                "--users",
                str(options.users),
                "--keys-per-user",
                str(options.keys_per_user),
                "--batches",
                str(options.batches),
                "--legs",
                str(options.legs),
                "--audit-events",
                str(options.audit_events),
            ],
            env,
            what="seed",
            timeout=3600,
        )
        results["steps_s"]["seed"] = round(time.perf_counter() - mark, 1)
    else:
        log("reusing the seeded database (--reuse-db)")
    run_step(
        [PY, "-m", "bench.seed", "--manifest", str(manifest_path), "--urls-only"],
        env,
        what="resolve URLs",
        timeout=120,
    )
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    results["seeded"] = manifest["counts"]
    results["seed_timings_s"] = {k: round(v, 1) for k, v in manifest["seed_timings"].items()}
    results["plan_missing"] = manifest.get("missing", {})
    for name, why in results["plan_missing"].items():
        log(f"NOT MEASURED {name}: {why}")
    if results["plan_missing"] and not options.allow_missing:
        raise BenchError(
            "pages are missing (use --allow-missing to measure the rest): "
            + "; ".join(f"{k}: {v}" for k, v in results["plan_missing"].items())
        )

    if options.wait_quiet and not options.skip_load:
        wait_for_quiet(options.wait_quiet, options.quiet_load)
    if not options.skip_load:
        with Servers(work, env, options) as servers:
            mark = time.perf_counter()
            servers.start_sandbox(creds)
            servers.start_gunicorn()
            results["steps_s"]["start_servers"] = round(time.perf_counter() - mark, 1)
            plan = build_plan(manifest, servers.base_url, options)
            (work / "plan.json").write_text(json.dumps(plan, indent=2), encoding="utf-8")
            results["load_average"]["before_load"] = loadavg()
            log(
                f"load: {len(plan['scenarios'])} scenarios, up to {options.concurrency} clients; "
                f"load average {loadavg()}"
            )
            mark = time.perf_counter()
            before = os.times()
            load_out = work / "load.json"
            done = subprocess.run(
                [PY, "-m", "bench.load", "--plan", str(work / "plan.json"), "--out", str(load_out)],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                timeout=3600,
                check=False,
            )
            after = os.times()
            if done.returncode != 0:
                raise BenchError("the load process failed (see above)")
            results["steps_s"]["load"] = round(time.perf_counter() - mark, 1)
            results["load"] = json.loads(load_out.read_text(encoding="utf-8"))
            results["load"]["load_process_cpu_s"] = round(
                (after.children_user - before.children_user)
                + (after.children_system - before.children_system),
                1,
            )
            results["load_average"]["after_load"] = loadavg()
            results["workers"] = servers.worker_memory()

    if not options.skip_anchors:
        mark = time.perf_counter()
        out = run_step(
            [*manage, "verify_audit", "--no-progress"], env, what="verify_audit", timeout=1800
        )
        results["verify_audit"] = parse_verify(out)
        results["verify_audit"]["wall_s_including_startup"] = round(time.perf_counter() - mark, 2)
        out = run_step(
            [
                PY,
                "-m",
                "bench.signing",
                "--json",
                "--iterations",
                str(options.sign_iterations),
            ],
            {**os.environ, "PYTHONPATH": str(ROOT)},
            what="request preparation anchor",
            timeout=900,
        )
        results["signing"] = json.loads(out[out.index("{") : out.rindex("}") + 1])
    if not options.skip_poll:
        mark = time.perf_counter()
        results["poll_watchers"] = poll_watchers(env, work, options)
        results["steps_s"]["poll_watchers"] = round(time.perf_counter() - mark, 1)
    results["load_average"]["end"] = loadavg()
    results["targets"] = evaluate(results)
    results["total_s"] = round(time.perf_counter() - started, 1)
    if options.quick and options.db_url is None and not options.keep:
        shutil.rmtree(work, ignore_errors=True)
    return results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run",
        description="Benchmark the portal at production volume and write bench/results/.",
    )
    parser.add_argument("--name", help="results name (default: full, or quick with --quick)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny volume on a throwaway SQLite file, 4 clients, ~1 s per page (checks the "
        "harness itself; the figures mean nothing)",
    )
    parser.add_argument("--db-url", help=f"database (default {DEFAULT_PG})")
    parser.add_argument(
        "--reuse-db", action="store_true", help="keep an already seeded bench database"
    )
    parser.add_argument("--out", help="directory for the results (default bench/results)")
    parser.add_argument("--users", type=int)
    parser.add_argument("--keys-per-user", type=int)
    parser.add_argument("--batches", type=int)
    parser.add_argument("--legs", type=int)
    parser.add_argument("--audit-events", type=int)
    parser.add_argument("--concurrency", type=int)
    parser.add_argument(
        "--duration",
        type=float,
        help="measured seconds per page in the paced mode (half of it in the other two)",
    )
    parser.add_argument("--warmup", type=float, help="unmeasured seconds per page first")
    parser.add_argument(
        "--think", type=float, help="paced mode: mean think time per client, seconds (1.0)"
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        help="paced mode: the live-status poll's interval, seconds (3.0, as the batch page)",
    )
    parser.add_argument(
        "--modes", nargs="+", choices=MODES, default=list(MODES), help="load models to run"
    )
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--worker-class", default="sync")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pages", nargs="*", help="only these scenarios")
    parser.add_argument("--sign-iterations", type=int)
    parser.add_argument("--poll-args", default="", help="arguments for bench/poll_watchers.py")
    parser.add_argument("--poll-timeout", type=float, default=600)
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="MINUTES",
        help="before the load, wait up to MINUTES for the 1-minute load average to drop",
    )
    parser.add_argument("--quiet-load", type=float, default=1.5, help="what counts as quiet")
    parser.add_argument("--allow-missing", action="store_true", help="measure what exists")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--skip-anchors", action="store_true")
    parser.add_argument("--skip-poll", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the quick run's work dir")
    parser.add_argument(
        "--profile",
        nargs="+",
        metavar="PAGE",
        help="only profile these pages (cProfile through Django's test client, against an "
        "already seeded database: see bench/explain.py) and write results/profile-PAGE.txt",
    )
    parser.add_argument(
        "--profile-requests", type=int, default=200, help="requests per profiled page"
    )
    options = parser.parse_args(argv)
    quick = options.quick
    defaults = {
        "name": "quick" if quick else "full",
        "users": 10 if quick else 1_000,
        "keys_per_user": 2 if quick else 10,
        "batches": 6 if quick else 1_000,
        "legs": 8,
        "audit_events": 2_000 if quick else 1_000_000,
        "concurrency": 4 if quick else 32,
        "duration": 0.6 if quick else 20.0,
        "warmup": 0.3 if quick else 3.0,
        "think": 0.1 if quick else 1.0,
        "poll_interval": 0.2 if quick else 3.0,
        "sign_iterations": 2_000 if quick else 200_000,
    }
    for key, value in defaults.items():
        if getattr(options, key) is None:
            setattr(options, key, value)
    if quick:
        options.skip_poll = True
    options.command_line = "bench/run " + " ".join(argv if argv is not None else sys.argv[1:])
    return options


def profile(options: argparse.Namespace) -> int:
    """`--profile PAGE...`: where a page's time goes, written to results/profile-PAGE.txt."""
    db_url = options.db_url or DEFAULT_PG
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DJANGO_DEBUG": "false",
        "DATABASE_URL": db_url,
    }
    out_dir = Path(options.out) if options.out else RESULTS
    for page in options.profile:
        command = [PY, "-m", "bench.explain", page, "--profile", str(options.profile_requests)]
        done = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            log(f"profile of {page} failed:\n{done.stderr[-2000:]}")
            return 1
        header = (
            f"# bench/run --profile {page} ({options.profile_requests} requests)\n"
            f"# {datetime.now(UTC).isoformat(timespec='seconds')}, commit "
            f"{git_commit().get('commit', '?')}, CPU {machine()['cpu']}, load {loadavg()}\n"
        )
        path = out_dir / f"profile-{page}.txt"
        path.write_text(header + done.stdout, encoding="utf-8")
        print(header + done.stdout)
        log(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    if options.profile:
        return profile(options)
    try:
        results = run(options)
    except BenchError as exc:
        log(f"FAILED: {exc}")
        return 1
    from bench.report import write_results

    out_dir = Path(options.out) if options.out else RESULTS
    paths = write_results(results, out_dir)
    for target in results["targets"]:
        mark = "met " if target["met"] else "MISS"
        value = target.get("value")
        log(
            f"{mark} {target['target']}"
            + (f": {value:,.1f}" if isinstance(value, float) else "")
            + (f": {value:,}" if isinstance(value, int) else "")
            + (f" ({target['note']})" if target.get("note") else "")
        )
    log("wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
