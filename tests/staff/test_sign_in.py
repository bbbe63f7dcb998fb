from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.actors import SystemActor
from portal.audit.models import AuditAction, AuditEvent, Outcome
from portal.staff import services
from portal.staff.models import PortalSession as Session
from tests.conftest import PASSWORD
from tests.staff.otp import confirmed_device, totp_code, wrong_code

pytestmark = pytest.mark.django_db

LOGIN = reverse("staff:login")


def _sign_in(client, username, password=PASSWORD, **extra):
    return client.post(LOGIN, {"username": username, "password": password}, **extra)


def _events(action):
    return list(AuditEvent.objects.filter(action=action).order_by("seq"))


def test_signing_in_and_out_is_audited(client, viewer):
    response = _sign_in(client, "vic.viewer", HTTP_USER_AGENT="pytest-browser")

    assert response.status_code == 302
    assert response.headers["Location"] == reverse("home")
    (event,) = _events(AuditAction.LOGIN_SUCCEEDED)
    assert event.actor_id == viewer.pk
    assert event.client_ip == "127.0.0.1"
    assert event.user_agent == "pytest-browser"

    client.post(reverse("staff:logout"))

    (event,) = _events(AuditAction.LOGOUT)
    assert event.actor_id == viewer.pk
    assert client.get(reverse("home")).status_code == 302


def test_a_wrong_password_is_audited_without_the_password(client, viewer):
    response = _sign_in(client, "vic.viewer", "not-the-password")

    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content
    (event,) = _events(AuditAction.LOGIN_FAILED)
    assert event.target_id == "vic.viewer"
    assert event.outcome == Outcome.FAILED
    assert "not-the-password" not in str(event.__dict__)


def test_an_unknown_username_is_not_written_to_the_audit(client, db):
    # People type passwords into the username box; never record what is not an account.
    _sign_in(client, "hunter2-oops", "x")

    (event,) = _events(AuditAction.LOGIN_FAILED)
    assert event.target_id == "(unknown)"
    assert "hunter2" not in str(event.__dict__)


def test_a_deactivated_person_cannot_sign_in(client, admin, operator):
    services.staff_deactivate(actor=admin, staff=operator)

    response = _sign_in(client, "otto.operator")

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_it_locks_out_after_repeated_failures_and_audits_it(client, viewer, settings):
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        assert _sign_in(client, "vic.viewer", "wrong").status_code == 200

    locked = _sign_in(client, "vic.viewer", "wrong")

    assert locked.status_code == 429
    assert b"Too many failed sign-ins" in locked.content
    assert b"for 15 minutes" in locked.content
    (event,) = _events(AuditAction.LOGIN_LOCKED_OUT)
    assert event.target_id == "vic.viewer"
    assert event.outcome == Outcome.REFUSED
    # Even the right password is refused while locked out.
    assert _sign_in(client, "vic.viewer").status_code == 429
    assert "_auth_user_id" not in client.session


