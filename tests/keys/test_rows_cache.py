"""A user's keys page draws its rows from the shared cache, keyed by what they show and who
looks: a key changed anywhere, a new name of who issued it and a viewer's rights show on the
next request."""

from __future__ import annotations

from unittest import mock

import jinja2
import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from portal.keys.models import ApiKey
from portal.users.models import PrimeUser

pytestmark = pytest.mark.django_db


@pytest.fixture
def bob(operator):
    now = timezone.now()
    user = PrimeUser.objects.create(prime_id="UBOB00000001", name="Bob Bot", created_at=now)
    ApiKey.objects.create(
        prime_key_id="KBOB00000000", user=user, public_key="pk0", label="first", created_at=now
    )
    ApiKey.objects.create(
        prime_key_id="KBOB00000001", user=user, public_key="pk1", issued_by=operator, created_at=now
    )
    return user


def _page(staff, user: PrimeUser) -> str:
    client = Client()
    client.force_login(staff)
    return client.get(reverse("keys:list", args=[user.prime_id])).content.decode()


def _table(page: str) -> str:
    return page[page.index('<table id="key-table"') : page.index("</table>")]


def test_the_same_keys_are_drawn_once(viewer, bob):
    with mock.patch.object(
        jinja2.Template, "render", autospec=True, side_effect=jinja2.Template.render
    ) as drawn:
        first, second = _page(viewer, bob), _page(viewer, bob)
    assert drawn.call_count == 1
    assert _table(first) == _table(second)


def test_a_key_changed_elsewhere_shows_on_the_next_request(viewer, bob):
    assert "first" in _page(viewer, bob)
    ApiKey.objects.filter(prime_key_id="KBOB00000000").update(
        label="renamed", revoked_at=timezone.now(), revoke_reason="leaked"
    )
    page = _page(viewer, bob)
    assert "renamed" in page and "leaked" in page and ">first<" not in page


def test_a_new_name_of_who_issued_a_key_shows_on_the_next_request(viewer, operator, bob):
    assert str(operator) in _page(viewer, bob)
    type(operator).objects.filter(pk=operator.pk).update(display_name="Otto Renamed")
    assert "Otto Renamed" in _page(viewer, bob)


def test_each_viewer_sees_the_actions_their_rights_give(viewer, operator, bob):
    label_url = reverse("keys:label", args=["KBOB00000000"])
    assert label_url not in _page(viewer, bob)  # drawn first, for a Viewer
    assert label_url in _page(operator, bob)
    assert label_url not in _page(viewer, bob)
