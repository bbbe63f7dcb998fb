"""Every page the benchmark drives costs the same SQL queries with 10 rows and with 10,000.

The rows are written in bulk (as `bench.seed` does at production volume), then the page
is requested once to warm the session and permission caches, and its queries counted.
"""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from bench import seed

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
FEW, MANY = 10, 10_000


def _queries(client, url: str, **headers) -> int:
    client.get(url, **headers)  # warm the session and permission caches
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, **headers)
    assert response.status_code in (200, 286), response.status_code
    return len(queries)


@pytest.fixture(autouse=True)
def _caches_outlive_the_test(monkeypatch):
    """The two-factor requirement and the status strip are cached for seconds; seeding and
    drawing 10,000 rows on a busy machine can take longer than that. These counts are about
    rows, not time, so the cache lives as long as the test."""
    from portal.connection import selectors as connection_selectors
    from portal.staff import selectors as staff_selectors
    from portal.staff import sessions

    monkeypatch.setattr(staff_selectors, "TWO_FACTOR_REQUIRED_CACHE_SECONDS", 3600)
    monkeypatch.setattr(connection_selectors, "STATUS_CACHE_SECONDS", 3600)
    # Nor does the session's once-a-minute idle write (3 statements) fall between the
    # warm-up request and the measured one when seeding 10,000 rows took a minute.
    monkeypatch.setattr(sessions, "REFRESH_AFTER_SECONDS", 24 * 3600)


@pytest.fixture
def viewing(client, viewer):
    client.force_login(viewer)
    return client


@pytest.fixture
def rng():
    return random.Random(3)


def _users(count: int, rng, start: int = 0):
    from portal.users.models import PrimeUser

    ids = [f"U{n:012d}" for n in range(start, start + count)]
    seed.seed_prime_users(count=count, ids=ids, rng=rng, now=timezone.now())
    return list(PrimeUser.objects.filter(prime_id__in=ids).order_by("pk"))


def test_the_users_list_costs_the_same_for_10_and_10000_users(viewing, rng):
    _users(FEW, rng)
    few = _queries(viewing, reverse("users:list"))
    _users(MANY - FEW, rng, start=FEW)
    assert _queries(viewing, reverse("users:list")) == few


def test_the_users_search_costs_the_same_for_10_and_10000_users(viewing, rng):
    url = reverse("users:list") + "?q=spot"
    _users(FEW, rng)
    few = _queries(viewing, url, **HTMX)
    _users(MANY - FEW, rng, start=FEW)
    assert _queries(viewing, url, **HTMX) == few


def test_a_users_keys_cost_the_same_for_10_and_10000_keys(viewing, rng):
    from portal.keys.models import ApiKey

    (user,) = _users(1, rng)
    now = timezone.now()
    seed.seed_keys(users=[user], per_user=FEW, ids=[], rng=rng, now=now)
    url = reverse("keys:list", args=[user.prime_id])
    few = _queries(viewing, url)
    seed.seed_keys(users=[user], per_user=MANY - FEW, ids=[], rng=rng, now=now)
    assert ApiKey.objects.filter(user=user).count() == MANY
    assert _queries(viewing, url) == few


def _batches(
    count: int, rng, *, operator, approver, active: int = 1, legs: int = 8, requests: bool = True
) -> list[str]:
    staff = {seed.OPERATOR: operator, seed.APPROVER: approver}
    ids = [f"B_{rng.getrandbits(40):010X}" for _ in range(count)]
    all_ids, _ = seed.seed_batches(
        count=count,
        legs=legs,
        ids=ids,
        rng=rng,
        now=timezone.now(),
        staff=staff,
        active=active,
        with_requests=requests,
    )
    return all_ids


def test_the_batches_list_costs_the_same_for_10_and_10000_batches(viewing, rng, operator, approver):
    url = reverse("settlement:batch-list")
    _batches(FEW, rng, operator=operator, approver=approver)
    few = _queries(viewing, url)
    # The list shows batches; two legs each is enough to make the per-batch counts real.
    _batches(
        MANY - FEW, rng, operator=operator, approver=approver, active=0, legs=2, requests=False
    )
    assert _queries(viewing, url) == few


def _history(batch_id: str, count: int) -> None:
    """`count` audit events about the batch and its legs (hashes not chained: only the
    number of rows matters here, and SQLite has no append-only trigger)."""
    from django.db.models import Max

    from portal.audit.models import AuditEvent

    now = timezone.now()
    first_seq = (AuditEvent.objects.aggregate(top=Max("seq"))["top"] or 0) + 1
    AuditEvent.objects.bulk_create(
        [
            AuditEvent(
                seq=first_seq + n,
                occurred_at=now - timedelta(seconds=count - n),
                actor_label="system:prime_poll",
                action="leg_status_changed" if n % 2 else "batch_status_changed",
                target_type="leg" if n % 2 else "batch",
                target_id=f"{batch_id}:BTC" if n % 2 else batch_id,
                outcome="succeeded",
                prev_hash="0" * 64,
                hash="0" * 64,
            )
            for n in range(count)
        ],
        batch_size=2_000,
    )


def _requests(batch_id: str, count: int, requester) -> None:
    """`count` finished (rejected) requests on one leg: the history a busy leg collects."""
    from portal.approvals.models import ChangeRequest
    from portal.settlement.models import Leg

    leg = Leg.objects.filter(batch__prime_batch_id=batch_id).order_by("asset").first()
    now = timezone.now()
    ChangeRequest.objects.bulk_create(
        [
            ChangeRequest(
                kind="settlement_leg",
                target_type="leg",
                target_id=f"{batch_id}:{leg.asset}",
                payload="{}",
                payload_hash="0" * 64,
                state="rejected",
                requested_by=requester,
                created_at=now - timedelta(minutes=count - n),
                expires_at=now + timedelta(days=1),
            )
            for n in range(count)
        ],
        batch_size=2_000,
    )


@pytest.mark.parametrize(
    ("url_name", "headers"),
    [("settlement:batch-detail", {}), ("settlement:batch-live", HTMX)],
    ids=["batch-page", "live-status-poll"],
)
def test_a_batch_costs_the_same_with_10_and_10000_history_rows(
    viewing, rng, operator, approver, url_name, headers
):
    (batch_id,) = _batches(1, rng, operator=operator, approver=approver, active=1)
    url = reverse(url_name, args=[batch_id])
    _history(batch_id, FEW)
    _requests(batch_id, FEW, operator)
    few = _queries(viewing, url, **headers)
    _history(batch_id, MANY - FEW)
    _requests(batch_id, MANY - FEW, operator)
    assert _queries(viewing, url, **headers) == few


@pytest.mark.parametrize(
    "query",
    ["", "?action=key_revoked", "?outcome=failed", "?actor=ada.okafor", "?q=AB"],
    ids=["unfiltered", "action", "outcome", "actor", "search"],
)
def test_the_audit_page_costs_the_same_for_10_and_10000_events(viewing, query):
    from bench.audit_seed import seed_events

    url = reverse("audit:list") + query
    seed_events(count=FEW, seed=5)
    few = _queries(viewing, url)
    seed_events(count=MANY - FEW, seed=6)
    assert _queries(viewing, url) == few
