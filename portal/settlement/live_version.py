"""The version of a batch's live fragment: one indexed lookup, no template.

The batch page polls its live fragment every few seconds. The fragment carries the version
it was drawn from (in its own `hx-get` URL, `?v=...`); when the version is still the same
the poll is answered `204 No Content`, which htmx leaves alone (see base.html's
`responseHandling`), so a hundred people watching a batch cost one small lookup each poll.

The version is made of:
- the batch's number in `settlement_batchlive` (`BatchLive`), which database triggers
  (migration 0004) move in the same transaction as every write to what the fragment shows:
  the batch row, its legs, the change requests of its legs and their votes, and audit
  events about the batch, a leg or such a request (the timeline). Triggers, not calls in
  the services, so that no writer can forget it: bulk `.update()` calls and raw SQL too;
- who is looking (the rows' actions depend on the person and their permissions);
- a 30-second clock bucket (the "as of" age, the stale banner and request expiry move with
  time alone).
A batch without a number (none, or made with triggers switched off) has no version and
its fragment is always drawn afresh, so nothing is ever shown stale for lack of a number.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import cache

from django.db import connection
from django.utils import timezone

from portal.db import prepared_cursor, sql_column, sql_table
from portal.settlement.models import Batch, BatchLive
from portal.staff.models import Staff
from portal.staff.roles import APPROVE_SETTLEMENT, REQUEST_SETTLEMENT

CLOCK_SECONDS = 30


@cache
def number_statement(vendor: str) -> str:
    """The statement reading a batch's number (identifiers from the models' metadata;
    `vendor` keys the cache); the batch id is its one parameter."""
    live, batch = sql_table(BatchLive), sql_table(Batch)
    version, key = sql_column(BatchLive, "version"), sql_column(Batch, "prime_batch_id")
    batch_pk, live_pk = sql_column(Batch, "pk"), sql_column(BatchLive, "pk")
    # Identifiers from the models' metadata, quoted; the batch id is a parameter.
    return (
        f"SELECT l.{version} FROM {live} l JOIN {batch} b ON b.{batch_pk} = l.{live_pk} "  # noqa: S608
        f"WHERE b.{key} = %s"
    )


def clock_bucket() -> int:
    """The 30-second step of the clock the version moves with."""
    return int(timezone.now().timestamp()) // CLOCK_SECONDS


def version_of(prime_batch_id: str, number: object, viewer_key: Iterable[object]) -> str | None:
    """The fragment's version from the batch's number (None: the batch has none)."""
    if number is None:
        return None
    text = f"{prime_batch_id}|{number}|{tuple(viewer_key)!r}|{clock_bucket()}"
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:20]


def viewer_of(user: Staff) -> tuple[object, ...]:
    """Who is looking, as far as the fragment shows it (the rows' actions depend on it)."""
    return (user.pk, user.has_perm(REQUEST_SETTLEMENT), user.has_perm(APPROVE_SETTLEMENT))


def live_version(*, prime_batch_id: str, viewer_key: Iterable[object] = ()) -> str | None:
    """The fragment's version, or None when the batch has none (one statement)."""
    with prepared_cursor() as cursor:
        cursor.execute(number_statement(connection.vendor), [prime_batch_id])
        row = cursor.fetchone()
    return version_of(prime_batch_id, row[0] if row is not None else None, viewer_key)


def version_for(user: Staff, prime_batch_id: str) -> str | None:
    """The fragment's version as `user` sees it."""
    return live_version(prime_batch_id=prime_batch_id, viewer_key=viewer_of(user))
