"""The one keyset paginator: walks both ways with ties, one query a page, strict cursors."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from django.http import QueryDict
from django.utils import timezone

from portal.audit.models import AuditEvent
from portal.paging import Keyset
from portal.settlement.models import Batch
from portal.users.models import PrimeUser

pytestmark = pytest.mark.django_db

BY_NAME = Keyset(order=("name", "pk"), per_page=3)
NEWEST_FIRST = Keyset(order=("-created_at", "-pk"), forward="older", backward="newer", per_page=2)


def _b64(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.fixture
def users():
    now = timezone.now()
    # Names repeat, so the id has to break ties.
    names = ["b", "a", "c", "a", "b", "d", "a"]
    PrimeUser.objects.bulk_create(
        [
            PrimeUser(prime_id=f"U{i:012d}", name=name, role="Viewer", created_at=now)
            for i, name in enumerate(names)
        ]
    )
    return list(PrimeUser.objects.order_by("name", "pk"))


def _walk_forward(keyset, queryset, cursor=None):
    pages = []
    while True:
        page = keyset.page(queryset, after=cursor)
        pages.append(page.rows)
        if page.next_cursor is None:
            return pages, page
        cursor = page.next_cursor


def test_it_walks_forward_and_back_through_ties(users):
    pages, last = _walk_forward(BY_NAME, PrimeUser.objects.all())

    assert [u for rows in pages for u in rows] == users
    assert [len(rows) for rows in pages] == [3, 3, 1]
    back = BY_NAME.page(PrimeUser.objects.all(), before=last.prev_cursor)
    assert back.rows == pages[1]
    assert back.next_cursor and back.prev_cursor
    first = BY_NAME.page(PrimeUser.objects.all(), before=back.prev_cursor)
    assert first.rows == pages[0] and first.prev_cursor is None


def test_descending_orders_walk_newest_first(db):
    start = timezone.now()
    for i in range(5):
        Batch.objects.create(
            prime_batch_id=f"B_{i}", asset_kind="currency", created_at=start + timedelta(i % 2)
        )
    expected = list(Batch.objects.order_by("-created_at", "-pk"))

    pages, _ = _walk_forward(Keyset(order=("-created_at", "-pk"), per_page=2), Batch.objects.all())

    assert [b for rows in pages for b in rows] == expected


def test_a_single_integer_key_is_its_own_cursor(db):
    keyset = Keyset(order=("-seq",), forward="older", backward="newer", per_page=1)
    assert keyset.encode(AuditEvent(seq=42)) == "42"
    assert keyset.decode(AuditEvent, "42") == (42,)


@pytest.mark.parametrize(
    "cursor",
    [
        "WyJcdWQ4MDAiLCAxXQ",  # ["\ud800", 1]: a lone surrogate
        _b64(["a\x00b", 1]),
        _b64(["a", 2**63]),
        _b64(["a", True]),
        _b64(["a", None]),
        _b64(["a"]),
        _b64({"name": "a"}),
        _b64(["a", 1, 2]),
        "%%%",
        "x" * 401,
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_a_cursor_that_is_not_ours_shows_the_first_page(users, cursor):
    assert BY_NAME.decode(PrimeUser, cursor) is None
    for page in (
        BY_NAME.page(PrimeUser.objects.all(), after=cursor),
        BY_NAME.page(PrimeUser.objects.all(), before=cursor),
    ):
        assert page.rows == users[:3] and page.prev_cursor is None


@pytest.mark.parametrize(
    "value", ["10000-01-01T00:00:00+00:00", "2026-01-01T00:00:00", "yesterday", 12]
)
def test_a_time_cursor_must_be_an_aware_time_in_the_calendar(value):
    assert NEWEST_FIRST.decode(Batch, _b64([value, 1])) is None


@pytest.mark.parametrize("cursor", ["-1", "1e3", "9" * 30, "١٢", " 1"])
def test_an_integer_cursor_is_plain_digits_within_64_bits(cursor):
    keyset = Keyset(order=("-seq",))
    assert keyset.decode(AuditEvent, cursor) is None


def test_a_page_costs_one_query(users, django_assert_num_queries):
    with django_assert_num_queries(1):
        BY_NAME.page(PrimeUser.objects.all(), after=BY_NAME.encode(users[2]))
    with django_assert_num_queries(1):
        BY_NAME.page(PrimeUser.objects.all(), before=BY_NAME.encode(users[5]))


def test_links_keep_the_filters_and_drop_the_other_direction(users):
    page = BY_NAME.page(PrimeUser.objects.all(), after=BY_NAME.encode(users[2]))
    query = QueryDict("q=a&before=junk&after=old")

    links = {link.kind: link for link in page.links(query)}

    assert links["first"].query.urlencode() == "q=a"
    assert links["previous"].query.dict() == {"q": "a", "before": page.prev_cursor}
    assert links["next"].query.dict() == {"q": "a", "after": page.next_cursor}
    assert [link.label for link in page.links(query)] == ["First", "Previous", "Next"]
