"""Signing in through a real browser: password, two-factor, lockout."""

import re

import pytest
from django.conf import settings

from portal.actors import SystemActor
from portal.audit.models import AuditAction, AuditEvent
from portal.staff import services
from portal.staff.two_factor import secret_base32
from tests.e2e.conftest import enter_code, sign_in
from tests.staff.otp import confirmed_device, totp_code, wrong_code

pytestmark = pytest.mark.django_db(transaction=True)


def _nav(page) -> list[str]:
    return [t.strip() for t in page.locator("nav.nav a").all_inner_texts()]


def test_an_operator_signs_in_without_two_factor_and_sees_their_navigation(
    page, live_server, operator
):
    sign_in(page, live_server, operator)

    page.wait_for_url(f"{live_server.url}/")
    nav = _nav(page)
    assert "Prime users" in nav and "Settlement" in nav
    assert "Staff" not in nav and "Prime connection" not in nav
    assert "Operator" in page.locator("header .who").inner_text()


def test_an_admin_signs_in_and_sees_the_admin_navigation(page, live_server, admin):
    sign_in(page, live_server, admin)

    page.wait_for_url(f"{live_server.url}/")
    nav = _nav(page)
    assert "Staff" in nav and "Prime connection" in nav


def test_signing_in_with_two_factor_asks_for_the_code(page, live_server, admin):
    device = confirmed_device(admin)
    sign_in(page, live_server, admin)

    page.wait_for_url(re.compile(r".*/staff/two-factor/.*"))
    assert page.locator("h1").inner_text() == "Two-factor sign-in"
    # Nothing else opens until the code is in.
    page.goto(f"{live_server.url}/staff/")
    assert "/staff/two-factor/" in page.url

    enter_code(page, device)

    assert page.url == f"{live_server.url}/staff/"
    assert page.locator("h1").inner_text() == "Staff"


def test_a_wrong_code_is_refused_in_plain_words(page, live_server, viewer):
    device = confirmed_device(viewer)
    sign_in(page, live_server, viewer)
    page.wait_for_url(re.compile(r".*/staff/two-factor/.*"))

    page.fill("input[name=token]", wrong_code(device))
    page.click("form button[type=submit].primary")

    assert "That code is not right" in page.locator(".errorlist").inner_text()
    assert "/staff/two-factor/" in page.url


def test_enrolling_an_authenticator_app_when_an_admin_requires_it(page, live_server, viewer):
    services.two_factor_requirement_set(actor=SystemActor.COMMAND_LINE, required=True)
    sign_in(page, live_server, viewer)

    page.wait_for_url(re.compile(r".*/staff/two-factor/setup/.*"))
    assert page.locator(".qr svg").count() == 1
    secret = page.locator("#otp-secret").inner_text()
    device = services.otp_device_pending(staff=viewer)
    assert secret == secret_base32(device)
    page.fill("input[name=token]", totp_code(device))
    page.click("form button[type=submit].primary")

    page.wait_for_url(f"{live_server.url}/")
    assert "Two-factor sign-in is on" in page.locator("#messages").inner_text()
    assert AuditEvent.objects.filter(action=AuditAction.OTP_DEVICE_CONFIRMED).count() == 1


def test_repeated_wrong_passwords_lock_the_account(page, live_server, viewer):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in(page, live_server, viewer, password="wrong password")
        assert "correct username and password" in page.locator(".form-error").inner_text()

    sign_in(page, live_server, viewer, password="wrong password")

    assert page.locator("h1").inner_text() == "Too many failed sign-ins"
    # The right password does not get in either.
    sign_in(page, live_server, viewer)
    assert page.locator("h1").inner_text() == "Too many failed sign-ins"
    assert AuditEvent.objects.filter(action=AuditAction.LOGIN_LOCKED_OUT).exists()
