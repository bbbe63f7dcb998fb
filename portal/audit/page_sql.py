# ruff: noqa: S608 - identifiers come from the model's metadata, quoted; values are parameters.
"""The audit page's reads as plain statements.

Building the page's query with the ORM (a queryset per filter, a compile, a model instance
per row) cost the page more than running it: about 0.7 ms of Python for 51 rows on the
bench machine, against 0.3 ms in PostgreSQL. The page needs eight columns of 51 rows, as
plain values; this writes the same statement `selectors.audit_event_filter` builds (same
conditions, same indexes; `tests/trail` checks both find the same events for every filter)
from the model's metadata, with the values as parameters.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

from django.db import connection, models
from django.utils import timezone

from portal.audit.filters import AuditFilter
from portal.audit.models import AuditEvent, TargetType

# What the list shows of an event, in this order (`EventRow`'s fields).
COLUMNS = (
    "seq",
    "occurred_at",
    "actor_label",
    "action",
    "target_type",
    "target_id",
    "outcome",
    "message",
)


class EventRow(NamedTuple):
    """One event as the list shows it."""

    seq: int
    occurred_at: datetime
    actor_label: str
    action: str
    target_type: str
    target_id: str
    outcome: str
    message: str


@lru_cache(maxsize=4)
def _quoted(vendor: str) -> dict[str, str]:
    """The table's name (key "") and its columns' names by field, quoted for the backend."""
    names = {"": connection.ops.quote_name(AuditEvent._meta.db_table)}
    for field in AuditEvent._meta.concrete_fields:
        assert isinstance(field, models.Field)
        names[field.name] = connection.ops.quote_name(str(field.column))
    return names


def _col(field: str) -> str:
    return _quoted(connection.vendor)[field]


def _table() -> str:
    return _quoted(connection.vendor)[""]


def _icontains(column: str) -> str:
    """`column__icontains=%s` as the backend writes it (PostgreSQL: UPPER(col::text) LIKE
    UPPER(%s), which the trigram indexes answer)."""
    lookup = connection.ops.lookup_cast("icontains", "CharField") % column
    return f"{lookup} {connection.operators['icontains'] % '%s'}"


def _where(filters: AuditFilter) -> tuple[list[str], list[Any]]:
    """The conditions of `selectors.audit_event_filter` (same order) and their parameters."""
    conditions: list[str] = []
    params: list[Any] = []

    def add(condition: str, *values: Any) -> None:
        conditions.append(condition)
        params.extend(values)

    if filters.actor:
        add(f"{_col('actor_label')} = %s", filters.actor)
    if filters.action:
        add(f"{_col('action')} = %s", filters.action)
    if filters.target_type:
        add(f"{_col('target_type')} = %s", filters.target_type)
        if filters.target_id:
            add(f"{_col('target_id')} = %s", filters.target_id)
    elif filters.target_id:
        # Lets the (target_type, target_id, seq) index answer an id given without its type.
        types = TargetType.values
        places = ", ".join(["%s"] * len(types))
        add(
            f"{_col('target_id')} = %s AND {_col('target_type')} IN ({places})",
            filters.target_id,
            *types,
        )
    if filters.outcome:
        add(f"{_col('outcome')} = %s", filters.outcome)
    if filters.q:
        pattern = f"%{connection.ops.prep_for_like_query(filters.q)}%"
        add(
            f"({_icontains(_col('target_id'))} OR {_icontains(_col('actor_label'))})",
            pattern,
            pattern,
        )
    # A time range is a seq range (see selectors.audit_event_filter).
    occurred_at, seq = _col("occurred_at"), _col("seq")
    if filters.since:
        add(
            f"{seq} >= (SELECT u.{seq} FROM {_table()} u WHERE u.{occurred_at} >= %s "
            f"ORDER BY u.{occurred_at} ASC, u.{seq} ASC LIMIT 1)",
            connection.ops.adapt_datetimefield_value(filters.since),
        )
    if filters.until:
        add(
            f"{seq} <= (SELECT u.{seq} FROM {_table()} u WHERE u.{occurred_at} < %s "
            f"ORDER BY u.{occurred_at} DESC, u.{seq} DESC LIMIT 1)",
            connection.ops.adapt_datetimefield_value(filters.until),
        )
    return conditions, params


def page_statement(
    *, filters: AuditFilter, older_than: int | None, newer_than: int | None, limit: int
) -> tuple[str, list[Any]]:
    """The `limit` events matching `filters` just older than seq `older_than` (newest first),
    or just newer than `newer_than` (oldest first), or the newest; and its parameters."""
    conditions, params = _where(filters)
    seq = _col("seq")
    if newer_than is not None:
        conditions.append(f"{seq} > %s")
        params.append(newer_than)
        order = "ASC"
    else:
        if older_than is not None:
            conditions.append(f"{seq} < %s")
            params.append(older_than)
        order = "DESC"
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    # The time as text, parsed here: the database driver's own conversion of a timestamp
    # with time zone (Django's loader, in Python) cost more than the rest of the row.
    columns = ", ".join(
        f"CAST({_col(name)} AS TEXT)" if name == "occurred_at" else _col(name) for name in COLUMNS
    )
    statement = f"SELECT {columns} FROM {_table()}{where} ORDER BY {seq} {order} LIMIT {int(limit)}"
    return statement, params


def fetch_rows(statement: str, params: list[Any]) -> list[EventRow]:
    """The statement's rows as `EventRow`s (times aware, as the ORM gives them)."""
    # Planned afresh each time (not prepared): the best plan depends on the values (a rare
    # action, a failed outcome, one target), and a generic plan for such a filter was seen
    # to read most of a million events.
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        found = cursor.fetchall()
    zone = connection.timezone
    rows = []
    for seq, occurred, *rest in found:
        at = datetime.fromisoformat(occurred)
        rows.append(EventRow(seq, at if at.tzinfo else timezone.make_aware(at, zone), *rest))
    return rows
