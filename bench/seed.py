"""Seed the bench database at production volume, in bulk, through the apps' own models.

    DJANGO_SETTINGS_MODULE=bench.settings DATABASE_URL=... \
        .venv/bin/python -m bench.seed --manifest FILE [--users N --keys-per-user K ...]

Writes: bench staff (a Viewer for the portal pages, a superuser for the admin
anchor, an Operator and an Approver who own the settlement requests), N Prime users
with K keys each, B batches of L legs with their settlement requests, and E audit
events through the bench's own `seed_audit_events` command (one valid hash chain).
The ids of users and batches are the ones the audit seeder uses for its targets, so
a user's or a batch's history in the audit trail is not empty. Then ANALYZE, and a
manifest (JSON) of what the load process needs: logins, ids, search terms.

Every model and command is looked up by name; a missing one stops the seed with a
message naming it (the apps are still being built).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

PASSWORD = "bench-only password, not a secret 7319"
VIEWER = "bench.viewer"
ADMIN = "bench.admin"
OPERATOR = "bench.operator"
APPROVER = "bench.approver"
ASSETS = ("BTC", "ETH", "USD", "EUR", "USDT", "SOL", "GBP", "ADA", "XRP", "DOT")
DESKS = ("spot", "otc", "treasury", "mm", "arb", "ops", "risk", "custody")


class SeedError(RuntimeError):
    """Something the seed relies on is missing from the apps."""


def need(module: str, name: str):
    """`module.name`, or a SeedError saying which app piece is missing."""
    try:
        found = importlib.import_module(module)
    except ImportError as exc:
        raise SeedError(f"bench seed needs module {module} ({exc})") from exc
    try:
        return getattr(found, name)
    except AttributeError:
        raise SeedError(f"bench seed needs {module}.{name}, which does not exist") from None


def _fields(model) -> set[str]:
    return {f.name for f in model._meta.get_fields()}


def _check_fields(model, wanted: set[str]) -> None:
    missing = wanted - _fields(model)
    if missing:
        raise SeedError(
            f"bench seed needs fields {sorted(missing)} on {model.__name__}; the model changed"
        )


def audit_ids(audit_seed: int) -> tuple[list[str], list[str], list[str]]:
    """The user, key and batch ids the audit seeder targets with this random seed."""
    generator = need("bench.audit_seed", "_Generator")
    gen = generator(random.Random(audit_seed))
    return list(gen.users), list(gen.keys), list(gen.batches)


def _ident(rng: random.Random, n: int = 13) -> str:
    return "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(n))


def seed_staff() -> dict:
    """The bench's staff members (idempotent)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    ensure_roles = need("portal.staff.roles", "ensure_roles")
    ensure_roles()
    model = get_user_model()
    made = {}
    for username, roles, superuser in (
        (VIEWER, ("Viewer",), False),
        (ADMIN, ("Viewer",), True),
        (OPERATOR, ("Operator",), False),
        (APPROVER, ("Approver",), False),
    ):
        staff = model.objects.filter(username=username).first()
        if staff is None:
            if superuser:
                staff = model.objects.create_superuser(username=username, password=PASSWORD)
            else:
                staff = model.objects.create_user(username=username, password=PASSWORD)
        for role in roles:
            staff.groups.add(Group.objects.get(name=role))
        made[username] = staff
    return made


def seed_prime_users(*, count: int, ids: list[str], rng: random.Random, now) -> list:
    prime_user = need("portal.users.models", "PrimeUser")
    _check_fields(prime_user, {"prime_id", "name", "role", "status", "created_at"})
    extra = {"owner_label", "desk_label", "last_synced_at"} & _fields(prime_user)
    rows = []
    for index in range(count):
        prime_id = ids[index] if index < len(ids) else _ident(rng)
        desk = DESKS[index % len(DESKS)]
        values = {
            "prime_id": prime_id,
            "name": f"{desk}-{index:04d}-{rng.choice(('bot', 'desk', 'algo', 'ops'))}",
            "role": "Trader" if index % 3 else "Viewer",
            "status": "Disabled" if index % 17 == 0 else "Enabled",
            "created_at": now - timedelta(days=rng.uniform(1, 700)),
        }
        if "owner_label" in extra:
            values["owner_label"] = f"{rng.choice(('ana', 'ben', 'cleo', 'dev'))}@firm"
        if "desk_label" in extra:
            values["desk_label"] = desk
        if "last_synced_at" in extra:
            values["last_synced_at"] = now - timedelta(minutes=rng.uniform(1, 60))
        rows.append(prime_user(**values))
    prime_user.objects.bulk_create(rows, batch_size=2_000)
    return list(prime_user.objects.order_by("pk"))


