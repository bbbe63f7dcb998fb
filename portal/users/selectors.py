"""Reads for Prime API users: a fixed number of queries per page, however many rows."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from django.db.models import Count, Q, QuerySet

from portal.db import count_per_row
from portal.keys.models import ApiKey
from portal.paging import Keyset, KeysetPage
from portal.users.models import PrimeUser
from primeapi.models import ROLE_PERMISSIONS

PAGE_SIZE = 50
# Ordered by name; the id breaks ties, so every row has one place.
USER_PAGES = Keyset(order=("name", "pk"), per_page=PAGE_SIZE)


def _filtered(search: str = "", role: str = "", status: str = "") -> QuerySet[PrimeUser]:
    users = PrimeUser.objects.all()
    if search:
        users = users.filter(
            Q(name__icontains=search)
            | Q(prime_id__iexact=search)
            | Q(owner_label__icontains=search)
            | Q(desk_label__icontains=search)
        )
    if role:
        users = users.filter(role=role)
    if status:
        users = users.filter(status=status)
    return users


def prime_user_list(
    *,
    search: str = "",
    role: str = "",
    status: str = "",
    after: str | None = None,
    before: str | None = None,
    page_size: int = PAGE_SIZE,
) -> KeysetPage[PrimeUser]:
    """A page of users ordered by name, with active key counts: one query, no COUNT(*)."""
    active_keys = ApiKey.objects.filter(revoked_at__isnull=True, missing_upstream_at__isnull=True)
    users = _filtered(search, role, status).annotate(key_count=count_per_row(active_keys, "user"))
    keyset = USER_PAGES if page_size == PAGE_SIZE else replace(USER_PAGES, per_page=page_size)
    return keyset.page(users, after=after, before=before)


def prime_user_get(*, prime_id: str) -> PrimeUser | None:
    """One user with its active key count, or None."""
    return (
        PrimeUser.objects.annotate(
            key_count=Count(
                "keys",
                filter=Q(keys__revoked_at__isnull=True, keys__missing_upstream_at__isnull=True),
            )
        )
        .filter(prime_id=prime_id)
        .first()
    )


@dataclass(frozen=True)
class RolePreview:
    """What changing a user's role would do, before it is sent."""

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
