from datetime import timedelta

import pytest
from django.utils import timezone

from portal.actors import SystemActor
from portal.audit.models import AuditAction, AuditEvent, Outcome
from portal.staff import services
from portal.staff.models import PortalSecurity
from tests.conftest import make_staff
from tests.staff.otp import confirmed_device, totp_code, wrong_code

pytestmark = pytest.mark.django_db


def _last(action: AuditAction) -> AuditEvent:
    return AuditEvent.objects.filter(action=action).order_by("-seq").first()


def test_it_creates_staff_with_roles_and_a_generated_password_shown_once(admin):
    created = services.staff_create(
        actor=admin, username="nina", display_name="Nina N", roles=["Operator", "Approver"]
    )

    assert created.generated_password
    assert created.generated_password not in repr(created)
    assert created.staff.check_password(created.generated_password)
    assert sorted(g.name for g in created.staff.groups.all()) == ["Approver", "Operator"]
    event = _last(AuditAction.STAFF_CREATED)
    assert event.actor_id == admin.pk
    assert event.target_id == "nina"
    assert event.after["roles"] == ["Operator", "Approver"]
    assert created.generated_password not in str(event.after) + event.message


def test_it_keeps_a_chosen_password_and_generates_none(admin):
    created = services.staff_create(actor=admin, username="nina", password="a-long-chosen-pw-1")

    assert created.generated_password is None
    assert created.staff.check_password("a-long-chosen-pw-1")


def test_it_refuses_a_username_that_exists_whatever_the_case(admin):
    with pytest.raises(services.StaffRefused, match="already exists"):
        services.staff_create(actor=admin, username="ADA.ADMIN")


def test_it_refuses_an_unknown_role(admin):
    with pytest.raises(services.StaffRefused, match="Unknown role Root"):
        services.staff_create(actor=admin, username="nina", roles=["Root"])


def test_granting_and_revoking_a_role_is_audited_with_before_and_after(admin, viewer):
    services.staff_role_set(actor=admin, staff=viewer, role="Operator", granted=True)

    event = _last(AuditAction.STAFF_ROLES_CHANGED)
    assert event.before["roles"] == ["Viewer"]
    assert event.after["roles"] == ["Viewer", "Operator"]
    assert viewer.groups.filter(name="Operator").exists()

    services.staff_role_set(actor=admin, staff=viewer, role="Viewer", granted=False)

    event = _last(AuditAction.STAFF_ROLES_CHANGED)
    assert event.before["roles"] == ["Viewer", "Operator"]
    assert event.after["roles"] == ["Operator"]


def test_a_role_change_that_changes_nothing_is_not_audited(admin, viewer):
    services.staff_role_set(actor=admin, staff=viewer, role="Viewer", granted=True)

    assert not AuditEvent.objects.filter(action=AuditAction.STAFF_ROLES_CHANGED).exists()


def test_the_last_active_admin_cannot_remove_their_own_admin_role(admin):
    with pytest.raises(services.StaffRefused, match="You are the last active Admin"):
        services.staff_role_set(actor=admin, staff=admin, role="Admin", granted=False)

    assert admin.groups.filter(name="Admin").exists()
    event = _last(AuditAction.STAFF_ROLES_CHANGED)
    assert event.outcome == Outcome.REFUSED
    assert "last active Admin" in event.message


def test_an_admin_may_drop_admin_when_another_active_admin_remains(admin):
    make_staff("second.admin", "Admin")

    services.staff_role_set(actor=admin, staff=admin, role="Admin", granted=False)

    assert not admin.groups.filter(name="Admin").exists()


def test_an_inactive_admin_does_not_count_as_the_other_admin(admin):
    other = make_staff("gone.admin", "Admin")
    other.is_active = False
    other.save(update_fields=["is_active"])

    with pytest.raises(services.StaffRefused):
        services.staff_role_set(actor=admin, staff=admin, role="Admin", granted=False)


