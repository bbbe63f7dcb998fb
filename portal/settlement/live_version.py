"""The version of a batch's live fragment: one statement, no template.

The batch page polls its live fragment every few seconds. The fragment carries the version
it was drawn from (in its own `hx-get` URL, `?v=...`); when the version is still the same
the poll is answered `204 No Content`, which htmx leaves alone (see base.html's
`responseHandling`), so a hundred people watching a batch cost one small query each poll.

The version is a digest of every column of the rows the fragment is drawn from (the
batch, its legs and the requests against them: `SOURCES`), of who is looking (the rows'
actions depend on the person and their permissions) and of a 30-second clock bucket (the
"as of" age, the stale banner and request expiry move with time alone). Anything that
changes a row changes the version, so a change shows at the next poll.

Hook for whoever moves the requests elsewhere (e.g. onto the approvals engine): list the
model and the column that links it to the batch in `SOURCES`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from django.db import connection, models
from django.utils import timezone

from portal.settlement.models import Batch, Leg, SettlementIntent

# (model, the column holding the batch's primary key) whose rows the fragment shows.
SOURCES: list[tuple[type[models.Model], str]] = [
    (Leg, "batch_id"),
    (SettlementIntent, "batch_id"),
]
CLOCK_SECONDS = 30


def _row_text(model: type[models.Model]) -> str:
    """All the model's columns as one text expression (NULL as empty)."""
    quote = connection.ops.quote_name
    parts = [
        f"COALESCE(CAST({quote(field.column)} AS TEXT), '')"
        for field in model._meta.concrete_fields
    ]
    return " || '|' || ".join(parts)


def _sql() -> str:
    quote = connection.ops.quote_name
    batch_table = quote(Batch._meta.db_table)
    batch_key = quote(Batch._meta.get_field("prime_batch_id").column)
    batch_pk = quote(Batch._meta.pk.column)
    # Identifiers from the models' metadata, quoted; the batch id is a parameter.
    branches = [f"SELECT 0, {_row_text(Batch)} FROM {batch_table} WHERE {batch_key} = %s"]  # noqa: S608
    for index, (model, column) in enumerate(SOURCES, start=1):
        table = quote(model._meta.db_table)
        branches.append(
            f"SELECT {index}, {_row_text(model)} FROM {table} WHERE {quote(column)} = "  # noqa: S608
            f"(SELECT {batch_pk} FROM {batch_table} WHERE {batch_key} = %s)"
        )
    return " UNION ALL ".join(branches)


def live_version(*, prime_batch_id: str, viewer_key: Iterable[object] = ()) -> str | None:
    """The fragment's version, or None when there is no such batch (one statement)."""
    with connection.cursor() as cursor:
        cursor.execute(_sql(), [prime_batch_id] * (len(SOURCES) + 1))
        rows = sorted((int(kind), str(text)) for kind, text in cursor.fetchall())
    if not rows or rows[0][0] != 0:
        return None
    digest = hashlib.sha1(usedforsecurity=False)
    for kind, text in rows:
        digest.update(f"{kind}:{text}\n".encode())
    digest.update(repr(tuple(viewer_key)).encode())
    digest.update(str(int(timezone.now().timestamp()) // CLOCK_SECONDS).encode())
    return digest.hexdigest()[:20]
