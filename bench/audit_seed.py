"""Synthetic audit events for volume tests: a valid chain, written in bulk (COPY on PostgreSQL)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable

from django.db import connection, transaction
from django.utils import timezone

from portal.audit.chain import canonical_bytes, canonical_text, from_micros, json_text, micros
from portal.audit.models import AuditAction as A
from portal.audit.models import Outcome
from portal.audit.models import TargetType as T
from portal.audit.services import _lock_head

COLUMNS = (
    "seq, occurred_at, actor_id, actor_label, action, target_type, target_id, outcome, "
    "prime_endpoint, message, client_ip, user_agent, request_id, prev_hash, before, after, "
    "prime_response, hash"
)
_ALNUM = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
_FIRST = ("ada", "ben", "cleo", "dev", "eli", "fay", "gus", "hana", "ivo", "jun", "kai", "lea")
_LAST = ("admin", "okafor", "silva", "tanaka", "novak", "meyer", "haddad", "kowal")
_ASSETS = ("BTC", "ETH", "USD", "EUR", "USDT", "SOL", "GBP", "ADA", "XRP", "DOT")
_AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
)
_ENDPOINTS = {
    A.PRIME_USER_CREATED: "CreatePrimeApiUser",
    A.PRIME_USER_RENAMED: "UpdatePrimeApiUser",
    A.PRIME_USER_DISABLED: "UpdatePrimeApiUser",
    A.PRIME_USER_ENABLED: "UpdatePrimeApiUser",
    A.PRIME_USER_ROLE_CHANGED: "UpdatePrimeApiUserRoles",
    A.KEY_ISSUED: "CreatePrimeApiUserKey",
    A.KEY_ALLOWLIST_CHANGED: "UpdatePrimeApiUserKey",
    A.KEY_REVOKED: "DeletePrimeApiUserKey",
    A.BATCH_CREATED: "CreatePrimeSettlementBatch",
    A.BATCH_STATUS_CHANGED: "GetPrimeSettlementBatch",
    A.LEG_SUBMITTED: "SettlePrimeSettlementBatchAsset",
    A.LEG_SETTLE_FAILED: "SettlePrimeSettlementBatchAsset",
    A.LEG_OUTCOME_UNKNOWN: "SettlePrimeSettlementBatchAsset",
    A.LEG_STATUS_CHANGED: "GetPrimeSettlementBatch",
    A.LEG_RECONCILED: "GetPrimeSettlementBatch",
}
# (action, weight): roughly what a busy desk produces.
_MIX = (
    (A.LOGIN_SUCCEEDED, 8),
    (A.LOGIN_FAILED, 2),
    (A.LOGOUT, 4),
    (A.PERMISSION_REFUSED, 1),
    (A.PRIME_USER_CREATED, 2),
    (A.PRIME_USER_RENAMED, 1),
    (A.PRIME_USER_DISABLED, 1),
    (A.PRIME_USER_ENABLED, 1),
    (A.PRIME_USER_ROLE_CHANGED, 1),
    (A.KEY_ISSUED, 3),
    (A.KEY_ALLOWLIST_CHANGED, 4),
    (A.KEY_REVOKED, 2),
    (A.SYNC_DIFFERENCE, 1),
    (A.BATCH_CREATED, 3),
    (A.BATCH_STATUS_CHANGED, 6),
    (A.LEG_REQUESTED, 8),
    (A.LEG_APPROVED, 7),
    (A.LEG_REJECTED, 1),
    (A.LEG_SUBMITTED, 7),
    (A.LEG_SETTLE_FAILED, 1),
    (A.LEG_OUTCOME_UNKNOWN, 1),
    (A.LEG_RECONCILED, 1),
    (A.LEG_STATUS_CHANGED, 12),
    (A.AUDIT_EXPORTED, 1),
)


def _ident(rng: random.Random, n: int = 13) -> str:
    return "".join(rng.choice(_ALNUM) for _ in range(n))


class _Generator:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.staff = [f"{f}.{last}" for f in _FIRST for last in _LAST][:60]
        self.users = [_ident(rng) for _ in range(2_000)]
        self.keys = [_ident(rng) for _ in range(6_000)]
        self.batches = ["B_" + _ident(rng, 8) for _ in range(5_000)]
        self.ips = [
            f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
            for _ in range(80)
        ]
        self.actions = [a for a, _ in _MIX]
        self.weights = [w for _, w in _MIX]

    def event(self) -> tuple:
        """(actor_label, action, target_type, target_id, outcome, endpoint, message, ip, ua,
        before, after, response) with JSON as Python values."""
        rng = self.rng
        action = rng.choices(self.actions, self.weights)[0]
        person = rng.choice(self.staff)
        actor, ip, agent = person, rng.choice(self.ips), rng.choice(_AGENTS)
        roll = rng.random()
        outcome = (
            Outcome.SUCCEEDED
            if roll < 0.92
            else Outcome.FAILED
            if roll < 0.96
            else Outcome.REFUSED
            if roll < 0.99
            else Outcome.UNKNOWN
        )
        before: dict[str, object] | None = None
        after: dict[str, object] | None = None
        response: dict[str, object] | None = None
        message = ""
        endpoint = _ENDPOINTS.get(action, "")
        if action in (A.LOGIN_SUCCEEDED, A.LOGIN_FAILED, A.LOGOUT):
            target_type, target_id = T.STAFF, person
            if action == A.LOGIN_FAILED:
                actor, outcome, message = "anonymous", Outcome.FAILED, "wrong password"
        elif action == A.PERMISSION_REFUSED:
            target_type, target_id = T.PAGE, rng.choice(("/staff/", "/connection/", "/keys/new/"))
            outcome, message = Outcome.REFUSED, "missing permission staff.manage_staff"
        elif action.startswith("prime_user") or action == A.SYNC_DIFFERENCE:
            target_type, target_id = T.PRIME_USER, rng.choice(self.users)
            before = {"name": f"desk-{rng.randrange(500)}", "status": "Enabled", "role": "viewer"}
            after = dict(
                before,
                status=rng.choice(("Enabled", "Disabled")),
                role=rng.choice(("viewer", "trader")),
            )
            if action == A.SYNC_DIFFERENCE:
                actor, ip, agent = "system:prime_sync", "", ""
        elif action.startswith("key"):
            target_type, target_id = T.KEY, rng.choice(self.keys)
            before = {"whitelisted_ips": [rng.choice(self.ips)]}
            after = {"whitelisted_ips": rng.sample(self.ips, rng.randrange(0, 4))}
        elif action.startswith("batch"):
            target_type, target_id = T.BATCH, rng.choice(self.batches)
            before = {"status": "unsettled", "confirmed": False}
            after = {
                "status": rng.choice(("unsettled", "partially_settled", "settled")),
                "confirmed": True,
            }
            if action == A.BATCH_STATUS_CHANGED:
                actor, ip, agent = "system:prime_poll", "", ""
        elif action == A.AUDIT_EXPORTED:
            target_type, target_id = T.AUDIT, ""
            after = {"format": rng.choice(("csv", "jsonl")), "filter": {}}
        else:
            asset = rng.choice(_ASSETS)
            target_type, target_id = T.LEG, f"{rng.choice(self.batches)}:{asset}"
            amount = f"{rng.randrange(1, 10**7) / 10**4:.4f}"
            before = {"status": "unsettled", "amount": amount, "can_settle": True}
            after = dict(before, status=rng.choice(("unsettled", "settling", "settled")))
            if action in (A.LEG_STATUS_CHANGED, A.LEG_RECONCILED):
                actor, ip, agent = "system:prime_poll", "", ""
        if endpoint:
            if outcome == Outcome.SUCCEEDED:
                response = {"result": after or {"ok": True}}
            elif outcome == Outcome.UNKNOWN:
                response = {"error": "ResponseTimeoutError", "errors": []}
                message = "no answer from Kraken within 10s"
            else:
                response = {"error": ["EGeneral:Invalid arguments"]}
                message = "Kraken refused the request"
        return (
            actor,
            str(action),
            str(target_type),
            target_id,
            str(outcome),
            endpoint,
            message,
            ip,
            agent,
            before,
            after,
            response,
        )


def seed_events(
    *,
    count: int,
    days: float = 365.0,
    chunk_size: int = 20_000,
    seed: int = 1,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Append `count` events continuing the chain; returns the new head seq."""
    rng = random.Random(seed)
    gen = _Generator(rng)
    now_us = micros(timezone.now())
    with transaction.atomic():
        head = _lock_head()
        head_us = micros(head.occurred_at) if head.occurred_at else 0
    start_us = max(head_us, now_us - int(days * 86_400_000_000))
    step = max(0, (now_us - start_us) // max(count, 1))
    clock = start_us
    written = 0
    last_seq = head.seq
    while written < count:
        n = min(chunk_size, count - written)
        with transaction.atomic():
            head = _lock_head()
            seq, prev = head.seq, head.hash
            rows = []
            for _ in range(n):
                seq += 1
                clock += rng.randint(0, 2 * step) if step else 0
                (
                    actor,
                    action,
                    ttype,
                    tid,
                    outcome,
                    endpoint,
                    message,
                    ip,
                    agent,
                    before,
                    after,
                    response,
                ) = gen.event()
                row = [
                    seq,
                    clock,
                    None,
                    actor,
                    action,
                    ttype,
                    tid,
                    outcome,
                    endpoint,
                    message,
                    ip,
                    agent,
                    f"{rng.getrandbits(128):032x}" if ip else "",
                    prev,
                    None if before is None else json_text(before),
                    None if after is None else json_text(after),
                    None if response is None else json_text(response),
                ]
                digest = hashlib.sha256(canonical_bytes(canonical_text(row))).hexdigest()
                row.append(digest)
                prev = digest
                rows.append(row)
            _insert(rows)
            head.seq, head.hash, head.occurred_at = seq, prev, from_micros(clock)
            head.save(update_fields=["seq", "hash", "occurred_at"])
            last_seq = seq
        written += n
        if on_progress:
            on_progress(n)
    return last_seq


def _insert(rows: list[list]) -> None:
    for row in rows:
        row[1] = from_micros(row[1])
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            copy_sql = f"COPY audit_auditevent ({COLUMNS}) FROM STDIN"
            with cursor.cursor.copy(copy_sql) as copy:
                for row in rows:
                    copy.write_row(row)
        return
    adapt = connection.ops.adapt_datetimefield_value
    for row in rows:
        row[1] = adapt(row[1])
    placeholders = ", ".join(["%s"] * 18)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO audit_auditevent ({COLUMNS}) VALUES ({placeholders})",
            rows,
        )
