"""Reads for Prime API keys."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import F, QuerySet

from portal.keys.models import ApiKey
from portal.users.models import PrimeUser
from primeapi.models import ROLE_PERMISSIONS


def key_list(*, user: PrimeUser) -> QuerySet[ApiKey]:
    """The user's keys, revoked ones last, with who issued and revoked them (one query).

    Read through the user's reverse relation, so each key's `user` is `user` itself rather
    than a join and a copy per key."""
    return user.keys.select_related("issued_by", "revoked_by").order_by(
        F("revoked_at").asc(nulls_first=True), "created_at", "pk"
    )


def key_get(*, prime_key_id: str) -> ApiKey | None:
    """One key with its owner, or None."""
    return (
        ApiKey.objects.select_related("user", "issued_by", "revoked_by")
        .filter(prime_key_id=prime_key_id)
        .first()
    )


@dataclass(frozen=True)
class RolePreview:
    """What changing a user's role would do to its keys, before it is sent."""

    current_role: str
    new_role: str
    permissions_before: tuple[str, ...]
    permissions_after: tuple[str, ...]
    gained: tuple[str, ...]
    lost: tuple[str, ...]
    affected_keys: list[ApiKey] = field(default_factory=list)

    @property
    def changes_anything(self) -> bool:
        return self.current_role != self.new_role


def role_change_preview(*, user: PrimeUser, new_role: str) -> RolePreview:
    """Current and new role, the key permissions gained and lost, and the keys affected."""
    before = tuple(ROLE_PERMISSIONS.get(user.role, ()))
    after = tuple(ROLE_PERMISSIONS.get(new_role, ()))
    keys = list(
        ApiKey.objects.filter(
            user=user, revoked_at__isnull=True, missing_upstream_at__isnull=True
        ).order_by("created_at", "pk")
    )
    return RolePreview(
        current_role=user.role,
        new_role=new_role,
        permissions_before=before,
        permissions_after=after,
        gained=tuple(p for p in after if p not in before),
        lost=tuple(p for p in before if p not in after),
        affected_keys=keys,
    )
