"""Reads for Prime API users: a fixed number of queries per page, however many rows."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field

from django.db.models import Count, Q, QuerySet

from portal.db import count_per_row
from portal.keys.models import ApiKey
from portal.users.models import PrimeUser
from primeapi.models import ROLE_PERMISSIONS

PAGE_SIZE = 50


@dataclass(frozen=True)
class UserPage:
    """One page of users, with cursors for the next and previous pages (None at the ends)."""

    rows: list[PrimeUser]
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
    active_keys = ApiKey.objects.filter(revoked_at__isnull=True, missing_upstream_at__isnull=True)
    users = _filtered(search, role, status).annotate(key_count=count_per_row(active_keys, "user"))
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
