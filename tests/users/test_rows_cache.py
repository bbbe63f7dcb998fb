"""The users list's rows come from the shared cache, keyed by what they show and who looks:
a change made anywhere (another web process, a sync) and a viewer's rights show on the
next request, with nothing invalidated in this process."""

from __future__ import annotations

import re
from datetime import timedelta
from unittest import mock

import jinja2
import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from portal.keys.models import ApiKey
from portal.users.models import PrimeUser
from tests.conftest import make_staff
from tests.users.conftest import HX

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice():
    now = timezone.now()
    user = PrimeUser.objects.create(
        prime_id="UALICE000001", name="Alice Bot", role="Trader", created_at=now
    )
    for n in range(2):
        ApiKey.objects.create(
            prime_key_id=f"KALICE00000{n}", user=user, public_key=f"pk{n}", created_at=now
        )
    return user


def _client(staff) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    return client


def _row(client: Client, user: PrimeUser) -> str:
    body = client.get(reverse("users:list")).content.decode()
    found = re.search(rf'<tr id="user-{user.prime_id}">.*?</tr>', body, re.S)
    assert found, body
    return found.group(0)


def _rows_drawn() -> mock._patch:
    """Counts the drawings of the users rows (the page's frame is drawn by Jinja2 too)."""
    original = jinja2.Template.render

    def render(self, *args, **kwargs):
        if self.name == "users/_rows.jinja":
            render.call_count += 1
        return original(self, *args, **kwargs)

    render.call_count = 0
    return mock.patch.object(jinja2.Template, "render", render)


def test_the_same_rows_are_drawn_once(viewer, alice):
    client = _client(viewer)
    with _rows_drawn() as drawn:
        first = _row(client, alice)
        second = _row(client, alice)
    assert drawn.call_count == 1
    assert first == second


def test_a_user_changed_elsewhere_shows_on_the_next_request(viewer, alice):
    client = _client(viewer)
    assert "Alice Bot" in _row(client, alice)
    # As a sync in another process would: no signal, nothing dropped from the cache here.
    PrimeUser.objects.filter(pk=alice.pk).update(name="Alice Renamed", owner_label="desk 9")
    row = _row(client, alice)
    assert "Alice Renamed" in row and "desk 9" in row and "Alice Bot" not in row


def test_a_revoked_key_changes_the_count_on_the_next_request(viewer, alice):
    client = _client(viewer)
    keys_link = reverse("keys:list", args=[alice.prime_id])
    assert f'<a href="{keys_link}">2</a>' in _row(client, alice)
    ApiKey.objects.filter(prime_key_id="KALICE000000").update(revoked_at=timezone.now())
    assert f'<a href="{keys_link}">1</a>' in _row(client, alice)


def test_each_viewer_sees_the_rows_their_rights_give(viewer, operator, alice):
    seen = timezone.now() - timedelta(hours=1)
    PrimeUser.objects.filter(pk=alice.pk).update(
        changed_outside_at=seen, changed_outside=["role changed at Kraken"]
    )
    viewing, operating = _client(viewer), _client(operator)
    assert "changed outside the portal" in _row(viewing, alice)  # drawn first, for a Viewer
    assert "Reviewed" not in _row(viewing, alice)
    assert "Reviewed" in _row(operating, alice)
    assert "Reviewed" not in _row(viewing, alice)


def test_cached_rows_carry_each_persons_own_csrf_token(operator, alice):
    PrimeUser.objects.filter(pk=alice.pk).update(
        changed_outside_at=timezone.now(), changed_outside=["role changed at Kraken"]
    )
    other = make_staff("olga.operator", "Operator")
    _row(_client(operator), alice)  # fills the cache with the first operator's page
    client = _client(other)
    row = _row(client, alice)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', row)
    seen = re.search(r'name="seen" value="([^"]+)"', row)
    assert token and seen
    response = client.post(
        reverse("users:review", args=[alice.prime_id]),
        {"csrfmiddlewaretoken": token.group(1), "seen": seen.group(1), "where": "row"},
        headers=HX,
    )
    assert response.status_code == 200
    assert "changed outside the portal" not in response.content.decode()
