"""The load process: concurrent signed-in clients over the portal's pages (stdlib only).

    .venv/bin/python -m bench.load --plan PLAN.json --out RESULT.json

It is started as its own process by `bench/run`, so its CPU is not the server's.
Each client signs in through the portal's own sign-in form (its own session, as a
person in a browser would) and then, for each scenario in turn, all clients request
that scenario's URLs in a closed loop (next request as soon as the answer is read,
plus an optional think time) for a warm-up and then a measured period.

Recorded per request: latency seen by the client (connect + send + whole body read),
status, and the server's own figures from the bench middleware's headers: SQL queries,
database milliseconds, milliseconds inside Django.

Plan (JSON): {"base_url", "password", "concurrency", "warmup_s", "duration_s",
"think_s", "accounts": {"viewer": "<username>", ...}, "scenarios": [{"name", "account",
"urls": [...], "headers": {...}, "ok_statuses": [200]}]}.
"""

from __future__ import annotations

import argparse
import html
import http.client
import json
import random
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit

_CSRF_INPUT = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')


class LoadError(RuntimeError):
    """The load could not start (sign-in failed, server down)."""


@dataclass
class Answer:
    status: int
    body: bytes
    headers: http.client.HTTPMessage
    seconds: float


class Client:
    """One signed-in person: their own cookies and their own connection."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.timeout = timeout
        self.cookies: dict[str, str] = {}
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        sent = {"Host": f"{self.host}:{self.port}", "User-Agent": "portal-bench/1"}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if headers:
            sent.update(headers)
        for attempt in (1, 2):
            started = time.perf_counter()
            conn = self._connection()
            try:
                conn.request(method, path, body=body, headers=sent)
                response = conn.getresponse()
                data = response.read()
            except (ConnectionError, http.client.HTTPException, OSError):
                # The server closed a kept-alive connection before we used it: once more.
                self.close()
                if attempt == 2:
                    raise
                continue
            seconds = time.perf_counter() - started
            if response.will_close:
                self.close()
            for header in response.headers.get_all("Set-Cookie") or ():
                jar = SimpleCookie()
                jar.load(header)
                for name, morsel in jar.items():
                    if morsel["max-age"] == "0" or morsel.value == "":
                        self.cookies.pop(name, None)
                    else:
                        self.cookies[name] = morsel.value
            return Answer(response.status, data, response.headers, seconds)
        raise AssertionError("unreachable")

    def sign_in(self, username: str, password: str) -> None:
        """Through the portal's sign-in form, as a browser would."""
        page = self.request("GET", "/staff/login/")
        match = _CSRF_INPUT.search(page.body)
        if page.status != 200 or not match:
            raise LoadError(f"sign-in page answered {page.status} without a CSRF token")
        form = urlencode(
            {
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": match.group(1).decode(),
            }
        ).encode()
        answer = self.request(
            "POST",
            "/staff/login/",
            body=form,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Referer": f"http://{self.host}:{self.port}/staff/login/",
            },
        )
        if answer.status != 302 or "sessionid" not in self.cookies:
            raise LoadError(f"sign-in as {username} answered {answer.status}, not a redirect")


@dataclass
class Sample:
    seconds: float
    status: int
    queries: int | None
    server_ms: float | None
    db_ms: float | None
    size: int


@dataclass
class Recorder:
    samples: list[Sample] = field(default_factory=list)
    bad: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _header_number(answer: Answer, name: str, kind=float):
    value = answer.headers.get(name)
    try:
        return kind(value) if value is not None else None
    except ValueError:
        return None


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of `values`; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def summarise(recorder: Recorder, seconds: float) -> dict:
    """Latency percentiles (ms), throughput and the server's own figures."""
    samples = recorder.samples
    unexpected = sum(recorder.bad.values())
    lat = [s.seconds * 1000 for s in samples]
    queries = [s.queries for s in samples if s.queries is not None]
    server = [s.server_ms for s in samples if s.server_ms is not None]
    db = [s.db_ms for s in samples if s.db_ms is not None]
    statuses: dict[str, int] = {}
    for s in samples:
        statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
    return {
        "requests": len(samples),
        "ok_requests": len(samples) - unexpected,
        "unexpected_statuses": {str(k): v for k, v in recorder.bad.items()},
        "statuses": statuses,
        "seconds": round(seconds, 3),
        "rps": round(len(samples) / seconds, 1) if seconds > 0 else None,
        "latency_ms": {
            "p50": percentile(lat, 50),
            "p95": percentile(lat, 95),
            "p99": percentile(lat, 99),
            "max": max(lat) if lat else None,
            "mean": sum(lat) / len(lat) if lat else None,
        },
        "server_ms": {"p50": percentile(server, 50), "p95": percentile(server, 95)},
        "db_ms": {"p50": percentile(db, 50), "p95": percentile(db, 95)},
        "queries": {
            "min": min(queries) if queries else None,
            "median": percentile([float(q) for q in queries], 50),
            "max": max(queries) if queries else None,
        },
        "bytes_median": percentile([float(s.size) for s in samples], 50),
    }


