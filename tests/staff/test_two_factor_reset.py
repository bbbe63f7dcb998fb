"""An Admin resets someone's two-factor sign-in (lost phone): confirm, remove, audit."""

import pytest
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal.audit.models import AuditAction, AuditEvent, Outcome
from portal.staff import services
from tests.conftest import PASSWORD
from tests.staff.otp import confirmed_device, verified_login

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def _events():
    return list(AuditEvent.objects.filter(action=AuditAction.OTP_DEVICE_RESET).order_by("seq"))


def _url(person):
    return reverse("staff:two-factor-reset", args=[person.pk])


def _require_two_factor(admin):
    confirmed_device(admin)
    services.two_factor_requirement_set(actor=admin, required=True)


# --- service ---------------------------------------------------------------------------------


def test_it_removes_every_device_and_audits_who_reset_whom(admin, operator):
    confirmed_device(operator)
    services.otp_device_pending(staff=operator)

    removed = services.otp_device_reset(actor=admin, staff=operator)

    assert removed == 2
    assert not TOTPDevice.objects.filter(user=operator).exists()
    (event,) = _events()
    assert event.actor_id == admin.pk
    assert event.actor_label == "ada.admin"
    assert event.target_id == "otto.operator"
    assert event.outcome == Outcome.SUCCEEDED
    assert event.before == {"confirmed_devices": 1, "unconfirmed_devices": 1}
    assert event.after == {"confirmed_devices": 0, "unconfirmed_devices": 0}
    assert "ada.admin reset the two-factor sign-in of otto.operator" in event.message


def test_a_person_without_a_device_is_left_alone_and_nothing_is_audited(admin, operator):
    assert services.otp_device_reset(actor=admin, staff=operator) == 0
    assert _events() == []


def test_an_admin_cannot_reset_their_own_and_the_refusal_is_audited(admin):
    confirmed_device(admin)

    with pytest.raises(services.StaffRefused, match="ask another Admin"):
        services.otp_device_reset(actor=admin, staff=admin)

    assert TOTPDevice.objects.filter(user=admin, confirmed=True).exists()
    (event,) = _events()
    assert event.outcome == Outcome.REFUSED


def test_after_a_reset_a_required_second_factor_sends_them_to_enrolment(admin, operator):
    _require_two_factor(admin)
    phone = Client()
    verified_login(phone, operator)  # signed in with the lost phone's app
    assert phone.get(reverse("users:list")).status_code == 200

    services.otp_device_reset(actor=admin, staff=operator)

    # Their running session is no longer verified: set up a new app first.
    running = phone.get(reverse("users:list"))
    assert running.status_code == 302
    assert running.headers["Location"].startswith(reverse("staff:two-factor-setup"))
    # And a fresh sign-in goes from the password straight to enrolment, not the code step.
    fresh = Client()
    signed_in = fresh.post(
        reverse("staff:login"), {"username": "otto.operator", "password": PASSWORD}
    )
    assert signed_in.status_code == 302
    assert signed_in.headers["Location"].startswith(reverse("staff:two-factor-setup"))
    assert (
        fresh.get(reverse("users:list"))
        .headers["Location"]
        .startswith(reverse("staff:two-factor-setup"))
    )


def test_after_a_reset_with_two_factor_optional_they_sign_in_with_the_password(admin, operator):
    confirmed_device(operator)
    services.otp_device_reset(actor=admin, staff=operator)

    fresh = Client()
    signed_in = fresh.post(
        reverse("staff:login"), {"username": "otto.operator", "password": PASSWORD}
    )

    assert signed_in.headers["Location"] == reverse("home")
    assert fresh.get(reverse("users:list")).status_code == 200


# --- views -----------------------------------------------------------------------------------


def test_the_staff_page_offers_a_reset_for_people_with_an_app(client, admin, operator, viewer):
    confirmed_device(operator)
    verified_login(client, admin)

    html = client.get(reverse("staff:list")).content.decode()

    row = html.split(f'id="staff-{operator.pk}"', 1)[1].split("</tr>", 1)[0]
    assert f'hx-get="{_url(operator)}"' in row and f'href="{_url(operator)}"' in row
    plain = html.split(f'id="staff-{viewer.pk}"', 1)[1].split("</tr>", 1)[0]
    assert "Reset two-factor" not in plain
    own = html.split(f'id="staff-{admin.pk}"', 1)[1].split("</tr>", 1)[0]
    assert "Reset two-factor" not in own


def test_htmx_get_returns_the_row_with_the_confirmation(client, admin, operator):
    confirmed_device(operator)
    client.force_login(admin)

    response = client.get(_url(operator), headers=HTMX)

    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith(f'<tr id="staff-{operator.pk}"')
    assert "<html" not in html
    assert "authenticator app? Use this when the phone is lost." in html
    assert 'name="confirm"' in html
    assert TOTPDevice.objects.filter(user=operator).exists()  # nothing removed yet


def test_a_plain_get_shows_the_page_with_the_confirmation_open(client, admin, operator):
    confirmed_device(operator)
    client.force_login(admin)

    response = client.get(_url(operator))

    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" in html
    assert html.count('class="otp-reset-confirm"') == 1
    assert TOTPDevice.objects.filter(user=operator).exists()


def test_confirming_with_htmx_removes_the_app_and_returns_the_row(client, admin, operator):
    confirmed_device(operator)
    client.force_login(admin)

    response = client.post(_url(operator), {"confirm": "on"}, headers=HTMX)

    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith(f'<tr id="staff-{operator.pk}"')
    assert ">Off</span>" in html
    assert "Two-factor sign-in of otto.operator reset" in html  # out-of-band message
    assert not TOTPDevice.objects.filter(user=operator).exists()
    assert len(_events()) == 1


def test_confirming_without_javascript_redirects_back(client, admin, operator):
    confirmed_device(operator)
    client.force_login(admin)

    response = client.post(_url(operator), {"confirm": "on"})

    assert response.status_code == 302
    assert response.headers["Location"] == reverse("staff:list")
    assert not TOTPDevice.objects.filter(user=operator).exists()


def test_a_post_without_the_confirmation_removes_nothing(client, admin, operator):
    confirmed_device(operator)
    client.force_login(admin)

    response = client.post(_url(operator), headers=HTMX)

    assert response.status_code == 422
    assert "Confirm the reset" in response.content.decode()
    assert TOTPDevice.objects.filter(user=operator).exists()
    assert _events() == []


def test_an_admin_resetting_their_own_sees_why_in_the_row(client, admin):
    verified_login(client, admin)

    response = client.post(_url(admin), {"confirm": "on"}, headers=HTMX)

    assert response.status_code == 422
    assert "ask another Admin" in response.content.decode()
    assert TOTPDevice.objects.filter(user=admin).exists()


def test_an_operator_cannot_reset_anyones_two_factor(client, operator, viewer):
    confirmed_device(viewer)
    client.force_login(operator)

    response = client.post(_url(viewer), {"confirm": "on"}, headers=HTMX)

    assert response.status_code == 403
    assert TOTPDevice.objects.filter(user=viewer).exists()
    assert AuditEvent.objects.filter(action=AuditAction.PERMISSION_REFUSED).count() == 1