def seed_keys(*, users: list, per_user: int, ids: list[str], rng: random.Random, now) -> int:
    api_key = need("portal.keys.models", "ApiKey")
    _check_fields(api_key, {"prime_key_id", "user", "public_key", "created_at"})
    optional = _fields(api_key)
    rows = []
    index = 0
    for user in users:
        for _ in range(per_user):
            key_id = ids[index] if index < len(ids) else _ident(rng, 14)
            index += 1
            values = {
                "prime_key_id": key_id,
                "user": user,
                "public_key": _ident(rng, 56),
                "created_at": now - timedelta(days=rng.uniform(0, 600)),
            }
            if "label" in optional:
                values["label"] = rng.choice(("", "prod", "backup", "rotation 2025"))
            if "permissions" in optional:
                values["permissions"] = (
                    ["query_funds", "trade"] if user.role == "Trader" else ["query_funds"]
                )
            if "whitelisted_ips" in optional:
                values["whitelisted_ips"] = [
                    f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
                    for _ in range(rng.randrange(0, 4))
                ]
            if "revoked_at" in optional and rng.random() < 0.1:
                values["revoked_at"] = now - timedelta(days=rng.uniform(0, 30))
            rows.append(api_key(**values))
    api_key.objects.bulk_create(rows, batch_size=2_000)
    return len(rows)


