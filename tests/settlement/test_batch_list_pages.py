"""The batches list pages by keyset (newest first) without counting, and keeps its filters."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from portal.settlement.models import Batch
from portal.settlement.selectors import BATCH_PAGES
from tests.settlement.conftest import mirror_batch

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}
PER_PAGE = BATCH_PAGES.per_page


def pager_link(response, label: str) -> str | None:
    found = re.search(r'<a href="([^"]+)"[^>]*>[^<]*' + label, response.content.decode())
    return html.unescape(found.group(1)) if found else None


def shown(response) -> list[str]:
    return re.findall(r'class="mono" href="[^"]+">(B_[^<]+)<', response.content.decode())


@pytest.fixture
def batches():
    now = timezone.now()
    for i in range(PER_PAGE + 5):
        # Pairs share a creation time: the id orders them.
        mirror_batch(prime_batch_id=f"B_{i:04d}", created_at=now - timedelta(minutes=i // 2))
    return list(
        Batch.objects.order_by("-created_at", "-pk").values_list("prime_batch_id", flat=True)
    )


def test_the_list_walks_older_and_back_without_counting(client, viewer, batches):
    client.force_login(viewer)
    with CaptureQueriesContext(connection) as queries:
        first = client.get(reverse("settlement:batch-list"))
    assert not any("COUNT(*)" in q["sql"].upper() for q in queries.captured_queries)
    assert shown(first) == batches[:PER_PAGE]
    assert pager_link(first, "Newer") is None

    older = client.get(pager_link(first, "Older"), headers=HTMX)
    assert older.content.decode().lstrip().startswith('<div id="batch-table">')
    assert shown(older) == batches[PER_PAGE:]
    assert pager_link(older, "Older") is None

    back = client.get(pager_link(older, "Newer"))
    assert shown(back) == batches[:PER_PAGE]
    assert pager_link(older, "Newest") == reverse("settlement:batch-list")


def test_pages_keep_the_filters(client, viewer, batches):
    client.force_login(viewer)
    first = client.get(reverse("settlement:batch-list"), {"status": "unsettled"})
    assert "status=unsettled" in pager_link(first, "Older")
