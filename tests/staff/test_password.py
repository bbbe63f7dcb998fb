"""Changing your own password: service, page, htmx form, session kept, audit."""

import pytest
from django.test import Client
from django.urls import reverse

from portal.audit.models import AuditAction, AuditEvent, Outcome
from portal.staff import services
from portal.staff.models import PortalSession as Session
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
URL = reverse("staff:password")
NEW = "a brand new passphrase 77"


def _events():
    return list(AuditEvent.objects.filter(action=AuditAction.PASSWORD_CHANGED).order_by("seq"))


def _form(current=PASSWORD, new=NEW, again=None):
    return {"current_password": current, "new_password1": new, "new_password2": again or new}


# --- service ---------------------------------------------------------------------------------


def test_it_changes_the_password_and_audits_without_either_password(viewer):
    services.staff_password_change(staff=viewer, current_password=PASSWORD, new_password=NEW)

    viewer.refresh_from_db()
    assert viewer.check_password(NEW)
    (event,) = _events()
    assert event.actor_id == viewer.pk
    assert event.target_id == "vic.viewer"
    assert event.outcome == Outcome.SUCCEEDED
    assert PASSWORD not in str(event.__dict__)
    assert NEW not in str(event.__dict__)


def test_it_refuses_a_wrong_current_password_and_audits_the_failure(viewer):
    with pytest.raises(services.StaffRefused, match="not your current password"):
        services.staff_password_change(
            staff=viewer, current_password="guess-1234", new_password=NEW
        )

    viewer.refresh_from_db()
    assert viewer.check_password(PASSWORD)
    (event,) = _events()
    assert event.outcome == Outcome.REFUSED
    assert "guess-1234" not in str(event.__dict__)


# --- views -----------------------------------------------------------------------------------


def test_the_header_links_to_the_password_page(client, viewer):
    client.force_login(viewer)

    html = client.get(reverse("home")).content.decode()

    assert f'href="{URL}"' in html


def test_the_page_shows_the_form(client, outsider):
    client.force_login(outsider)  # no portal role: still their own password

    response = client.get(URL)

    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" in html
    assert 'name="current_password"' in html and 'name="new_password2"' in html


def test_htmx_gets_only_the_form(client, viewer):
    client.force_login(viewer)

    response = client.get(URL, headers=HTMX)

    html = response.content.decode()
    assert html.lstrip().startswith('<form id="password-form"')
    assert "<html" not in html


def test_changing_keeps_this_session_and_ends_the_others(client, viewer):
    other = Client()
    other.force_login(viewer)
    client.force_login(viewer)

    response = client.post(URL, _form())

    assert response.status_code == 302
    assert response.headers["Location"] == URL
    viewer.refresh_from_db()
    assert viewer.check_password(NEW)
    page = client.get(URL)  # still signed in here
    assert page.status_code == 200
    assert "Your password is changed." in page.content.decode()
    assert other.get(reverse("home")).status_code == 302  # the other session ended
    assert _events()[0].outcome == Outcome.SUCCEEDED


def test_changing_with_htmx_redirects_the_client(client, viewer):
    client.force_login(viewer)

    response = client.post(URL, _form(), headers=HTMX)

    assert response.status_code == 200
    assert response.headers["HX-Redirect"] == URL
    viewer.refresh_from_db()
    assert viewer.check_password(NEW)
    assert "_auth_user_id" in client.session


def test_a_wrong_current_password_is_a_422_with_the_form(client, viewer):
    client.force_login(viewer)

    response = client.post(URL, _form(current="not-it-at-all"), headers=HTMX)

    assert response.status_code == 422
    html = response.content.decode()
    assert html.lstrip().startswith('<form id="password-form"')
    assert "That is not your current password." in html
    assert "not-it-at-all" not in html
    viewer.refresh_from_db()
    assert viewer.check_password(PASSWORD)
    assert [e.outcome for e in _events()] == [Outcome.REFUSED]


@pytest.mark.parametrize(
    ("new", "again", "words"),
    [
        ("a brand new passphrase 77", "something else entirely 77", "do not match"),
        ("short", None, "too short"),
        ("password123", None, "too common"),
        ("83726451098273", None, "entirely numeric"),
        ("vic.viewer", None, "too similar"),
    ],
)
def test_djangos_validators_refuse_a_weak_or_mistyped_password(client, viewer, new, again, words):
    client.force_login(viewer)

    response = client.post(URL, _form(new=new, again=again))

    assert response.status_code == 422
    assert words in response.content.decode()
    viewer.refresh_from_db()
    assert viewer.check_password(PASSWORD)
    assert _events() == []


def test_garbage_input_is_a_422_not_a_500(client, viewer):
    client.force_login(viewer)

    response = client.post(URL, {"current_password": "\x00" * 5000, "new_password1": ""})

    assert response.status_code == 422
    assert Session.objects.exists()


def test_a_half_signed_in_person_cannot_change_the_password(client, viewer):
    from tests.staff.otp import confirmed_device

    confirmed_device(viewer)
    client.force_login(viewer)  # password only: the code is still missing

    response = client.post(URL, _form())

    assert response.status_code == 302
    assert response.headers["Location"].startswith(reverse("staff:two-factor"))
    viewer.refresh_from_db()
    assert viewer.check_password(PASSWORD)
