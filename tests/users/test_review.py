"""Acknowledging "changed outside the portal": an Operator marks it reviewed, audited."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.audit.models import AuditAction, AuditEvent, Outcome
from portal.keys.services import prime_sync
from portal.users import services, views
from portal.users.models import PrimeUser
from tests.users.conftest import HX

pytestmark = pytest.mark.django_db


def _events():
    return list(
        AuditEvent.objects.filter(action=AuditAction.SYNC_DIFFERENCE_REVIEWED).order_by("seq")
    )


@pytest.fixture
def changed(prime_user, admin_client, operator):
    """A user renamed at Kraken and flagged by a sync."""
    admin_client.update_api_user(prime_user.prime_id, name="Renamed at Kraken")
    prime_sync(actor=operator, user=prime_user)
    prime_user.refresh_from_db()
    assert prime_user.changed_outside_at is not None
    return prime_user


def _seen(user: PrimeUser) -> str:
    return user.changed_outside_at.isoformat()


def _url(user):
    return reverse("users:review", args=[user.prime_id])


# --- service ---------------------------------------------------------------------------------


def test_it_clears_the_badge_and_records_who_reviewed_which_difference(changed, operator):
    differences = list(changed.changed_outside)

    services.prime_user_review_differences(user=changed, actor=operator, seen=_seen(changed))

    changed.refresh_from_db()
    assert changed.changed_outside_at is None and changed.changed_outside == []
    (event,) = _events()
    assert event.actor_id == operator.pk
    assert event.target_type == "prime_user" and event.target_id == changed.prime_id
    assert event.outcome == Outcome.SUCCEEDED
    assert event.before["changed_outside"] == differences
    assert any("Renamed at Kraken" in d for d in differences)
    assert "Renamed at Kraken" in event.message


def test_a_difference_found_after_the_person_looked_is_not_cleared(changed, operator, admin_client):
    looked_at = _seen(changed)
    admin_client.update_api_user(changed.prime_id, status="Disabled")
    prime_sync(actor=operator, user=changed)

    with pytest.raises(services.DifferencesChanged) as refused:
        services.prime_user_review_differences(user=changed, actor=operator, seen=looked_at)
    assert refused.value.message == services.DIFFERENCES_CHANGED

    changed.refresh_from_db()
    assert changed.changed_outside_at is not None
    assert _events() == []


def test_nothing_to_review_is_not_audited(prime_user, operator):
    services.prime_user_review_differences(user=prime_user, actor=operator, seen="anything")

    assert _events() == []


# --- views -----------------------------------------------------------------------------------


def test_the_detail_page_offers_reviewed_to_an_operator_only(op_client, viewer_client, changed):
    detail = reverse("users:detail", args=[changed.prime_id])

    mine = op_client.get(detail).content.decode()
    theirs = viewer_client.get(detail).content.decode()

    assert f'hx-post="{_url(changed)}"' in mine and f'action="{_url(changed)}"' in mine
    assert f'value="{_seen(changed)}"' in mine
    assert _url(changed) not in theirs
    assert "changed outside the portal" in theirs


def test_reviewed_on_the_detail_page_with_htmx_returns_the_panel(op_client, changed):
    response = op_client.post(_url(changed), {"seen": _seen(changed)}, headers=HX)

    body = response.content.decode()
    assert response.status_code == 200
    assert body.strip().startswith('<section id="user-panel"')
    assert "<html" not in body
    assert "changed outside the portal" not in body.split('id="messages"')[0]
    assert "Differences of Renamed at Kraken marked reviewed." in body
    assert views.DIFFERENCES_REVIEWED.format(name="Renamed at Kraken") in body
    assert len(_events()) == 1


def test_reviewed_without_javascript_redirects_to_the_detail_page(op_client, changed):
    response = op_client.post(_url(changed), {"seen": _seen(changed)})

    assert response.status_code == 302
    assert response.headers["Location"] == reverse("users:detail", args=[changed.prime_id])
    changed.refresh_from_db()
    assert changed.changed_outside_at is None


def test_reviewed_on_the_list_with_htmx_returns_only_the_row(op_client, changed):
    page = op_client.get(reverse("users:list")).content.decode()
    assert 'class="inline review-action"' in page

    response = op_client.post(_url(changed), {"seen": _seen(changed), "where": "row"}, headers=HX)

    body = response.content.decode()
    assert response.status_code == 200
    assert body.strip().startswith(f'<tr id="user-{changed.prime_id}"')
    assert "changed outside the portal" not in body.split('id="messages"')[0]
    assert len(_events()) == 1


def test_reviewed_on_the_list_without_javascript_redirects_to_the_list(op_client, changed):
    response = op_client.post(_url(changed), {"seen": _seen(changed), "where": "row"})

    assert response.status_code == 302
    assert response.headers["Location"] == reverse("users:list")


def test_a_newer_difference_is_a_409_that_keeps_the_badge(
    op_client, changed, operator, admin_client
):
    looked_at = _seen(changed)
    admin_client.update_api_user(changed.prime_id, status="Disabled")
    prime_sync(actor=operator, user=changed)

    response = op_client.post(_url(changed), {"seen": looked_at}, headers=HX)

    assert response.status_code == 409
    body = response.content.decode()
    assert "review them again" in body
    assert "changed outside the portal" in body
    assert _events() == []


def test_a_missing_seen_value_is_a_422_not_a_500(op_client, changed):
    response = op_client.post(_url(changed), {"where": "sideways"}, headers=HX)

    assert response.status_code == 422
    changed.refresh_from_db()
    assert changed.changed_outside_at is not None


def test_a_viewer_cannot_mark_reviewed(viewer_client, changed):
    response = viewer_client.post(_url(changed), {"seen": _seen(changed)}, headers=HX)

    assert response.status_code == 403
    changed.refresh_from_db()
    assert changed.changed_outside_at is not None
    assert AuditEvent.objects.filter(action=AuditAction.PERMISSION_REFUSED).count() == 1
