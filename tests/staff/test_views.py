import pytest
from django.urls import reverse

from portal.audit.models import AuditAction, AuditEvent
from portal.staff.models import PortalSecurity
from tests.conftest import make_staff
from tests.staff.otp import confirmed_device, verified_login

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture
def admin_client(client, admin):
    client.force_login(admin)
    return client


def test_the_staff_page_lists_people_with_roles_and_two_factor(admin_client, operator, viewer):
    confirmed_device(operator)

    response = admin_client.get(reverse("staff:list"))

    assert response.status_code == 200
    html = response.content.decode()
    assert "otto.operator" in html
    assert "vic.viewer" in html
    row = html.split(f'id="staff-{operator.pk}"', 1)[1].split("</tr>", 1)[0]
    assert 'aria-pressed="true" title="Holds Operator' in row
    assert ">On</span>" in row
    assert 'hx-history="false"' in html


def test_an_operator_gets_a_plain_403_for_the_staff_page(client, operator):
    client.force_login(operator)

    response = client.get(reverse("staff:list"))

    assert response.status_code == 403
    assert b"You need permission to manage staff (Admin role)" in response.content
    assert b"<html" in response.content


def test_granting_a_role_with_htmx_returns_only_the_row(admin_client, viewer):
    response = admin_client.post(
        reverse("staff:roles", args=[viewer.pk]),
        {"role": "Approver", "action": "grant"},
        headers=HTMX,
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith(f'<tr id="staff-{viewer.pk}"')
    assert "<html" not in html
    assert 'title="Holds Approver: click to revoke"' in html
    # The success message arrives out of band.
    assert 'id="messages"' in html and 'hx-swap-oob="true"' in html
    assert "Granted Approver to vic.viewer." in html
    assert viewer.groups.filter(name="Approver").exists()


def test_a_refused_role_change_shows_why_in_the_row(admin_client, admin):
    response = admin_client.post(
        reverse("staff:roles", args=[admin.pk]), {"role": "Admin", "action": "revoke"}, headers=HTMX
    )

    assert response.status_code == 422
    html = response.content.decode()
    assert html.lstrip().startswith("<tr")
    assert "You are the last active Admin" in html
    assert admin.groups.filter(name="Admin").exists()


def test_a_role_change_without_javascript_redirects_back(admin_client, viewer):
    response = admin_client.post(
        reverse("staff:roles", args=[viewer.pk]), {"role": "Operator", "action": "grant"}
    )

    assert response.status_code == 302
    assert response.headers["Location"] == reverse("staff:list")
    assert viewer.groups.filter(name="Operator").exists()


def test_garbage_role_input_is_a_422_not_a_500(admin_client, viewer):
    response = admin_client.post(
        reverse("staff:roles", args=[viewer.pk]), {"role": "Root", "action": "x"}, headers=HTMX
    )

    assert response.status_code == 422


def test_creating_staff_shows_the_generated_password_once(admin_client):
    response = admin_client.post(
        reverse("staff:create"),
        {"username": "nina", "display_name": "Nina", "roles": ["Operator"]},
        headers=HTMX,
    )

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = response.content.decode()
    assert html.lstrip().startswith('<section class="panel" id="staff-create">')
    assert "shown <strong>only this once</strong>" in html
    # The table body is refreshed out of band (inside a <template>, as table rows need).
    assert '<tbody id="staff-rows" hx-swap-oob="true">' in html
    assert "nina" in html.split('id="staff-rows"', 1)[1]
    # The next visit to the page does not show it again.
    again = admin_client.get(reverse("staff:list")).content.decode()
    assert "only this once" not in again


def test_creating_staff_with_bad_input_answers_422_with_the_form(admin_client):
    response = admin_client.post(
        reverse("staff:create"),
        {"username": "bad name!", "password": "123"},
        headers=HTMX,
    )

    assert response.status_code == 422
    html = response.content.decode()
    assert 'id="staff-create"' in html
    assert "errorlist" in html
    assert not AuditEvent.objects.filter(action=AuditAction.STAFF_CREATED).exists()


def test_creating_a_duplicate_username_is_refused(admin_client, viewer):
    response = admin_client.post(reverse("staff:create"), {"username": "Vic.Viewer"}, headers=HTMX)

    assert response.status_code == 422
    assert b"already exists" in response.content


def test_deactivating_returns_the_row_marked_deactivated(admin_client, operator):
    response = admin_client.post(reverse("staff:deactivate", args=[operator.pk]), headers=HTMX)

    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith(f'<tr id="staff-{operator.pk}" class="inactive"')
    assert "Deactivated" in html


def test_an_admin_cannot_deactivate_themselves(admin_client, admin):
    make_staff("second.admin", "Admin")

    response = admin_client.post(reverse("staff:deactivate", args=[admin.pk]), headers=HTMX)

    assert response.status_code == 422
    assert b"You cannot deactivate your own account" in response.content


def test_the_two_factor_requirement_toggles_with_htmx(client, admin):
    verified_login(client, admin)
    on = client.post(reverse("staff:two-factor-requirement"), {"require": "on"}, headers=HTMX)

    assert on.status_code == 200
    assert on.content.decode().lstrip().startswith('<section class="panel" id="security-panel">')
    assert b"Required for everyone" in on.content
    assert PortalSecurity.objects.get().require_two_factor

    off = client.post(reverse("staff:two-factor-requirement"), headers=HTMX)

    assert b"Optional" in off.content
    assert not PortalSecurity.objects.get().require_two_factor
    assert AuditEvent.objects.filter(action=AuditAction.OTP_REQUIREMENT_CHANGED).count() == 2


def test_an_admin_without_an_app_cannot_require_two_factor(admin_client):
    response = admin_client.post(
        reverse("staff:two-factor-requirement"), {"require": "on"}, headers=HTMX
    )

    assert response.status_code == 422
    assert b"Set up two-factor sign-in for your own account first" in response.content
    assert not PortalSecurity.objects.filter(require_two_factor=True).exists()


def test_a_refused_htmx_action_answers_with_a_message_and_no_swap(client, operator, viewer):
    client.force_login(operator)

    response = client.post(
        reverse("staff:roles", args=[viewer.pk]),
        {"role": "Admin", "action": "grant"},
        headers=HTMX,
    )

    assert response.status_code == 403
    assert response.headers["HX-Reswap"] == "none"
    html = response.content.decode()
    assert 'hx-swap-oob="true"' in html
    assert "You need permission to manage staff (Admin role)" in html
    refused = AuditEvent.objects.get(action=AuditAction.PERMISSION_REFUSED)
    assert refused.actor_id == operator.pk
    assert not viewer.groups.filter(name="Admin").exists()


def test_the_staff_page_costs_the_same_queries_for_10_or_40_people(admin_client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for n in range(9):
        make_staff(f"person{n}", "Viewer", "Operator")
    with CaptureQueriesContext(connection) as few:
        admin_client.get(reverse("staff:list"))
    for n in range(9, 40):
        make_staff(f"person{n}", "Viewer")
    with CaptureQueriesContext(connection) as many:
        admin_client.get(reverse("staff:list"))

    assert len(many) == len(few)
    assert len(few) <= 16
