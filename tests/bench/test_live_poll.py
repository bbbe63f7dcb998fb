"""The batch page's live poll (issue 13): "nothing changed" costs one statement and no
template; a change is still delivered on the next poll."""

from __future__ import annotations

import random
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.bench.test_query_counts import _batches

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
_POLL_URL = re.compile(r'hx-get="([^"]*/live/\?v=[0-9a-f]+)"')


def _poll_url(html: str) -> str:
    found = _POLL_URL.search(html)
    assert found, "the fragment carries its version in its hx-get URL"
    return found.group(1)


@pytest.fixture
def watching(client, viewer, operator, approver):
    client.force_login(viewer)
    (batch_id,) = _batches(1, random.Random(5), operator=operator, approver=approver, active=1)
    client.get(reverse("home"))  # the session's roles are read at sign-in; warm the rest
    return client, batch_id


def test_nothing_changed_is_one_statement_and_no_template(watching):
    client, batch_id = watching
    first = client.get(reverse("settlement:batch-live", args=[batch_id]), **HTMX)
    assert first.status_code == 200
    url = _poll_url(first.content.decode())

    with CaptureQueriesContext(connection) as fixed:
        client.get(reverse("home"))
    with CaptureQueriesContext(connection) as queries:
        again = client.get(url, **HTMX)

    assert again.status_code == 204  # htmx leaves the fragment alone
    assert again.content == b""
    assert not again.templates
    assert len(queries) <= len(fixed) + 1


# Committed like a request in production: on PostgreSQL the version moves when the writer
# commits (portal/settlement/migrations/0004), and a test's own transaction never does.
@pytest.mark.django_db(transaction=True)
def test_a_change_is_delivered_on_the_next_poll(watching):
    from portal.settlement.models import Leg

    client, batch_id = watching
    first = client.get(reverse("settlement:batch-live", args=[batch_id]), **HTMX)
    url = _poll_url(first.content.decode())
    assert client.get(url, **HTMX).status_code == 204

    leg = Leg.objects.filter(batch__prime_batch_id=batch_id).order_by("asset").first()
    Leg.objects.filter(pk=leg.pk).update(transfer_id="777123", transfer_status="completed")

    changed = client.get(url, **HTMX)  # the very next poll, one interval later
    assert changed.status_code in (200, 286)
    html = changed.content.decode()
    assert "#777123" in html
    assert _poll_url(html) != url
    assert client.get(_poll_url(html), **HTMX).status_code == 204


def test_the_page_and_a_poll_without_a_version_draw_the_fragment(watching):
    client, batch_id = watching
    url = reverse("settlement:batch-live", args=[batch_id])
    assert client.get(url, **HTMX).status_code == 200
    assert client.get(f"{url}?v=stale", **HTMX).status_code == 200
    assert client.get(reverse("settlement:batch-live", args=["B_NOPE"]), **HTMX).status_code == 404
