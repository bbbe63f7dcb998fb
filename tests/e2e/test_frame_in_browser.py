"""The frame in a real browser: navigation, 403s, htmx actions and messages, laptop widths."""

import os
from pathlib import Path

import pytest

from portal.staff import services
from tests.conftest import make_staff
from tests.e2e.conftest import sign_in
from tests.staff.otp import confirmed_device

pytestmark = pytest.mark.django_db(transaction=True)


def _row(page, person):
    return page.locator(f"#staff-{person.pk}")


def test_a_viewer_signs_in_and_sees_the_frame(page, live_server, viewer):
    sign_in(page, live_server, viewer)
    page.wait_for_url(f"{live_server.url}/")
    assert page.locator("header .who").inner_text().count("Viewer") == 1


def test_an_operator_opening_the_staff_page_gets_a_plain_403(page, live_server, operator):
    sign_in(page, live_server, operator)
    page.wait_for_url(f"{live_server.url}/")

    response = page.goto(f"{live_server.url}/staff/")

    assert response.status == 403
    assert page.locator("h1").inner_text() == "Not allowed"
    assert "You need permission to manage staff (Admin role)" in page.locator("main").inner_text()
    # Still inside the frame, with the way back.
    assert "Prime users" in page.locator("nav.nav").inner_text()


def test_granting_a_role_updates_the_row_in_place_with_a_message(page, live_server, admin, viewer):
    sign_in(page, live_server, admin)
    page.goto(f"{live_server.url}/staff/")
    page.evaluate("window.__sameDocument = true")

    _row(page, viewer).get_by_role("button", name="Approver").click()

    chip = _row(page, viewer).get_by_role("button", name="Approver")
    chip.wait_for(state="attached")
    page.wait_for_function(
        "sel => document.querySelector(sel)?.getAttribute('aria-pressed') === 'true'",
        arg=f"#staff-{viewer.pk} button[title^='Holds Approver']",
    )
    assert "Granted Approver to vic.viewer." in page.locator("#messages").inner_text()
    assert page.evaluate("window.__sameDocument") is True  # no full page load
    assert viewer.groups.filter(name="Approver").exists()


def test_removing_the_last_admin_role_is_refused_in_the_row(page, live_server, admin):
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, live_server, admin)
    page.goto(f"{live_server.url}/staff/")

    _row(page, admin).get_by_role("button", name="Admin").click()

    error = _row(page, admin).locator(".row-error")
    error.wait_for()
    assert "You are the last active Admin" in error.inner_text()
    assert admin.groups.filter(name="Admin").exists()


def test_an_htmx_action_refused_shows_a_message(page, live_server, admin, viewer):
    other_admin = make_staff("second.admin", "Admin")
    sign_in(page, live_server, admin)
    page.goto(f"{live_server.url}/staff/")
    # While the page is open, another Admin takes this person's Admin role away.
    services.staff_role_set(actor=other_admin, staff=admin, role="Admin", granted=False)

    _row(page, viewer).get_by_role("button", name="Operator").click()

    message = page.locator("#messages .message.error")
    message.wait_for()
    assert "You need permission to manage staff (Admin role)" in message.inner_text()
    # The row was left as it was.
    assert (
        _row(page, viewer).get_by_role("button", name="Operator").get_attribute("aria-pressed")
        == "false"
    )
    assert not viewer.groups.filter(name="Operator").exists()


def test_creating_staff_shows_the_password_once_and_adds_the_row(page, live_server, admin):
    sign_in(page, live_server, admin)
    page.goto(f"{live_server.url}/staff/")

    page.fill("#id_username", "nina")
    page.fill("#id_display_name", "Nina N")
    page.check("input[name=roles][value=Operator]")
    page.click("#staff-create button[type=submit]")

    box = page.locator("#new-password")
    box.wait_for()
    password = box.inner_text().strip()
    assert len(password) >= 20
    assert "nina" in page.locator("#staff-rows").inner_text()
    assert "Created nina." in page.locator("#messages").inner_text()
    # htmx keeps no copy of the page for the back button.
    stored = page.evaluate("JSON.stringify(Object.assign({}, window.localStorage))")
    assert password not in stored
    from django.contrib.auth import get_user_model

    assert get_user_model().objects.get(username="nina").check_password(password)


@pytest.mark.parametrize("width", [1280, 1440])
def test_pages_fit_a_laptop_screen(new_page, live_server, admin, operator, width, tmp_path):
    for n in range(12):
        make_staff(f"someone.with.a.longish.name{n}", "Viewer", "Operator", "Approver")
    confirmed_device(operator)
    # PORTAL_SCREENSHOT_DIR keeps the screenshots for a person to look at.
    shots = Path(os.environ.get("PORTAL_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page = new_page(viewport={"width": width, "height": 900})
    sign_in(page, live_server, admin)
    page.wait_for_url(f"{live_server.url}/")

    for path in ("/", "/staff/", "/staff/two-factor/setup/"):
        page.goto(f"{live_server.url}{path}")
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, (path, overflow)
        shot = path.strip("/").replace("/", "-") or "home"
        page.screenshot(path=str(shots / f"{width}-{shot}.png"), full_page=True)