def seed_batches(
    *,
    count: int,
    legs: int,
    ids: list[str],
    rng: random.Random,
    now,
    staff: dict,
    active: int,
    with_requests: bool = True,
) -> tuple[list[str], list[str]]:
    """`count` batches of `legs` legs (and their settlement requests unless told not to);
    the newest `active` are not final. Returns (batch ids newest first, active ones)."""
    batch_model = need("portal.settlement.models", "Batch")
    leg_model = need("portal.settlement.models", "Leg")
    request_model = need("portal.approvals.models", "ChangeRequest")
    _check_fields(batch_model, {"prime_batch_id", "status", "confirmed", "created_at", "is_final"})
    _check_fields(leg_model, {"batch", "asset", "direction", "amount", "status", "can_settle"})
    _check_fields(
        request_model,
        {"kind", "target_id", "payload", "payload_hash", "state", "requested_by", "expires_at"},
    )
    legs = min(legs, len(ASSETS))
    batches = []
    ids = list(ids[:count]) + ["B_" + _ident(rng, 8) for _ in range(count - len(ids[:count]))]
    for index in range(count):
        created = now - timedelta(hours=index * 8 + rng.uniform(0, 4))
        is_active = index < active
        batches.append(
            batch_model(
                prime_batch_id=ids[index],
                asset_kind="currency",
                status="partially_settled" if is_active else "completed",
                confirmed=True,
                trade_count=rng.randrange(20, 400),
                trade_ids=[f"T{_ident(rng, 10)}" for _ in range(rng.randrange(10, 60))],
                created_at=created,
                updated_at=created + timedelta(minutes=30),
                last_refreshed_at=now if is_active else created + timedelta(hours=2),
                is_final=not is_active,
            )
        )
    batch_model.objects.bulk_create(batches, batch_size=1_000)
    batches = list(
        batch_model.objects.filter(prime_batch_id__in=ids).order_by("-created_at", "-id")
    )
    leg_rows = []
    for batch in batches:
        for asset in rng.sample(ASSETS, legs):
            settled = batch.is_final or rng.random() < 0.4
            leg_rows.append(
                leg_model(
                    batch=batch,
                    asset=asset,
                    direction=rng.choice(("incoming", "outgoing")),
                    amount=Decimal(rng.randrange(1, 10**9)) / Decimal(10**4),
                    can_settle=not settled,
                    status="settled" if settled else "unsettled",
                    transfer_id=f"TR{_ident(rng, 12)}" if settled else "",
                    transfer_status="completed" if settled else "",
                    settled_at=batch.created_at + timedelta(hours=1) if settled else None,
                )
            )
    leg_model.objects.bulk_create(leg_rows, batch_size=4_000)
    from portal.approvals.services import canonical_payload, payload_hash
    from portal.settlement.approvals import leg_payload

    operator, approver = staff[OPERATOR], staff[APPROVER]
    requests = []
    far = now + timedelta(days=365)  # no request expires (and writes) during a run
    mine = leg_model.objects.filter(batch__prime_batch_id__in=ids).select_related("batch")
    for leg in mine.iterator(chunk_size=4_000) if with_requests else ():
        requested = leg.batch.created_at + timedelta(minutes=10)
        if leg.status == "settled":
            state, approved = "done", True
        elif leg.batch.is_final or rng.random() < 0.5:
            continue
        else:
            state, approved = "pending", False
        payload = leg_payload(leg)
        text = canonical_payload(payload)
        values = {
            "kind": "settlement_leg",
            "target_type": "leg",
            "target_id": f"{leg.batch.prime_batch_id}:{leg.asset}",
            "summary": f"Settle {leg.direction} {payload['amount']} {leg.asset}",
            "payload": text,
            "payload_hash": payload_hash(text),
            "target_fingerprint": {"direction": leg.direction, "amount": payload["amount_exact"]},
            "state": state,
            "quorum": 1,
            "requested_by": operator,
            "created_at": requested,
            "expires_at": far if state == "pending" else requested + timedelta(hours=4),
        }
        if approved:
            values.update(
                decided_at=requested + timedelta(minutes=5),
                executed_by=approver,
                executed_at=requested + timedelta(minutes=6),
                result={"transfer_id": leg.transfer_id},
            )
        requests.append(request_model(**values))
    request_model.objects.bulk_create(requests, batch_size=4_000)
    all_ids = [b.prime_batch_id for b in batches]
    return all_ids, [b.prime_batch_id for b in batches if not b.is_final]


def seed_audit(count: int, seed: int) -> None:
    from django.core.management import call_command, get_commands

    if "seed_audit_events" not in get_commands():
        raise SeedError(
            "bench seed needs `manage.py seed_audit_events`: "
            "run it with DJANGO_SETTINGS_MODULE=bench.settings"
        )
    call_command("seed_audit_events", count=count, seed=seed, no_progress=True, verbosity=0)


def analyze() -> None:
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    else:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


