"""Small query helpers shared by the apps' selectors."""

from __future__ import annotations

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce


def count_per_row(related: QuerySet, fk: str) -> Coalesce:
    """COUNT of `related` rows whose `fk` points at the outer row, as a correlated subquery.

    Unlike annotate(Count(join)), which aggregates the whole table before LIMIT, the
    subquery runs only for the rows a page returns.
    """
    counted = (
        related.filter(**{fk: OuterRef("pk")})
        .order_by()
        .values(fk)
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))
