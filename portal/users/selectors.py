"""Reads for Prime API users: a fixed number of queries per page, however many rows."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass

from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery

from portal.users.models import PrimeUser

PAGE_SIZE = 50


@dataclass(frozen=True)
class UserPage:
    """One page of users, with cursors for the next and previous pages (None at the ends)."""

    rows: Sequence[PrimeUser]
    next_cursor: str | None
    prev_cursor: str | None


def encode_cursor(user: PrimeUser) -> str:
    """An opaque position in the (name, id) order."""
    raw = json.dumps([user.name, user.pk], ensure_ascii=False).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[str, int] | None:
    """The (name, id) a cursor points at, or None for anything that is not one of ours."""
    if not cursor or len(cursor) > 400:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        name, pk = json.loads(raw.decode("utf-8"))
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        return None
    if not isinstance(name, str) or "\x00" in name or isinstance(pk, bool):
        return None
    if not isinstance(pk, int) or not 0 < pk < 2**63:
        return None
    return name, pk


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
) -> UserPage:
    """A page of users ordered by name, with active key counts: one query, no COUNT(*)."""
    users = _filtered(search, role, status).annotate(key_count=_active_key_count())
    after_pos, before_pos = decode_cursor(after), decode_cursor(before)
    if before_pos is not None:
        name, pk = before_pos
        rows = list(
            users.filter(Q(name__lt=name) | Q(name=name, pk__lt=pk)).order_by("-name", "-pk")[
                : page_size + 1
            ]
        )
        has_prev = len(rows) > page_size
        rows = list(reversed(rows[:page_size]))
        has_next = True
    else:
        if after_pos is not None:
            name, pk = after_pos
            users = users.filter(Q(name__gt=name) | Q(name=name, pk__gt=pk))
        rows = list(users.order_by("name", "pk")[: page_size + 1])
        has_next = len(rows) > page_size
        rows = rows[:page_size]
        has_prev = after_pos is not None
    return UserPage(
        rows=rows,
        next_cursor=encode_cursor(rows[-1]) if has_next and rows else None,
        prev_cursor=encode_cursor(rows[0]) if has_prev and rows else None,
    )


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
