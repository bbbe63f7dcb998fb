"""Permission walk entries for the Prime users pages."""

from __future__ import annotations

import uuid

from tests.walk.cases import ALL_ROLES, Case

OPERATOR = frozenset({"Operator"})


def mirror_user():
    """A Prime user in the mirror only (Kraken never heard of it)."""
    from django.utils import timezone

    from portal.users.models import PrimeUser

    return PrimeUser.objects.create(
        prime_id=uuid.uuid4().hex[:13].upper(),
        name="Walk bot",
        role="Viewer",
        status="Enabled",
        created_at=timezone.now(),
    )


def _user(_sandbox) -> dict:
    return {"prime_id": mirror_user().prime_id}


CASES = [
    Case("users:list", allowed=ALL_ROLES),
    Case("users:list", allowed=ALL_ROLES, htmx=True),
    Case("users:create", allowed=OPERATOR),
    Case("users:create", allowed=OPERATOR, method="POST"),
    Case("users:create", allowed=OPERATOR, method="POST", htmx=True),
    Case("users:detail", allowed=ALL_ROLES, kwargs=_user),
    Case("users:detail", allowed=ALL_ROLES, kwargs=_user, htmx=True),
]
for _name in ("rename", "status", "labels", "review"):
    CASES.append(Case(f"users:{_name}", allowed=OPERATOR, method="POST", kwargs=_user))
    CASES.append(Case(f"users:{_name}", allowed=OPERATOR, method="POST", kwargs=_user, htmx=True))
