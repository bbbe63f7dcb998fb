"""An unchanged live poll is answered by LivePollMiddleware before the rest of the chain
(issue 13): one statement (session, person, batch number), no template, 204; every other
case goes through the whole chain and gets the answer it always got."""

from __future__ import annotations

import random
import re

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.settlement.models import Leg
from portal.staff.models import PortalSecurity, Staff
from tests.bench.test_query_counts import _batches
from tests.staff.otp import confirmed_device

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
_POLL_URL = re.compile(r'hx-get="([^"]*/live/\?v=[0-9a-f]+)"')


@pytest.fixture
def watching(client, viewer, operator, approver):
    client.force_login(viewer)
    (batch_id,) = _batches(1, random.Random(7), operator=operator, approver=approver, active=1)
    first = client.get(reverse("settlement:batch-live", args=[batch_id]), **HTMX)
    assert first.status_code == 200
    return client, _POLL_URL.search(first.content.decode()).group(1)


def _poll(client, url, **extra):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, **{**HTMX, **extra})
    return response, len(queries)


def test_unchanged_is_one_statement_no_template_and_204(watching):
    client, url = watching
    response, statements = _poll(client, url)
    assert response.status_code == 204
    assert response.content == b""
    assert not response.templates
    assert statements == 1  # the session, the person and the batch's number together
    assert "Cookie" in response["Vary"] and "HX-Request" in response["Vary"]
    assert response["X-Frame-Options"] == "DENY"


def test_signed_out_gets_the_sign_in_answer_of_the_chain(watching):
    client, url = watching
    client.logout()
    response, _ = _poll(client, url)
    assert response.status_code == 401  # htmx: sent to sign in with a full page
    assert reverse("staff:login") in response["HX-Redirect"]


def test_a_deactivated_person_is_not_answered_early(watching, viewer):
    client, url = watching
    Staff.objects.filter(pk=viewer.pk).update(is_active=False)
    response, _ = _poll(client, url)
    assert response.status_code == 401


def test_half_signed_in_is_sent_to_the_code(watching, viewer):
    client, url = watching
    confirmed_device(viewer)  # an app, and this session never entered its code
    response, _ = _poll(client, url)
    assert response.status_code == 200
    assert reverse("staff:two-factor") in response["HX-Redirect"]


def test_required_two_factor_is_not_skipped(watching):
    client, url = watching
    PortalSecurity.objects.update_or_create(
        pk=PortalSecurity.SINGLETON_ID, defaults={"require_two_factor": True}
    )
    response, _ = _poll(client, url)
    assert reverse("staff:two-factor-setup") in response["HX-Redirect"]


def test_a_revoked_role_is_refused_on_the_next_poll(watching, viewer):
    client, url = watching
    viewer.groups.remove(Group.objects.get(name="Viewer"))
    response, _ = _poll(client, url)
    assert response.status_code == 403


# Committed like a request in production (on PostgreSQL the number moves at commit).
@pytest.mark.django_db(transaction=True)
def test_a_change_is_drawn(watching):
    client, url = watching
    Leg.objects.filter(pk=Leg.objects.order_by("asset").first().pk).update(
        transfer_id="777124", transfer_status="completed"
    )
    response, _ = _poll(client, url)
    assert response.status_code in (200, 286)
    assert "#777124" in response.content.decode()
    assert _POLL_URL.search(response.content.decode()).group(1) != url


def test_a_history_restore_gets_the_whole_page(watching):
    client, url = watching
    response, _ = _poll(client, url, HTTP_HX_HISTORY_RESTORE_REQUEST="true")
    assert response.status_code == 302  # the view sends it to the batch page


def test_other_pages_and_plain_requests_are_not_touched(watching):
    client, url = watching
    assert client.get(url).status_code == 302  # no htmx header: the view's redirect
    response = client.get(reverse("home") + "live/?v=1", **HTMX)
    assert response.status_code == 404