def test_the_lockout_is_per_username_and_address(client, viewer, operator, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _sign_in(client, "vic.viewer", "wrong", REMOTE_ADDR="10.0.0.7")

    assert _sign_in(client, "vic.viewer", REMOTE_ADDR="10.0.0.7").status_code == 429
    # Another address, or another account from that address, is not locked.
    assert _sign_in(client, "otto.operator", REMOTE_ADDR="10.0.0.7").status_code == 302
    client.post(reverse("staff:logout"))
    assert _sign_in(client, "vic.viewer", REMOTE_ADDR="10.0.0.8").status_code == 302


def test_x_forwarded_for_is_ignored_without_trusted_proxies(client, viewer, settings):
    settings.PORTAL_TRUSTED_PROXY_COUNT = 0
    for n in range(settings.AXES_FAILURE_LIMIT):
        # An attacker rotating a forged header still hits the same lockout.
        _sign_in(client, "vic.viewer", "wrong", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}")

    response = _sign_in(client, "vic.viewer", HTTP_X_FORWARDED_FOR="198.51.100.1")

    assert response.status_code == 429
    event = _events(AuditAction.LOGIN_LOCKED_OUT)[0]
    assert event.client_ip == "127.0.0.1"


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_client(client, viewer, settings):
    settings.PORTAL_TRUSTED_PROXY_COUNT = 1
    proxy = {"REMOTE_ADDR": "10.1.1.1"}
    for _ in range(settings.AXES_FAILURE_LIMIT):
        # The client forges a first entry; the proxy appends the real address.
        _sign_in(
            client, "vic.viewer", "wrong", HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.9", **proxy
        )

    assert (
        _sign_in(client, "vic.viewer", HTTP_X_FORWARDED_FOR="198.51.100.9", **proxy).status_code
        == 429
    )
    event = _events(AuditAction.LOGIN_LOCKED_OUT)[0]
    assert event.client_ip == "198.51.100.9"
    # A different client behind the same proxy is not locked out.
    assert (
        _sign_in(client, "vic.viewer", HTTP_X_FORWARDED_FOR="198.51.100.10", **proxy).status_code
        == 302
    )


def test_an_idle_session_expires(client, viewer, settings):
    _sign_in(client, "vic.viewer")
    assert client.get(reverse("home")).status_code == 200
    session = Session.objects.get(session_key=client.session.session_key)
    # Every request pushes the expiry forward by the idle limit.
    assert session.expire_date > timezone.now() + timedelta(
        seconds=settings.SESSION_COOKIE_AGE - 60
    )
    assert settings.SESSION_COOKIE_AGE <= 60 * 60

    Session.objects.filter(pk=session.pk).update(expire_date=timezone.now() - timedelta(seconds=1))

    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response.headers["Location"].startswith(LOGIN)


def test_activity_keeps_a_session_alive(client, viewer):
    _sign_in(client, "vic.viewer")
    key = client.session.session_key
    soon = timezone.now() + timedelta(seconds=30)
    Session.objects.filter(pk=key).update(expire_date=soon)

    assert client.get(reverse("home")).status_code == 200

    assert Session.objects.get(pk=key).expire_date > soon


# Two-factor ------------------------------------------------------------------------------------


def test_with_an_app_the_password_leads_to_the_code_step(client, viewer):
    confirmed_device(viewer)

    response = _sign_in(client, "vic.viewer")

    assert response.status_code == 302
    assert response.headers["Location"].startswith(reverse("staff:two-factor"))
    (event,) = _events(AuditAction.LOGIN_SUCCEEDED)
    assert event.message == "password accepted; two-factor code pending"


def test_until_the_code_is_entered_every_page_leads_to_the_code_step(client, admin):
    confirmed_device(admin)
    _sign_in(client, "ada.admin")

    page = client.get(reverse("staff:list"))
    assert page.status_code == 302
    assert page.headers["Location"].startswith(reverse("staff:two-factor") + "?next=")
    action = client.post(reverse("staff:create"), {"username": "sneaky"})
    assert action.status_code == 302
    htmx = client.get(reverse("staff:list"), headers={"HX-Request": "true"})
    assert htmx.headers["HX-Redirect"].startswith(reverse("staff:two-factor"))
    assert not AuditEvent.objects.filter(action=AuditAction.STAFF_CREATED).exists()


def test_the_right_code_completes_sign_in(client, admin):
    device = confirmed_device(admin)
    _sign_in(client, "ada.admin")
    old_key = client.session.session_key

    response = client.post(
        reverse("staff:two-factor"), {"token": totp_code(device), "next": reverse("staff:list")}
    )

    assert response.status_code == 302
    assert response.headers["Location"] == reverse("staff:list")
    assert client.session.session_key != old_key
    assert client.get(reverse("staff:list")).status_code == 200


def test_a_wrong_code_is_refused_then_throttled(client, viewer):
    device = confirmed_device(viewer)
    _sign_in(client, "vic.viewer")

    wrong = client.post(reverse("staff:two-factor"), {"token": wrong_code(device)})
    throttled = client.post(reverse("staff:two-factor"), {"token": totp_code(device)})

    assert wrong.status_code == 422
    assert b"That code is not right" in wrong.content
    assert throttled.status_code == 422
    assert b"Too many wrong codes" in throttled.content
    assert client.get(reverse("home")).status_code == 302


def test_the_next_address_must_stay_on_the_portal(client, viewer):
    device = confirmed_device(viewer)
    _sign_in(client, "vic.viewer")

    response = client.post(
        reverse("staff:two-factor"), {"token": totp_code(device), "next": "https://evil.test/"}
    )

    assert response.headers["Location"] == reverse("home")


def test_when_required_a_person_without_an_app_must_set_one_up(client, admin, viewer):
    services.two_factor_requirement_set(actor=SystemActor.COMMAND_LINE, required=True)

    signed_in = _sign_in(client, "vic.viewer")
    assert signed_in.headers["Location"].startswith(reverse("staff:two-factor-setup"))
    assert (
        client.get(reverse("home"))
        .headers["Location"]
        .startswith(reverse("staff:two-factor-setup"))
    )

    setup = client.get(reverse("staff:two-factor-setup"))
    assert setup.status_code == 200
    assert setup.headers["Cache-Control"] == "no-store"
    assert b"<svg" in setup.content
    assert b"http" not in setup.content.split(b"<svg", 1)[1].split(b"</svg>", 1)[0].replace(
        b"http://www.w3.org/2000/svg", b""
    )
    device = services.otp_device_pending(staff=viewer)
    confirmed = client.post(reverse("staff:two-factor-setup"), {"token": totp_code(device)})

    assert confirmed.status_code == 302
    assert client.get(reverse("home")).status_code == 200
    (event,) = _events(AuditAction.OTP_DEVICE_CONFIRMED)
    assert event.outcome == Outcome.SUCCEEDED


def test_the_setup_page_shows_the_secret_for_typing_in(client, viewer):
    client.force_login(viewer)

    response = client.get(reverse("staff:two-factor-setup"))

    from portal.staff.two_factor import secret_base32

    device = services.otp_device_pending(staff=viewer)
    assert secret_base32(device).encode() in response.content
    assert b'hx-history="false"' in response.content


def test_a_person_with_an_app_cannot_enrol_another_before_the_code(client, viewer):
    confirmed_device(viewer)
    _sign_in(client, "vic.viewer")

    response = client.get(reverse("staff:two-factor-setup"))

    assert response.status_code == 200
    assert b"already has an authenticator app" in response.content
    assert b"<svg" not in response.content


def test_sign_out_works_half_way_through_two_factor(client, viewer):
    confirmed_device(viewer)
    _sign_in(client, "vic.viewer")

    response = client.post(reverse("staff:logout"))

    assert response.status_code == 302
    assert "_auth_user_id" not in client.session


def test_half_signed_in_the_frame_shows_no_navigation(client, admin):
    device = confirmed_device(admin)
    _sign_in(client, "ada.admin")

    step = client.get(reverse("staff:two-factor")).content.decode()

    assert '<nav class="nav"' in step and "Staff</a>" not in step
    assert 'id="prime-status"' not in step
    client.post(reverse("staff:two-factor"), {"token": totp_code(device)})
    page = client.get(reverse("home")).content.decode()
    assert "Staff</a>" in page
    assert 'id="prime-status"' in page