def test_deactivating_someone_is_audited_and_ends_their_sign_in(admin, operator, client):
    client.force_login(operator)

    services.staff_deactivate(actor=admin, staff=operator)

    operator.refresh_from_db()
    assert not operator.is_active
    event = _last(AuditAction.STAFF_DEACTIVATED)
    assert (event.before["is_active"], event.after["is_active"]) == (True, False)
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/staff/login/")


def test_nobody_can_deactivate_themselves(admin):
    make_staff("second.admin", "Admin")

    with pytest.raises(services.StaffRefused, match="your own account"):
        services.staff_deactivate(actor=admin, staff=admin)


def test_the_last_active_admin_cannot_be_deactivated_by_a_script(admin):
    with pytest.raises(services.StaffRefused, match=r"ada\.admin is the last active Admin"):
        services.staff_deactivate(actor=SystemActor.GRANT_ROLE, staff=admin)

    event = _last(AuditAction.STAFF_DEACTIVATED)
    assert event.outcome == Outcome.REFUSED
    assert event.actor_label == "system:grant_role"


def test_requiring_two_factor_is_stored_and_audited(admin):
    confirmed_device(admin)
    services.two_factor_requirement_set(actor=admin, required=True)

    row = PortalSecurity.objects.get()
    assert row.require_two_factor
    assert row.changed_by == admin
    event = _last(AuditAction.OTP_REQUIREMENT_CHANGED)
    assert event.before == {"require_two_factor": False}
    assert event.after == {"require_two_factor": True}

    services.two_factor_requirement_set(actor=admin, required=True)
    assert AuditEvent.objects.filter(action=AuditAction.OTP_REQUIREMENT_CHANGED).count() == 1


def test_a_new_authenticator_app_is_confirmed_with_a_code(viewer):
    device = services.otp_device_pending(staff=viewer)
    assert services.otp_device_pending(staff=viewer).pk == device.pk

    check = services.otp_device_confirm(staff=viewer, device=device, token=totp_code(device))

    assert check.ok
    device.refresh_from_db()
    assert device.confirmed
    event = _last(AuditAction.OTP_DEVICE_CONFIRMED)
    assert event.outcome == Outcome.SUCCEEDED
    assert event.target_id == viewer.username


def test_a_wrong_confirmation_code_is_audited_and_confirms_nothing(viewer):
    device = services.otp_device_pending(staff=viewer)

    check = services.otp_device_confirm(staff=viewer, device=device, token=wrong_code(device))

    assert not check.ok
    device.refresh_from_db()
    assert not device.confirmed
    assert _last(AuditAction.OTP_DEVICE_CONFIRMED).outcome == Outcome.FAILED


def test_codes_are_throttled_after_a_wrong_one(viewer):
    device = confirmed_device(viewer)

    assert not services.otp_verify(staff=viewer, token=wrong_code(device)).ok
    throttled = services.otp_verify(staff=viewer, token=totp_code(device))

    assert not throttled.ok
    assert throttled.retry_at is not None
    assert _last(AuditAction.LOGIN_FAILED).outcome == Outcome.REFUSED

    # Once the wait is over (moved back in time rather than slept), the right code works.
    device.refresh_from_db()
    device.throttling_failure_timestamp = timezone.now() - timedelta(seconds=5)
    device.save(update_fields=["throttling_failure_timestamp"])
    assert services.otp_verify(staff=viewer, token=totp_code(device)).ok
    assert _last(AuditAction.LOGIN_SUCCEEDED).message == "two-factor code accepted"


def test_a_code_cannot_be_used_twice(viewer):
    device = confirmed_device(viewer)
    code = totp_code(device)

    assert services.otp_verify(staff=viewer, token=code).ok
    assert not services.otp_verify(staff=viewer, token=code).ok


def test_an_admin_must_have_an_app_before_requiring_two_factor(admin):
    with pytest.raises(services.StaffRefused, match="your own account first"):
        services.two_factor_requirement_set(actor=admin, required=True)

    assert not PortalSecurity.objects.filter(require_two_factor=True).exists()
