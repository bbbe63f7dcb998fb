"""The fixed work of a signed-in request (issue 13): at most three statements besides the
page's own data, no session write on every request, and roles that are read once per
session yet follow an Admin's change on the person's very next request."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from portal.staff import services
from portal.staff.models import PortalSession as Session
from portal.staff.roles import Role

pytestmark = pytest.mark.django_db


def _statements(client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, response.status_code
    return [q["sql"] for q in queries.captured_queries]


def test_a_signed_in_page_needs_at_most_three_fixed_statements(client, viewer):
    client.force_login(viewer)
    client.get(reverse("home"))
    statements = _statements(client, reverse("home"))
    # The home page has no data of its own: session, person, two-factor device.
    assert len(statements) <= 3, statements
    assert not any("auth_permission" in sql or "auth_group" in sql for sql in statements)
    assert not any(sql.lstrip().upper().startswith(("UPDATE", "INSERT")) for sql in statements)


def test_the_fixed_part_is_the_same_on_a_list_page(client, viewer):
    client.force_login(viewer)
    home = _statements(client, reverse("home"))
    audit = _statements(client, reverse("audit:list"))
    fixed = [sql for sql in audit if sql in home]
    assert len(fixed) <= 3


def test_the_session_is_written_when_its_idle_mark_is_a_minute_old(client, viewer):
    client.force_login(viewer)
    key = client.session.session_key
    client.get(reverse("home"))
    written = Session.objects.get(pk=key).expire_date
    assert client.get(reverse("home")).status_code == 200
    assert Session.objects.get(pk=key).expire_date == written  # not written again

    stale = written - timedelta(seconds=90)
    Session.objects.filter(pk=key).update(expire_date=stale)
    assert client.get(reverse("home")).status_code == 200
    assert Session.objects.get(pk=key).expire_date > timezone.now() + timedelta(minutes=20)


def test_a_role_change_by_an_admin_takes_effect_on_the_next_request(client, viewer, admin):
    client.force_login(viewer)
    create = reverse("users:create")
    assert client.get(create).status_code == 403
    assert client.get(reverse("home")).status_code == 200  # roles now kept in the session

    services.staff_role_set(actor=admin, staff=viewer, role=Role.OPERATOR, granted=True)
    assert client.get(create).status_code == 200
    assert "Operator" in client.get(reverse("home")).content.decode()

    services.staff_role_set(actor=admin, staff=viewer, role=Role.OPERATOR, granted=False)
    assert client.get(create).status_code == 403


def test_a_role_change_through_the_staff_page_reaches_the_other_session(
    client, viewer, admin, django_capture_on_commit_callbacks
):
    from django.test import Client

    client.force_login(viewer)
    assert client.get(reverse("users:create")).status_code == 403
    admin_client = Client()
    admin_client.force_login(admin)
    with django_capture_on_commit_callbacks(execute=True):
        services.staff_role_set(actor=admin, staff=viewer, role=Role.OPERATOR, granted=True)
    assert client.get(reverse("users:create")).status_code == 200
