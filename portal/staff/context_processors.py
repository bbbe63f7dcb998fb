"""Template context every page needs: the navigation and roles of the person signed in."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from portal.staff.roles import Role, navigation_for


def portal_context(request: HttpRequest) -> dict[str, Any]:
    """Template context every page needs: navigation by role and the person's roles."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {
            "nav_items": [],
            "user_roles": [],
            "portal_env": settings.PORTAL_ENV,
            "two_factor_pending": False,
        }
    if getattr(request, "two_factor_pending", False):
        # Half signed in (password only): nothing to navigate to until the code is in.
        return {
            "nav_items": [],
            "user_roles": [],
            "portal_env": settings.PORTAL_ENV,
            "two_factor_pending": True,
        }
    nav: list[dict[str, Any]] = navigation_for(user)  # fresh dicts, marked below
    path = request.path
    for item in nav:
        item["active"] = path == item["url"] or path.startswith(item["url"].rstrip("/") + "/")
    roles = getattr(user, "role_names", None)
    if roles is None:
        # Not set by SessionAccessMiddleware: one query; groups that are not roles are left out.
        held = {name for name in user.groups.values_list("name", flat=True)}
        roles = [role.value for role in Role if role.value in held]
    return {
        "nav_items": nav,
        "user_roles": roles,
        "portal_env": settings.PORTAL_ENV,
        "two_factor_pending": False,
    }
