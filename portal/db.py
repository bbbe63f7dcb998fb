"""Shared database pieces: the Kraken-mirror fields and query helpers for selectors."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any, TypeVar

from django.db import connection, models

M = TypeVar("M", bound=models.Model)

# How many "changed outside the portal" descriptions a mirrored row keeps.
CHANGED_OUTSIDE_KEPT = 10


class KrakenMirror(models.Model):
    """A row the portal mirrors from Kraken (a Prime user, a key): sync and drift fields."""

    last_synced_at = models.DateTimeField(null=True, blank=True)
    # Set by prime_sync when Kraken held something the portal did not do.
    changed_outside_at = models.DateTimeField(null=True, blank=True)
    changed_outside = models.JSONField(default=list, blank=True)
    # Set by prime_sync when Kraken no longer lists the row.
    missing_upstream_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    def flag_changed_outside(self, now: datetime, what: Sequence[str]) -> None:
        """Show the "changed outside the portal" badge, newest descriptions first (not saved)."""
        self.changed_outside_at = now
        self.changed_outside = [*what, *(self.changed_outside or [])][:CHANGED_OUTSIDE_KEPT]

    def mark_missing(self, now: datetime) -> None:
        """Kraken no longer lists the row (not saved)."""
        self.missing_upstream_at = now
        self.last_synced_at = now
        self.flag_changed_outside(now, ["no longer listed by Kraken"])


def sql_table(model: type[models.Model]) -> str:
    """`model`'s table, quoted for the default connection (for statements written by hand
    from the models' metadata)."""
    return connection.ops.quote_name(model._meta.db_table)


def sql_column(model: type[models.Model], field: str) -> str:
    """The column of `model`'s `field` (a field name, or "pk"), quoted likewise."""
    found = model._meta.pk if field == "pk" else model._meta.get_field(field)
    assert isinstance(found, models.Field)
    return connection.ops.quote_name(str(found.column))


def sql_columns(model: type[models.Model], alias: str) -> list[str]:
    """Every concrete column of `model`, in field order, as `alias.column`, quoted."""
    q = connection.ops.quote_name
    return [f"{alias}.{q(str(field.column))}" for field in model._meta.concrete_fields]


@cache
def _converters(model: type[models.Model], vendor: str) -> list[tuple[Any, list[Any]]]:
    """Each concrete field of `model` and the converters the ORM applies to its raw value."""
    table = model._meta.db_table
    return [
        (
            field,
            [
                *connection.ops.get_db_converters(field.get_col(table)),
                *field.get_db_converters(connection),  # type: ignore[attr-defined]
            ],
        )
        for field in model._meta.concrete_fields
    ]


@cache
def _attnames(model: type[models.Model]) -> list[str]:
    return [field.attname for field in model._meta.concrete_fields]


def db_value(model: type[models.Model], field: str, value: Any) -> Any:
    """A raw value of `model`'s `field` as the ORM would give it (the backend's and the
    field's conversions), on the default connection."""
    known, converters = _by_name(model, connection.vendor)[field]
    for converter in converters:
        value = converter(value, known, connection)
    return value


@cache
def _by_name(model: type[models.Model], vendor: str) -> dict[str, tuple[Any, list[Any]]]:
    return {field.name: (field, found) for field, found in _converters(model, vendor)}


def model_from_row(model: type[M], values: Sequence[Any]) -> M:
    """An instance of `model` from a raw statement's values (its concrete fields' columns,
    in the model's field order), converted as the ORM converts them (SQLite's datetimes,
    JSON, ...), on the default connection."""
    converted = []
    for (field, converters), value in zip(
        _converters(model, connection.vendor), values, strict=True
    ):
        for converter in converters:
            value = converter(value, field, connection)
        converted.append(value)
    return model.from_db(connection.alias, _attnames(model), converted)


def prepared_cursor() -> Any:
    """A cursor for a statement every request runs: on PostgreSQL one that psycopg prepares
    after a few runs (portal/dbengine/postgresql), elsewhere Django's usual cursor."""
    make = getattr(connection, "prepared_cursor", None)
    return make() if make is not None else connection.cursor()
