"""Reads for Prime API users: a fixed number of queries per page, however many rows."""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from typing import Any

from django.db import connection
from django.db.models import IntegerField, Model, Q, QuerySet
from django.db.models.expressions import RawSQL

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


@cache
def _active_key_count() -> RawSQL:
    """Active keys (neither revoked nor missing at Kraken) of the outer row's user, counted
    per returned row (not before LIMIT).

    Written as SQL once: the same correlated COUNT through the ORM (a Subquery over an
    annotated queryset) cost about 3 ms of Python a request to build and compile on the
    bench machine, more than PostgreSQL took to run the whole query. Names come from the
    models; keys are reached through the reverse relation (this app never imports keys).
    """
    keys = PrimeUser._meta.get_field("keys").related_model
    assert isinstance(keys, type) and issubclass(keys, Model)
    key, user = _columns(keys), _columns(PrimeUser)
    sql = (
        f"SELECT COUNT({key['id']}) FROM {key['table']} WHERE {key['user']} = {user['id']}"  # noqa: S608
        f" AND {key['revoked_at']} IS NULL AND {key['missing_upstream_at']} IS NULL"
    )
    return RawSQL(sql, (), output_field=IntegerField())  # noqa: S611 (no outside input)


def _columns(model: type[Model]) -> dict[str, str]:
    """The model's quoted table (`table`) and its columns by field name, table-qualified."""
    q = connection.ops.quote_name
    table = q(model._meta.db_table)
    columns = {"table": table}
    for field in model._meta.concrete_fields:
        columns[field.name] = f"{table}.{q(field.column)}"
    return columns


# Stands for the Prime id in the statement compiled once (never a real Prime id).
_PRIME_ID_MARK = "\x00prime-id\x00"


@cache
def _user_get_statement(vendor: str) -> tuple[str, tuple[Any, ...]]:
    """`prime_user_get`'s statement as the ORM writes it, compiled once per process
    (`vendor` keys the cache): its parameters with a mark where the Prime id goes."""
    users = PrimeUser.objects.annotate(key_count=_active_key_count())
    return users.filter(prime_id=_PRIME_ID_MARK).order_by("pk")[:1].query.sql_with_params()


def prime_user_get(*, prime_id: str) -> PrimeUser | None:
    """One user with its active key count (`key_count`), or None.

    Every page of a user and of their keys asks this: the ORM's statement is compiled
    once (building and compiling the annotated queryset cost more than running it)."""
    sql, params = _user_get_statement(connection.vendor)
    values = [prime_id if value == _PRIME_ID_MARK else value for value in params]
    found = list(PrimeUser.objects.raw(sql, values))
    return found[0] if found else None
