"""How many calls does Kraken see while 50 people watch one settlement batch?

    .venv/bin/python bench/poll_watchers.py                  # 60 s nobody + 60 s x 50 people
    .venv/bin/python bench/poll_watchers.py --write-results  # also bench/results/*.md

What it runs, all on loopback:

1. the Prime sandbox (in this process), with rate limiting at Kraken's Pro tier;
2. a fresh portal database (a throwaway SQLite file, or --database-url), migrated, with
   one Operator, one Approver and N Viewers, and one confirmed batch of three legs made
   through the portal's own services;
3. the portal under gunicorn (DEBUG off), signed in to with the admin key;
4. `manage.py prime_poll` with its interval and budget, signed in to with a *separate*
   Prime API key (a Trader user's), so the sandbox's call log tells the poller's calls
   from the web servers' calls;
5. phase "baseline": nobody watches for --baseline seconds;
6. one leg is approved through the portal (one Settle call by the web key, before the
   watch phase) and the sandbox completes its transfer --transfer-delay seconds later;
7. phase "watch": N signed-in `requests` sessions poll the batch's live fragment
   (`/settlement/<id>/live/`, `HX-Request: true`) every 2-3 s for --duration seconds.

Counted from the sandbox's call log, per phase: calls by endpoint and by key (poller /
web). Also: fragment requests served, their latency, and how long after Kraken completed
the transfer each watcher first saw the leg settled. The run passes (exit 0) when the
web servers made no Kraken call while people watched and the poller stayed within its
budget.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import requests

from portal.actors import SystemActor

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
GUNICORN = str(ROOT / ".venv" / "bin" / "gunicorn")
PASSWORD = "bench watcher password 1234"
RESULTS = ROOT / "bench" / "results" / "poll_watchers.md"
TRADES = [
    {"base": "BTC", "quote": "USD", "side": "buy", "volume": "1.5", "price": "30000"},
    {"base": "ETH", "quote": "USD", "side": "sell", "volume": "10", "price": "2000"},
]
LEG_STATUS = re.compile(r'data-asset="(?P<asset>[^"]+)" data-leg-status="(?P<status>[^"]+)"')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1, allow_redirects=False)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {seconds} s")


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


class Bench:
    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.work = Path(tempfile.mkdtemp(prefix="poll-watchers-"))
        self.processes: list[subprocess.Popen] = []
        self.sandbox = None
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"

    # --- setup ----------------------------------------------------------------------------

    def env(self, api_key: str, api_secret: str) -> dict[str, str]:
        env = dict(os.environ)
        for name in ("DATABASE_URL", "PRIME_CREDENTIALS_FILE", "REDIS_URL"):
            env.pop(name, None)
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "portal.settings",
                "PORTAL_ENV": "development",
                "DJANGO_DEBUG": "false",
                "PORTAL_VAR_DIR": str(self.work),
                "DATABASE_URL": self.options.database_url
                or f"sqlite:///{self.work / 'portal.sqlite3'}",
                "PRIME_API_URL": self.sandbox.url,
                "PRIME_API_KEY": api_key,
                "PRIME_API_SECRET": api_secret,
                # Signing in 50 people is not what is measured; keep it quick.
                "PORTAL_PASSWORD_HASHERS": "django.contrib.auth.hashers.MD5PasswordHasher",
                "PRIME_POLL_INTERVAL_SECONDS": str(int(self.options.interval)),
                "PRIME_POLL_BUDGET_PER_MINUTE": str(int(self.options.budget)),
                "PORTAL_LOG_LEVEL": "INFO",
            }
        )
        return env

    def start_sandbox(self) -> None:
        from primeapi.sandbox import SandboxServer

        self.sandbox = SandboxServer(host="127.0.0.1", port=0, rate_limit="pro")
        self.sandbox.start()

    def seed(self, web_env: dict[str, str]) -> dict:
        """Migrate, create the staff, and make one confirmed batch through the portal."""
        os.environ.update(web_env)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group
        from django_otp.plugins.otp_totp.models import TOTPDevice

        from portal.settlement import services
        from portal.settlement.models import Leg
        from portal.staff.roles import ensure_roles

        ensure_roles()
        staff = get_user_model()

        def person(username: str, role: str):
            user = staff.objects.create_user(username=username, password=PASSWORD)
            user.groups.add(Group.objects.get(name=role))
            return user

        operator = person("bench.operator", "Operator")
        approver = person("bench.approver", "Approver")
        # Approving asks for the approver's authenticator code (step-up).
        TOTPDevice.objects.create(user=approver, name="bench", confirmed=True)
        watchers = [person(f"bench.watcher{i:02d}", "Viewer") for i in range(self.options.watchers)]
        control = self.sandbox.control
        control.add_trades(TRADES)
        batch = services.batch_create(asset_kind="currency", actor=operator)
        control.confirm_batch(batch.prime_batch_id)
        services.batch_refresh(prime_batch_id=batch.prime_batch_id, actor=SystemActor.POLLER)
        btc = Leg.objects.select_related("batch").get(batch=batch, asset="BTC")
        change = services.leg_request(leg=btc, actor=operator).change
        from django.db import connections

        connections.close_all()
        return {
            "batch": batch.prime_batch_id,
            "change_id": change.pk,
            "watchers": [w.username for w in watchers],
        }

    def poller_key(self) -> tuple[str, str]:
        """A Trader user's key for the poller, so its calls are told apart in the log."""
        from primeapi import PrimeClient

        admin = PrimeClient(self.sandbox.url, self.sandbox.admin_key, self.sandbox.admin_secret)
        user = admin.create_api_user("portal poller", "Trader")
        key = admin.create_api_user_key(user.id)
        return key.api_key, key.api_secret

    def start(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.work / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True
        )
        self.processes.append(process)
        return process

    # --- people ---------------------------------------------------------------------------

    def sign_in(self, username: str) -> requests.Session:
        session = requests.Session()
        login = f"{self.base}/staff/login/"
        session.get(login, timeout=10)
        response = session.post(
            login,
            data={
                "username": username,
                "password": PASSWORD,
                "csrfmiddlewaretoken": session.cookies.get("csrftoken", ""),
            },
            headers={"Referer": login},
            timeout=10,
            allow_redirects=False,
        )
        if response.status_code != 302 or "sessionid" not in session.cookies:
            raise SystemExit(f"{username} could not sign in (HTTP {response.status_code})")
        return session

    @staticmethod
    def code(username: str, *, steps_ahead: int = 0) -> str:
        """The person's authenticator code now (or `steps_ahead` 30-second steps later)."""
        from django_otp.oath import TOTP
        from django_otp.plugins.otp_totp.models import TOTPDevice

        device = TOTPDevice.objects.get(user__username=username)
        totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
        totp.time = time.time() + steps_ahead * device.step
        return f"{totp.token():0{device.digits}d}"

    def approve(self, change_id: int, batch: str) -> None:
        session = self.sign_in("bench.approver")
        verify = f"{self.base}/staff/two-factor/"
        session.get(verify, timeout=10)
        session.post(
            verify,
            data={
                "token": self.code("bench.approver"),
                "csrfmiddlewaretoken": session.cookies.get("csrftoken", ""),
            },
            headers={"Referer": verify},
            timeout=10,
        )
        page = f"{self.base}/settlement/{batch}/"
        session.get(page, timeout=10)
        response = session.post(
            f"{self.base}/settlement/{batch}/legs/approve/",
            # A code works once per step: the approval takes the next step's code.
            data={"change": change_id, "code": self.code("bench.approver", steps_ahead=1)},
            headers={
                "HX-Request": "true",
                "X-CSRFToken": session.cookies.get("csrftoken", ""),
                "Referer": page,
            },
            timeout=30,
        )
        if response.status_code != 200 or 'data-request-state="done"' not in response.text:
            raise SystemExit(f"approval did not send the leg (HTTP {response.status_code})")

    def watch(self, sessions: list[requests.Session], batch: str, seconds: float) -> dict:
        url = f"{self.base}/settlement/{batch}/live/"
        stop_at = time.monotonic() + seconds
        latencies: list[float] = []
        statuses: Counter = Counter()
        first_settled: dict[int, float] = {}
        lock = threading.Lock()

        def one(index: int, session: requests.Session) -> None:
            rng = random.Random(index)
            time.sleep(rng.uniform(0, 2.5))  # people do not all arrive on the same tick
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                try:
                    response = session.get(url, headers={"HX-Request": "true"}, timeout=10)
                    status = response.status_code
                    body = response.text
                except requests.RequestException as exc:
                    status, body = type(exc).__name__, ""
                elapsed = time.perf_counter() - started
                seen = time.time()
                with lock:
                    latencies.append(elapsed)
                    statuses[status] += 1
                    legs = {m["asset"]: m["status"] for m in LEG_STATUS.finditer(body)}
                    if legs.get("BTC") == "settled" and index not in first_settled:
                        first_settled[index] = seen
                time.sleep(rng.uniform(2.0, 3.0))

        threads = [
            threading.Thread(target=one, args=(i, s), daemon=True) for i, s in enumerate(sessions)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(seconds + 30)
        return {"latencies": latencies, "statuses": statuses, "first_settled": first_settled}

    # --- counting -------------------------------------------------------------------------

    def calls_since(self, seq: int, poller_key: str, web_key: str) -> dict:
        calls = [c for c in self.sandbox.control.calls(since=seq) if c["seq"] > seq]

        def who(call: dict) -> str:
            if call["api_key"] == poller_key:
                return "poller"
            return "web" if call["api_key"] == web_key else "other"

        by_key = Counter(who(c) for c in calls)
        by_endpoint: dict[str, Counter] = {}
        for call in calls:
            by_endpoint.setdefault(call["endpoint"], Counter())[who(call)] += 1
        return {
            "total": len(calls),
            "by_key": dict(by_key),
            "by_endpoint": {k: dict(v) for k, v in sorted(by_endpoint.items())},
            "refused": sum(1 for c in calls if not c["executed"]),
        }

    def last_seq(self) -> int:
        return int(self.sandbox.control.state()["last_call_seq"])

    # --- the run --------------------------------------------------------------------------

    def run(self) -> dict:
        options = self.options
        self.start_sandbox()
        web_key, web_secret = self.sandbox.admin_key, self.sandbox.admin_secret
        poller_key, poller_secret = self.poller_key()
        web_env = self.env(web_key, web_secret)
        seeded = self.seed(web_env)
        batch = seeded["batch"]
        self.start(
            "gunicorn",
            [
                GUNICORN,
                "portal.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(options.workers),
                "--worker-class",
                "gthread",
                "--threads",
                "8",
                # Longer than the 2-3 s between polls, so a kept-alive connection is not
                # closed by the server just as a watcher reuses it.
                "--keep-alive",
                "10",
            ],
            web_env,
        )
        wait_http(f"{self.base}/staff/login/")
        self.start(
            "prime_poll",
            [
                PY,
                "manage.py",
                "prime_poll",
                "--interval",
                str(options.interval),
                "--budget-per-minute",
                str(options.budget),
            ],
            self.env(poller_key, poller_secret),
        )
        print(f"batch {batch}; portal {self.base}; sandbox {self.sandbox.url}", flush=True)
        sessions = [self.sign_in(name) for name in seeded["watchers"]]
        time.sleep(options.interval + 1)  # the poller's first cycle and its discovery list

        phases: dict[str, dict] = {}
        if options.baseline > 0:
            start = self.last_seq()
            print(f"baseline: nobody watching for {options.baseline:.0f} s", flush=True)
            time.sleep(options.baseline)
            phases["baseline"] = {
                "seconds": options.baseline,
                "watchers": 0,
                "calls": self.calls_since(start, poller_key, web_key),
            }

        self.sandbox.control.update_settings(transfer_delay=options.transfer_delay)
        before_approval = self.last_seq()
        self.approve(seeded["change_id"], batch)
        start = self.last_seq()
        approval_calls = self.calls_since(before_approval, poller_key, web_key)
        completes_at = time.time() + options.transfer_delay
        print(
            f"watch: {len(sessions)} people polling every 2-3 s for {options.duration:.0f} s",
            flush=True,
        )
        watched = self.watch(sessions, batch, options.duration)
        transfers = self.sandbox.control.state().get("transfers")
        lags = [seen - completes_at for seen in watched["first_settled"].values()]
        phases["watch"] = {
            "seconds": options.duration,
            "watchers": len(sessions),
            "calls": self.calls_since(start, poller_key, web_key),
            "fragment_requests": sum(watched["statuses"].values()),
            "fragment_statuses": {str(k): v for k, v in watched["statuses"].items()},
            "fragment_latency_ms": {
                "p50": round(statistics.median(watched["latencies"]) * 1000, 1),
                "p95": round(percentile(watched["latencies"], 95) * 1000, 1),
                "max": round(max(watched["latencies"]) * 1000, 1),
            },
            "watchers_who_saw_settled": len(watched["first_settled"]),
            "seen_settled_after_kraken_s": {
                "median": round(statistics.median(lags), 1) if lags else None,
                "max": round(max(lags), 1) if lags else None,
            },
            "transfers_at_kraken": transfers,
        }
        minutes = options.duration / 60
        allowed = options.budget * minutes + max(1.0, options.budget / 6)  # rate + burst
        watch_calls = phases["watch"]["calls"]
        ok = (
            watch_calls["by_key"].get("web", 0) == 0
            and watch_calls["by_key"].get("poller", 0) <= allowed
            and phases["watch"]["watchers_who_saw_settled"] == len(sessions)
        )
        return {
            "ok": ok,
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join(["bench/poll_watchers.py", *sys.argv[1:]]),
            "database": "PostgreSQL" if options.database_url else "SQLite (throwaway file)",
            "gunicorn_workers": options.workers,
            "poller": {"interval_s": options.interval, "budget_per_minute": options.budget},
            "allowed_poller_calls_in_watch": round(allowed, 1),
            "transfer_delay_s": options.transfer_delay,
            "phases": phases,
            "approval_calls": approval_calls,
            "poller_log_tail": self.log_tail("prime_poll", 6),
        }

    def log_tail(self, name: str, lines: int) -> list[str]:
        path = self.work / f"{name}.log"
        if not path.exists():
            return []
        wanted = [line for line in path.read_text().splitlines() if "prime_poll cycle=" in line]
        return wanted[-lines:]

    def close(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        if self.sandbox is not None:
            self.sandbox.stop()
        if not self.options.keep:
            shutil.rmtree(self.work, ignore_errors=True)


def markdown(result: dict) -> str:
    """bench/results/poll_watchers.md."""
    lines = [
        "# 50 people watching one settlement batch: what Kraken sees",
        "",
        f"Measured {result['when']} with:",
        "",
        "```",
        f".venv/bin/python {result['command']}",
        "```",
        "",
        f"Portal under gunicorn ({result['gunicorn_workers']} workers x 8 threads, keep-alive "
        "10 s, DEBUG off), "
        f"{result['database']}; the Prime sandbox on loopback (Pro-tier rate limit); "
        f"`manage.py prime_poll --interval {result['poller']['interval_s']:g} "
        f"--budget-per-minute {result['poller']['budget_per_minute']:g}` with its own Prime "
        "key, so the sandbox's call log tells its calls from the web servers'. One batch of "
        "three legs; one leg approved just before the watch phase, its transfer completed "
        f"by the sandbox {result['transfer_delay_s']:g} s later.",
        "",
        "| phase | watchers | seconds | Kraken calls (all) | by the poller | by the web servers "
        "| calls by endpoint |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, phase in result["phases"].items():
        calls = phase["calls"]
        endpoints = "; ".join(
            f"{endpoint}: " + ", ".join(f"{who} {n}" for who, n in sorted(counts.items()))
            for endpoint, counts in calls["by_endpoint"].items()
        )
        lines.append(
            f"| {name} | {phase['watchers']} | {phase['seconds']:g} | {calls['total']} | "
            f"{calls['by_key'].get('poller', 0)} | {calls['by_key'].get('web', 0)} | "
            f"{endpoints or 'none'} |"
        )
    watch = result["phases"]["watch"]
    approval = result["approval_calls"]
    latency = watch["fragment_latency_ms"]
    seen = watch["seen_settled_after_kraken_s"]
    lines += [
        "",
        f"- The approval just before the watch phase: {approval['total']} Kraken call(s), "
        + "; ".join(
            f"{endpoint}: " + ", ".join(f"{who} {n}" for who, n in sorted(counts.items()))
            for endpoint, counts in approval["by_endpoint"].items()
        )
        + " (the web server that served the Approve click).",
        f"- Fragment requests served while watching: {watch['fragment_requests']} "
        f"(statuses {watch['fragment_statuses']}); latency p50 {latency['p50']} ms, "
        f"p95 {latency['p95']} ms, max {latency['max']} ms.",
        f"- Every watcher saw the leg settle: {watch['watchers_who_saw_settled']} of "
        f"{watch['watchers']}, a median {seen['median']} s (max {seen['max']} s) after "
        "Kraken completed the transfer (poller interval + page poll interval).",
        f"- The poller's allowance for the watch phase (budget x minutes + burst): "
        f"{result['allowed_poller_calls_in_watch']:g} calls. Result: "
        f"{'PASS' if result['ok'] else 'FAIL'} (no Kraken call from the web servers while "
        "people watched, and the poller within its budget).",
        "",
        "The last cycles the poller logged:",
        "",
        "```",
        *result["poller_log_tail"],
        "```",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watchers", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0, help="watch phase, seconds")
    parser.add_argument("--baseline", type=float, default=60.0, help="nobody watching, seconds")
    parser.add_argument("--interval", type=float, default=5.0, help="poller interval, seconds")
    parser.add_argument("--budget", type=float, default=30.0, help="poller budget a minute")
    parser.add_argument("--transfer-delay", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers")
    parser.add_argument("--database-url", default="", help="an empty database to use")
    parser.add_argument("--write-results", action="store_true", help=f"write {RESULTS}")
    parser.add_argument("--json-out", default="", help="also write the figures as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    options = parser.parse_args(argv)
    bench = Bench(options)
    try:
        result = bench.run()
    finally:
        bench.close()
    text = markdown(result)
    print(text)
    if options.write_results:
        RESULTS.write_text(text, encoding="utf-8")
    if options.json_out:
        Path(options.json_out).write_text(json.dumps(result, indent=2, default=str))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
