"""Portal roles as Django groups, the permissions each grants, and the navigation they see."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from django.db import models

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser

    from portal.staff.models import Staff

VIEW_PORTAL = "staff.view_portal"
MANAGE_PRIME_USERS = "staff.manage_prime_users"
MANAGE_KEYS = "staff.manage_keys"
REQUEST_SETTLEMENT = "staff.request_settlement"
APPROVE_SETTLEMENT = "staff.approve_settlement"
MANAGE_STAFF = "staff.manage_staff"
MANAGE_CONNECTION = "staff.manage_connection"


class Role(models.TextChoices):
    VIEWER = "Viewer"
    OPERATOR = "Operator"
    APPROVER = "Approver"
    ADMIN = "Admin"


ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    Role.VIEWER: (VIEW_PORTAL,),
    Role.OPERATOR: (VIEW_PORTAL, MANAGE_PRIME_USERS, MANAGE_KEYS, REQUEST_SETTLEMENT),
    Role.APPROVER: (VIEW_PORTAL, APPROVE_SETTLEMENT),
    Role.ADMIN: (VIEW_PORTAL, MANAGE_STAFF, MANAGE_CONNECTION),
}

# (label, url name, permission needed) in the order the navigation shows them.
NAVIGATION: tuple[tuple[str, str, str], ...] = (
    ("Prime users", "users:list", VIEW_PORTAL),
    ("Settlement", "settlement:batch-list", VIEW_PORTAL),
    ("Approvals", "approvals:inbox", VIEW_PORTAL),
    ("Audit trail", "audit:list", VIEW_PORTAL),
    ("Notifications", "notifications:inbox", VIEW_PORTAL),
    ("Staff", "staff:list", MANAGE_STAFF),
    ("Prime connection", "connection:settings", MANAGE_CONNECTION),
    ("Approval policy", "approvals:policy", MANAGE_STAFF),
)


def ensure_roles(**kwargs: Any) -> None:
    """Create the role groups and give them exactly their permissions (runs after migrate)."""
    from django.contrib.auth.models import Group, Permission

    for role, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = []
        for perm in perms:
            app_label, codename = perm.split(".")
            found = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if found is not None:
                wanted.append(found)
        group.permissions.set(wanted)


def navigation_for(user: Staff | AnonymousUser) -> list[dict[str, str]]:
    """Navigation entries the user may open, resolved to URLs (unknown routes are skipped)."""
    from django.conf import settings
    from django.urls import get_script_prefix, get_urlconf

    allowed = tuple(user.has_perm(perm) for _, _, perm in NAVIGATION)
    urlconf = get_urlconf() or settings.ROOT_URLCONF
    return [dict(item) for item in _navigation(allowed, get_script_prefix(), urlconf)]


@lru_cache(maxsize=128)
def _navigation(
    allowed: tuple[bool, ...], prefix: str, urlconf: object
) -> tuple[dict[str, str], ...]:
    """The entries for one combination of permissions (URLs reversed once per process and
    URL prefix, not on every page)."""
    from django.urls import NoReverseMatch, reverse

    items = []
    for (label, url_name, _perm), may in zip(NAVIGATION, allowed, strict=True):
        if not may:
            continue
        try:
            items.append({"label": label, "url": reverse(url_name), "name": url_name})
        except NoReverseMatch:
            continue
    return tuple(items)
