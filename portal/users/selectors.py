"""Reads for Prime API users: a fixed number of queries per page, however many rows."""

from __future__ import annotations

from dataclasses import replace

from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery

from portal.paging import Keyset, KeysetPage
from portal.users.models import PrimeUser

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
    users = _filtered(search, role, status).annotate(key_count=_active_key_count())
    keyset = USER_PAGES if page_size == PAGE_SIZE else replace(USER_PAGES, per_page=page_size)
    return keyset.page(users, after=after, before=before)


# A key counts while it is neither revoked nor missing at Kraken. Keys are read through the
# reverse relation: this app never imports the keys app.
_ACTIVE_KEYS = Q(keys__revoked_at__isnull=True, keys__missing_upstream_at__isnull=True)


def _active_key_count() -> Subquery:
    """Active keys of the outer row's user, counted per returned row (not before LIMIT)."""
    per_user = (
        PrimeUser.objects.filter(pk=OuterRef("pk"))
        .annotate(n=Count("keys", filter=_ACTIVE_KEYS))
        .values("n")
    )
    return Subquery(per_user, output_field=IntegerField())


def prime_user_get(*, prime_id: str) -> PrimeUser | None:
    """One user with its active key count, or None."""
    return (
        PrimeUser.objects.annotate(key_count=Count("keys", filter=_ACTIVE_KEYS))
        .filter(prime_id=prime_id)
        .first()
    )
