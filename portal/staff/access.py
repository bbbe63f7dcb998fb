"""Server-side permission checks for views."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseBase

from portal.audit.services import audit_refusal
from portal.staff.models import Staff
from portal.staff.roles import (
    APPROVE_SETTLEMENT,
    MANAGE_CONNECTION,
    MANAGE_KEYS,
    MANAGE_PRIME_USERS,
    MANAGE_STAFF,
    REQUEST_SETTLEMENT,
    VIEW_PORTAL,
)

View = TypeVar("View", bound=Callable[..., HttpResponseBase])

_WHAT = {
    VIEW_PORTAL: "read the portal",
    MANAGE_PRIME_USERS: "manage Prime API users (Operator role)",
    MANAGE_KEYS: "issue, edit or revoke API keys (Operator role)",
    REQUEST_SETTLEMENT: "request settlement (Operator role)",
    APPROVE_SETTLEMENT: "approve settlement (Approver role)",
    MANAGE_STAFF: "manage staff (Admin role)",
    MANAGE_CONNECTION: "manage the Prime connection (Admin role)",
}


def require_perm(perm: str) -> Callable[[View], View]:
    """Refuse with a clear 403 unless the signed-in person holds `perm`; audit refused writes."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not request.user.has_perm(perm):
                if request.method not in ("GET", "HEAD", "OPTIONS"):
                    staff = request.user if isinstance(request.user, Staff) else None
                    audit_refusal(actor=staff, permission=perm, path=request.path)
                raise PermissionDenied(
                    f"You need permission to {_WHAT.get(perm, perm)}. Ask an Admin if you need it."
                )
            return view(request, *args, **kwargs)

        wrapped.required_permission = perm  # type: ignore[attr-defined]  # permission-walk test
        return cast(View, wrapped)

    return decorator
