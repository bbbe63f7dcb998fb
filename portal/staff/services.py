"""Writes about staff: accounts, roles, deactivation, two-factor. Each change is audited."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypedDict

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal.actors import Actor
from portal.audit.models import AuditAction, Outcome, TargetType
from portal.audit.services import audit_record
from portal.staff.models import PortalSecurity, Staff
from portal.staff.roles import Role, ensure_roles

DEVICE_NAME = "Authenticator app"
# Audit target id of the portal-wide two-factor requirement.
EVERYONE = "*"


class StaffRefused(Exception):
    """A staff change the portal refuses; the message says why in plain words."""


@dataclass(frozen=True)
class StaffCreated:
    staff: Staff
    # Shown once to the person who created the account; never stored or logged.
    generated_password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class OtpCheck:
    """The answer to a two-factor code: the device that accepted it, or why not."""

    device: TOTPDevice | None = None
    retry_at: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.device is not None


def password_generate() -> str:
    """A random initial password (about 140 bits)."""
    return secrets.token_urlsafe(18)


class StaffSnapshot(TypedDict):
    """A staff member as the audit trail records them before and after a change."""

    username: str
    display_name: str
    roles: list[str]
    is_active: bool


def _snapshot(staff: Staff, roles: Iterable[str] | None = None) -> StaffSnapshot:
    held = set(roles) if roles is not None else {g.name for g in staff.groups.all()}
    return {
        "username": staff.username,
        "display_name": staff.display_name,
        "roles": [role.value for role in Role if role.value in held],
        "is_active": staff.is_active,
    }


def _check_roles(roles: Iterable[str]) -> list[str]:
    wanted = list(dict.fromkeys(roles))
    unknown = [r for r in wanted if r not in Role.values]
    if unknown:
        raise StaffRefused(
            f"Unknown role {', '.join(unknown)}; the roles are {', '.join(Role.values)}."
        )
    return wanted


def _role_group(role: str) -> Group:
    group = Group.objects.filter(name=role).first()
    if group is None:  # a database flushed without post_migrate
        ensure_roles()
        group = Group.objects.get(name=role)
    return group


def _locked_active_admin_ids() -> set[int]:
    """Serialise every change to who is an active Admin, then read the current set.

    Locking the Admin group row (not the Admins' rows) matters: a row lock taken through
    a join is re-checked only against the locked row, so two changes could each still
    see "the other" Admin. The fresh query after the lock sees the committed state.
    """
    Group.objects.select_for_update().get(pk=_role_group(Role.ADMIN).pk)
    rows = (
        get_user_model()
        .objects.filter(is_active=True, groups__name=Role.ADMIN)
        .values_list("pk", flat=True)
    )
    return set(rows)


def _last_admin_words(*, actor: Actor, staff: Staff, doing: str) -> str:
    if getattr(actor, "pk", None) == staff.pk:
        return (
            f"You are the last active Admin, so you cannot {doing}. "
            "Grant the Admin role to someone else first."
        )
    return (
        f"{staff.username} is the last active Admin, so the portal cannot {doing}. "
        "Grant the Admin role to someone else first."
    )


def _refuse(*, actor: Actor, action: AuditAction, staff: Staff, words: str, before: object) -> None:
    audit_record(
        actor=actor,
        action=action,
        target_type=TargetType.STAFF,
        target_id=staff.username,
        outcome=Outcome.REFUSED,
        before=before,
        message=words,
    )
    raise StaffRefused(words)


def staff_create(
    *,
    actor: Actor,
    username: str,
    display_name: str = "",
    roles: Iterable[str] = (),
    password: str | None = None,
) -> StaffCreated:
    """Create a portal account; without a password, generate one to show once."""
    wanted = _check_roles(roles)
    model = get_user_model()
    generated = None if password else password_generate()
    try:
        with transaction.atomic():
            if model.objects.filter(username__iexact=username).exists():
                raise StaffRefused(f"A staff member called {username} already exists.")
            staff = model.objects.create_user(
                username=username, password=password or generated, display_name=display_name
            )
            staff.groups.set([_role_group(role) for role in wanted])
            audit_record(
                actor=actor,
                action=AuditAction.STAFF_CREATED,
                target_type=TargetType.STAFF,
                target_id=staff.username,
                after=_snapshot(staff, wanted),
                message="initial password generated" if generated else "initial password set",
            )
    except IntegrityError:
        raise StaffRefused(f"A staff member called {username} already exists.") from None
    return StaffCreated(staff=staff, generated_password=generated)


def staff_role_set(*, actor: Actor, staff: Staff, role: str, granted: bool) -> Staff:
    """Grant or revoke one role; the last active Admin keeps theirs."""
    (role,) = _check_roles([role])
    refusal = None
    with transaction.atomic():
        admins = _locked_active_admin_ids()
        staff = get_user_model().objects.select_for_update().get(pk=staff.pk)
        before = _snapshot(staff)
        held = set(before["roles"])
        if (role in held) == granted:
            return staff
        if not granted and role == Role.ADMIN and admins == {staff.pk}:
            refusal = _last_admin_words(actor=actor, staff=staff, doing="give up the Admin role")
        else:
            group = _role_group(role)
            if granted:
                staff.groups.add(group)
                held.add(role)
            else:
                staff.groups.remove(group)
                held.discard(role)
            audit_record(
                actor=actor,
                action=AuditAction.STAFF_ROLES_CHANGED,
                target_type=TargetType.STAFF,
                target_id=staff.username,
                before=before,
                after=_snapshot(staff, held),
                message=f"{'granted' if granted else 'revoked'} {role}",
            )
    if refusal:
        _refuse(
            actor=actor,
            action=AuditAction.STAFF_ROLES_CHANGED,
            staff=staff,
            words=refusal,
            before=before,
        )
    return staff


def staff_deactivate(*, actor: Actor, staff: Staff) -> Staff:
    """Stop a person signing in (their sessions end with it); never yourself or the last Admin."""
    refusal = None
    with transaction.atomic():
        admins = _locked_active_admin_ids()
        staff = get_user_model().objects.select_for_update().get(pk=staff.pk)
        before = _snapshot(staff)
        if not staff.is_active:
            return staff
        if getattr(actor, "pk", None) == staff.pk:
            refusal = "You cannot deactivate your own account; ask another Admin."
        elif admins == {staff.pk}:
            refusal = _last_admin_words(actor=actor, staff=staff, doing="deactivate them")
        else:
            staff.is_active = False
            staff.save(update_fields=["is_active"])
            audit_record(
                actor=actor,
                action=AuditAction.STAFF_DEACTIVATED,
                target_type=TargetType.STAFF,
                target_id=staff.username,
                before=before,
                after=_snapshot(staff),
            )
    if refusal:
        _refuse(
            actor=actor,
            action=AuditAction.STAFF_DEACTIVATED,
            staff=staff,
            words=refusal,
            before=before,
        )
    return staff


def two_factor_requirement_set(*, actor: Actor, required: bool) -> PortalSecurity:
    """Require (or stop requiring) two-factor sign-in for everyone.

    An Admin turns it on only once their own account has an authenticator app, so the
    change cannot shut them out of the page they made it on.
    """
    if (
        required
        and isinstance(actor, Staff)
        and not TOTPDevice.objects.filter(user=actor, confirmed=True).exists()
    ):
        raise StaffRefused(
            "Set up two-factor sign-in for your own account first, then require it for everyone."
        )
    with transaction.atomic():
        row, _ = PortalSecurity.objects.select_for_update().get_or_create(
            pk=PortalSecurity.SINGLETON_ID
        )
        if row.require_two_factor == required:
            return row
        before = {"require_two_factor": row.require_two_factor}
        row.require_two_factor = required
        row.changed_at = timezone.now()
        row.changed_by = actor if isinstance(actor, Staff) else None
        row.save(update_fields=["require_two_factor", "changed_at", "changed_by"])
        audit_record(
            actor=actor,
            action=AuditAction.OTP_REQUIREMENT_CHANGED,
            target_type=TargetType.STAFF,
            target_id=EVERYONE,
            before=before,
            after={"require_two_factor": required},
            message="two-factor sign-in required for everyone"
            if required
            else "two-factor sign-in optional",
        )
    return row


def otp_device_pending(*, staff: Staff) -> TOTPDevice:
    """The person's not-yet-confirmed authenticator app (created on first use)."""
    found = TOTPDevice.objects.filter(user=staff, confirmed=False).order_by("pk").first()
    return found or TOTPDevice.objects.create(user=staff, name=DEVICE_NAME, confirmed=False)


def _throttled_verify(device: TOTPDevice, token: str) -> OtpCheck:
    allowed, info = device.verify_is_allowed()
    if not allowed:
        return OtpCheck(retry_at=(info or {}).get("locked_until"))
    # verify_token() counts failures itself (django-otp's throttling: 1, 2, 4 ... seconds).
    if device.verify_token(token):
        return OtpCheck(device=device)
    return OtpCheck()


def otp_device_confirm(*, staff: Staff, device: TOTPDevice, token: str) -> OtpCheck:
    """Confirm a new authenticator app with a code it shows; audited either way."""
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().get(pk=device.pk, user=staff)
        if device.confirmed:
            return OtpCheck(device=device)
        check = _throttled_verify(device, token)
        if check.ok:
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            TOTPDevice.objects.filter(user=staff, confirmed=False).delete()
        audit_record(
            actor=staff,
            action=AuditAction.OTP_DEVICE_CONFIRMED,
            target_type=TargetType.STAFF,
            target_id=staff.username,
            outcome=Outcome.SUCCEEDED if check.ok else _failed_outcome(check),
            after={"device": device.name, "confirmed": check.ok},
            message=_otp_words(check, "authenticator app confirmed"),
        )
    return check


def otp_verify(*, staff: Staff, token: str) -> OtpCheck:
    """Check the second step of a sign-in against the person's confirmed app; audited."""
    with transaction.atomic():
        device = (
            TOTPDevice.objects.select_for_update()
            .filter(user=staff, confirmed=True)
            .order_by("pk")
            .first()
        )
        if device is None:
            return OtpCheck()
        check = _throttled_verify(device, token)
        audit_record(
            actor=staff,
            action=AuditAction.LOGIN_SUCCEEDED if check.ok else AuditAction.LOGIN_FAILED,
            target_type=TargetType.STAFF,
            target_id=staff.username,
            outcome=Outcome.SUCCEEDED if check.ok else _failed_outcome(check),
            message=_otp_words(check, "two-factor code accepted"),
        )
    return check


def _failed_outcome(check: OtpCheck) -> Outcome:
    return Outcome.REFUSED if check.retry_at else Outcome.FAILED


def _otp_words(check: OtpCheck, success: str) -> str:
    if check.ok:
        return success
    if check.retry_at:
        return "two-factor code not checked: too many wrong codes, throttled"
    return "wrong two-factor code"


def staff_password_change(*, staff: Staff, current_password: str, new_password: str) -> Staff:
    """Change your own password after checking the current one; audited either way.

    The new password was already checked by Django's validators (the form); neither
    password ever goes into the audit event.
    """
    if not staff.check_password(current_password):
        _refuse(
            actor=staff,
            action=AuditAction.PASSWORD_CHANGED,
            staff=staff,
            words="That is not your current password.",
            before=None,
        )
    with transaction.atomic():
        staff.set_password(new_password)
        staff.save(update_fields=["password"])
        audit_record(
            actor=staff,
            action=AuditAction.PASSWORD_CHANGED,
            target_type=TargetType.STAFF,
            target_id=staff.username,
            message="own password changed",
        )
    return staff


def otp_device_reset(*, actor: Actor, staff: Staff) -> int:
    """Remove a person's authenticator apps (lost phone); returns how many were removed.

    Their verified sessions stop being verified at once; if two-factor is required they
    set up a new app at their next page or sign-in. An Admin cannot reset their own.
    """
    if getattr(actor, "pk", None) == staff.pk:
        devices = list(TOTPDevice.objects.filter(user=staff).values_list("confirmed", flat=True))
        _refuse(
            actor=actor,
            action=AuditAction.OTP_DEVICE_RESET,
            staff=staff,
            words="You cannot reset your own two-factor sign-in; ask another Admin.",
            before=_devices_snapshot(devices),
        )
    with transaction.atomic():
        devices = list(
            TOTPDevice.objects.select_for_update()
            .filter(user=staff)
            .values_list("confirmed", flat=True)
        )
        if not devices:
            return 0
        TOTPDevice.objects.filter(user=staff).delete()
        who = getattr(actor, "username", str(actor))
        audit_record(
            actor=actor,
            action=AuditAction.OTP_DEVICE_RESET,
            target_type=TargetType.STAFF,
            target_id=staff.username,
            before=_devices_snapshot(devices),
            after=_devices_snapshot([]),
            message=f"{who} reset the two-factor sign-in of {staff.username}",
        )
    return len(devices)


def _devices_snapshot(confirmed_flags: Iterable[bool]) -> dict[str, int]:
    flags = list(confirmed_flags)
    return {"confirmed_devices": sum(flags), "unconfirmed_devices": len(flags) - sum(flags)}
