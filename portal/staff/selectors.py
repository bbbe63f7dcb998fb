"""Reads about staff, their roles and two-factor sign-in (a fixed number of queries each)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db.models import Exists, OuterRef, Prefetch, QuerySet
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal.staff.models import PortalSecurity, Staff
from portal.staff.roles import Role


def staff_list() -> QuerySet[Staff]:
    """Every staff member with roles and two-factor state: two queries however many rows."""
    from django.contrib.auth.models import Group

    confirmed = TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)
    pending = TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=False)
    return (
        get_user_model()
        .objects.annotate(has_two_factor=Exists(confirmed), two_factor_pending=Exists(pending))
        .prefetch_related(Prefetch("groups", queryset=Group.objects.order_by("name")))
        .order_by("-is_active", "username")
    )


def _with_role_names(people: list[Staff]) -> list[Staff]:
    for person in people:
        held = {group.name for group in person.groups.all()}
        person.role_names = [role.value for role in Role if role.value in held]
    return people


def staff_rows() -> list[Staff]:
    """staff_list() evaluated, each person carrying `role_names` in the roles' order."""
    return _with_role_names(list(staff_list()))


def staff_row(*, pk: int) -> Staff:
    """One staff member shaped like the rows of staff_rows()."""
    return _with_role_names([staff_list().get(pk=pk)])[0]


def staff_role_names(*, staff: Staff) -> list[str]:
    """The portal roles a person holds, in the order roles are listed."""
    held = {group.name for group in staff.groups.all()}
    return [role.value for role in Role if role.value in held]


def staff_active_admin_count() -> int:
    """How many active staff hold the Admin role."""
    return get_user_model().objects.filter(is_active=True, groups__name=Role.ADMIN).count()


def security_settings_get() -> PortalSecurity:
    """The portal-wide sign-in settings (defaults when nobody has changed them)."""
    found = (
        PortalSecurity.objects.select_related("changed_by")
        .filter(pk=PortalSecurity.SINGLETON_ID)
        .first()
    )
    return found or PortalSecurity(pk=PortalSecurity.SINGLETON_ID)


TWO_FACTOR_REQUIRED_CACHE_KEY = "portal:staff:two-factor-required"
# Asked on every request of a person without an authenticator app: kept in the shared cache
# this long (and dropped at once in the process that changes it, see apps.py).
TWO_FACTOR_REQUIRED_CACHE_SECONDS = 15


def two_factor_required() -> bool:
    """Whether an Admin requires two-factor sign-in for everyone (cached a few seconds)."""
    cached = cache.get(TWO_FACTOR_REQUIRED_CACHE_KEY)
    if cached is not None:
        return bool(cached)
    required = PortalSecurity.objects.filter(
        pk=PortalSecurity.SINGLETON_ID, require_two_factor=True
    ).exists()
    cache.set(TWO_FACTOR_REQUIRED_CACHE_KEY, required, TWO_FACTOR_REQUIRED_CACHE_SECONDS)
    return required


def two_factor_required_forget(**kwargs: object) -> None:
    """Drop the cached requirement (connected to PortalSecurity's post_save)."""
    cache.delete(TWO_FACTOR_REQUIRED_CACHE_KEY)


def otp_confirmed_device(*, staff: Staff) -> TOTPDevice | None:
    """The person's confirmed authenticator app, if they set one up."""
    return TOTPDevice.objects.filter(user=staff, confirmed=True).order_by("pk").first()


def otp_has_confirmed_device(*, staff: Staff) -> bool:
    """Whether the person has a confirmed authenticator app."""
    return TOTPDevice.objects.filter(user=staff, confirmed=True).exists()