def run(args: argparse.Namespace) -> dict:
    import django

    django.setup()
    from django.utils import timezone

    rng = random.Random(args.seed)
    now = timezone.now()
    timings = {}
    started = time.perf_counter()
    user_ids, key_ids, batch_ids = audit_ids(args.audit_seed)
    staff = seed_staff()
    users = seed_prime_users(count=args.users, ids=user_ids, rng=rng, now=now)
    keys = seed_keys(users=users, per_user=args.keys_per_user, ids=key_ids, rng=rng, now=now)
    timings["users_keys_s"] = time.perf_counter() - started
    mark = time.perf_counter()
    all_batches, active = seed_batches(
        count=args.batches,
        legs=args.legs,
        ids=batch_ids,
        rng=rng,
        now=now,
        staff=staff,
        active=max(1, min(args.active_batches, args.batches)),
    )
    timings["batches_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    if args.audit_events:
        seed_audit(args.audit_events, args.audit_seed)
    timings["audit_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    analyze()
    timings["analyze_s"] = time.perf_counter() - mark
    timings["total_s"] = time.perf_counter() - started
    sample = rng.sample(users, min(len(users), 200))
    words = sorted({u.name.split("-")[0] for u in users} | {u.name[:7] for u in sample[:20]})
    manifest = {
        "password": PASSWORD,
        "viewer": VIEWER,
        "admin": ADMIN,
        "counts": {
            "prime_users": len(users),
            "keys": keys,
            "batches": len(all_batches),
            "legs_per_batch": min(args.legs, len(ASSETS)),
            "audit_events": args.audit_events,
        },
        "user_ids": [u.prime_id for u in sample],
        "search_terms": words,
        "batch_ids": rng.sample(all_batches, min(len(all_batches), 200)),
        "active_batch_ids": active,
        "live_batch_id": active[0],
        "seed_timings": timings,
    }
    return manifest


def audit_filters(manifest: dict) -> list[tuple[str, str]]:
    """(audit page query, admin changelist query) pairs asking the same question: one
    action, failed outcomes, one user's history, one person's actions, a search."""
    user = manifest["user_ids"][0]
    other = manifest["user_ids"][1]
    return [
        ("action=key_revoked", "action__exact=key_revoked"),
        ("outcome=failed", "outcome__exact=failed"),
        (
            f"target_type=prime_user&target_id={user}",
            f"target_type__exact=prime_user&target_id__exact={user}",
        ),
        ("actor=ada.okafor", "actor_label__exact=ada.okafor"),
        (f"q={other[:6]}", f"q={other[:6]}"),
    ]


def plan_urls(manifest: dict) -> dict:
    """Each scenario's URLs, resolved by URL name; a name that does not resolve is listed
    under "missing" with the reason, so the run says which page is not there yet."""
    import django

    django.setup()
    from django.urls import NoReverseMatch, reverse

    users, batches = manifest["user_ids"], manifest["batch_ids"]
    live = manifest["live_batch_id"]
    filters = audit_filters(manifest)
    wanted = {
        "home": lambda: [reverse("home")],
        "users_list": lambda: [reverse("users:list")],
        "users_search": lambda: [
            f"{reverse('users:list')}?q={term}" for term in manifest["search_terms"]
        ],
        "user_keys": lambda: [reverse("keys:list", args=[u]) for u in users],
        "batches_list": lambda: [reverse("settlement:batch-list")],
        "batch_page": lambda: [reverse("settlement:batch-detail", args=[b]) for b in batches],
        "batch_live": lambda: [reverse("settlement:batch-live", args=[live])],
        "audit_unfiltered": lambda: [reverse("audit:list")],
        "audit_filtered": lambda: [f"{reverse('audit:list')}?{q}" for q, _ in filters],
        "admin_unfiltered": lambda: [reverse("bench_admin:audit_auditevent_changelist")],
        "admin_filtered": lambda: [
            f"{reverse('bench_admin:audit_auditevent_changelist')}?{q}" for _, q in filters
        ],
    }
    urls, missing = {}, {}
    for name, build in wanted.items():
        try:
            urls[name] = build()
        except NoReverseMatch as exc:
            missing[name] = f"URL not found: {exc}"
    return {"urls": urls, "missing": missing}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Seed the bench database.")
    parser.add_argument("--manifest", required=True, help="where to write the manifest JSON")
    parser.add_argument(
        "--urls-only",
        action="store_true",
        help="only (re)resolve the scenario URLs into an existing manifest",
    )
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--keys-per-user", type=int, default=10)
    parser.add_argument("--batches", type=int, default=1_000)
    parser.add_argument("--legs", type=int, default=8)
    parser.add_argument("--active-batches", type=int, default=20)
    parser.add_argument("--audit-events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--audit-seed", type=int, default=1)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    if args.urls_only:
        manifest = json.loads(Path(args.manifest).read_text(encoding="utf-8"))
        manifest.update(plan_urls(manifest))
        Path(args.manifest).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        return 0
    try:
        manifest = run(args)
    except SeedError as exc:
        print(f"bench seed: {exc}", file=sys.stderr)
        return 2
    Path(args.manifest).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    print(f"bench seed: done in {manifest['seed_timings']['total_s']:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