def _worker(
    client: Client,
    scenario: dict,
    *,
    start_at: float,
    measure_from: float,
    stop_at: float,
    think_s: float,
    recorder: Recorder,
    rng: random.Random,
) -> None:
    urls = scenario["urls"]
    headers = scenario.get("headers") or {}
    ok_statuses = set(scenario.get("ok_statuses") or [200])
    position = rng.randrange(len(urls))
    fixed = bool(scenario.get("think_fixed"))
    # A polled fragment that carries its next URL (its version): follow it as htmx does.
    follow = re.compile(scenario["follow"]) if scenario.get("follow") else None
    followed = ""
    # Paced clients start spread over one think time, as people (or htmx timers) would.
    offset = rng.uniform(0, think_s) if think_s else 0.0
    time.sleep(max(0.0, start_at + offset - time.perf_counter()))
    recorded = 0
    while True:
        now = time.perf_counter()
        # Past the window; but every client records at least one request, so a page slower
        # than the window (or a cold worker) still gets measured instead of silently not.
        if now >= stop_at and recorded:
            return
        url = followed or urls[position % len(urls)]
        position += 1
        try:
            answer = client.request("GET", url, headers=headers)
        except (OSError, http.client.HTTPException):
            status, answer = 599, None
        else:
            status = answer.status
            if follow is not None and status in (200, 286):
                found = follow.search(answer.body.decode("utf-8", "replace"))
                followed = html.unescape(found.group(1)) if found else ""
        # Every request started in the window counts, however long it takes to answer.
        if now >= measure_from:
            recorded += 1
            sample = (
                Sample(
                    answer.seconds,
                    status,
                    _header_number(answer, "X-Bench-Queries", int),
                    _header_number(answer, "X-Bench-Ms"),
                    _header_number(answer, "X-Bench-DB-Ms"),
                    len(answer.body),
                )
                if answer is not None
                else Sample(0.0, status, None, None, None, 0)
            )
            with recorder.lock:
                recorder.samples.append(sample)
                if status not in ok_statuses:
                    recorder.bad[status] = recorder.bad.get(status, 0) + 1
        if think_s:
            time.sleep(think_s if fixed else rng.expovariate(1.0 / think_s))


def run_scenario(clients: list[Client], scenario: dict, plan: dict) -> dict:
    """The scenario's clients on its URLs: warm-up, then the measured period."""
    clients = clients[: int(scenario.get("concurrency", len(clients)))]
    recorder = Recorder()
    warmup = float(scenario.get("warmup_s", plan.get("warmup_s", 2.0)))
    duration = float(scenario.get("duration_s", plan.get("duration_s", 10.0)))
    think = float(scenario.get("think_s", plan.get("think_s", 0.0)))
    start_at = time.perf_counter() + 0.05
    measure_from = start_at + warmup
    stop_at = measure_from + duration
    threads = [
        threading.Thread(
            target=_worker,
            args=(client, scenario),
            kwargs={
                "start_at": start_at,
                "measure_from": measure_from,
                "stop_at": stop_at,
                "think_s": think,
                "recorder": recorder,
                "rng": random.Random(index),
            },
            daemon=True,
        )
        for index, client in enumerate(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = summarise(recorder, duration)
    result.update(
        name=scenario["name"],
        mode=scenario.get("mode", ""),
        concurrency=len(clients),
        think_fixed=bool(scenario.get("think_fixed")),
        warmup_s=warmup,
        think_s=think,
        url_count=len(scenario["urls"]),
        example_url=scenario["urls"][0],
        headers=scenario.get("headers") or {},
    )
    return result


def sign_in_all(plan: dict, account: str, count: int) -> list[Client]:
    """`count` clients signed in as the plan's `account`, a few at a time."""
    username = plan["accounts"][account]
    clients = [Client(plan["base_url"]) for _ in range(count)]
    errors: list[BaseException] = []

    def one(client: Client) -> None:
        try:
            client.sign_in(username, plan["password"])
        except BaseException as exc:  # reported below
            errors.append(exc)

    for start in range(0, count, 4):
        group = [threading.Thread(target=one, args=(c,)) for c in clients[start : start + 4]]
        for thread in group:
            thread.start()
        for thread in group:
            thread.join()
    if errors:
        raise LoadError(f"{len(errors)} of {count} sign-ins failed: {errors[0]}")
    return clients


def run_plan(plan: dict) -> dict:
    concurrency = max(int(s.get("concurrency", plan["concurrency"])) for s in plan["scenarios"])
    pools: dict[str, list[Client]] = {}
    started = time.perf_counter()
    for scenario in plan["scenarios"]:
        account = scenario.get("account", "viewer")
        if account not in pools:
            pools[account] = sign_in_all(plan, account, concurrency)
    sign_in_s = time.perf_counter() - started
    results = []
    for scenario in plan["scenarios"]:
        results.append(run_scenario(pools[scenario.get("account", "viewer")], scenario, plan))
        done = results[-1]
        print(
            f"bench load: {done['mode']:<10} {done['name']:<18} {done['concurrency']:3d} clients"
            f"  p95 {done['latency_ms']['p95'] or 0:8.1f} ms  {done['rps'] or 0:7.1f} req/s",
            file=sys.stderr,
            flush=True,
        )
    for pool in pools.values():
        for client in pool:
            client.close()
    return {"sign_in_s": round(sign_in_s, 2), "scenarios": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Drive the portal with signed-in clients.")
    parser.add_argument("--plan", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    with open(args.plan, encoding="utf-8") as handle:
        plan = json.load(handle)
    try:
        result = run_plan(plan)
    except LoadError as exc:
        print(f"bench load: {exc}", file=sys.stderr)
        return 2
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
