"""Reads for Prime API keys."""

from __future__ import annotations

from django.db.models import F, QuerySet

from portal.keys.models import ApiKey
from portal.users.models import PrimeUser


def key_list(*, user: PrimeUser) -> QuerySet[ApiKey]:
    """The user's keys, revoked ones last, with who issued and revoked them (one query)."""
    return (
        ApiKey.objects.filter(user=user)
        .select_related("issued_by", "revoked_by", "user")
        .order_by(F("revoked_at").asc(nulls_first=True), "created_at", "pk")
    )


def key_get(*, prime_key_id: str) -> ApiKey | None:
    """One key with its owner, or None."""
    return (
        ApiKey.objects.select_related("user", "issued_by", "revoked_by")
        .filter(prime_key_id=prime_key_id)
        .first()
    )
