# ruff: noqa: S608 - identifiers come from the models' metadata, quoted; values are parameters.
"""The version of a batch's live fragment: one statement, no template.

The batch page polls its live fragment every few seconds. The fragment carries the version
it was drawn from (in its own `hx-get` URL, `?v=...`); when the version is still the same
the poll is answered `204 No Content`, which htmx leaves alone (see base.html's
`responseHandling`), so a hundred people watching a batch cost one small query each poll.

The version is a digest of what the fragment is drawn from, read in one statement:
- every column of the batch row and of its legs;
- every column of the legs' change requests the fragment shows (the open ones and the
  newest of each leg, as `selectors.live_batch` picks them);
- the newest audit event about the batch, its legs or their change requests (the
  timeline; every vote and every state change of a request is audited too);
plus who is looking (the rows' actions depend on the person and their permissions) and a
30-second clock bucket (the "as of" age, the stale banner and request expiry move with
time alone). Anything that changes what the fragment shows changes the version, so a
change shows at the next poll.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from django.db import connection, models
from django.utils import timezone

from portal.approvals.models import ChangeRequest
from portal.audit.models import AuditEvent, TargetType
from portal.settlement.models import Batch, Leg
from portal.settlement.selectors import HOLDING_STATES, LEG_KIND

CLOCK_SECONDS = 30


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def _col(model: type[models.Model], field: str) -> str:
    found = model._meta.get_field(field)
    assert isinstance(found, models.Field)
    return _q(str(found.column))


def _table(model: type[models.Model]) -> str:
    return _q(model._meta.db_table)


def _row_text(model: type[models.Model]) -> str:
    """All the model's columns as one text expression (NULL as empty)."""
    parts = [
        f"COALESCE(CAST({_q(field.column)} AS TEXT), '')" for field in model._meta.concrete_fields
    ]
    return " || '|' || ".join(parts)


def _statement(prime_batch_id: str) -> tuple[str, list[str]]:
    """The one statement and its parameters (identifiers from the models' metadata)."""
    batch_t, leg_t, change_t, event_t = (
        _table(Batch),
        _table(Leg),
        _table(ChangeRequest),
        _table(AuditEvent),
    )
    batch_key = _col(Batch, "prime_batch_id")
    batch_sub = f"SELECT {_q(Batch._meta.pk.column)} FROM {batch_t} WHERE {batch_key} = %s"
    leg_ids = (
        f"SELECT CAST(%s AS TEXT) || ':' || {_col(Leg, 'asset')} FROM {leg_t} "
        f"WHERE {_col(Leg, 'batch')} = ({batch_sub})"
    )
    leg_params: list[str] = [prime_batch_id, prime_batch_id]
    kind, target, state = (
        _col(ChangeRequest, "kind"),
        _col(ChangeRequest, "target_id"),
        _col(ChangeRequest, "state"),
    )
    change_pk = _q(ChangeRequest._meta.pk.column)
    of_legs = f"{kind} = %s AND {target} IN ({leg_ids})"
    of_legs_params: list[str] = [str(LEG_KIND), *leg_params]
    holding = ", ".join("%s" for _ in HOLDING_STATES)
    newest = f"SELECT MAX({change_pk}) FROM {change_t} WHERE {of_legs} GROUP BY {target}"
    change_ids = f"SELECT CAST({change_pk} AS TEXT) FROM {change_t} WHERE {of_legs}"
    e_type, e_target = _col(AuditEvent, "target_type"), _col(AuditEvent, "target_id")
    sql = " UNION ALL ".join(
        [
            f"SELECT 0, {_row_text(Batch)} FROM {batch_t} WHERE {batch_key} = %s",
            f"SELECT 1, {_row_text(Leg)} FROM {leg_t} WHERE {_col(Leg, 'batch')} = ({batch_sub})",
            f"SELECT 2, {_row_text(ChangeRequest)} FROM {change_t} WHERE {of_legs} "
            f"AND ({state} IN ({holding}) OR {change_pk} IN ({newest}))",
            f"SELECT 3, COALESCE(CAST(MAX({_col(AuditEvent, 'seq')}) AS TEXT), '') "
            f"FROM {event_t} WHERE ({e_type} = %s AND {e_target} = %s) "
            f"OR ({e_type} = %s AND {e_target} IN ({leg_ids})) "
            f"OR ({e_type} = %s AND {e_target} IN ({change_ids}))",
        ]
    )
    params: list[str] = [
        prime_batch_id,
        prime_batch_id,
        *of_legs_params,
        *[str(s) for s in HOLDING_STATES],
        *of_legs_params,
        str(TargetType.BATCH),
        prime_batch_id,
        str(TargetType.LEG),
        *leg_params,
        str(TargetType.CHANGE_REQUEST),
        *of_legs_params,
    ]
    return sql, params


def live_version(*, prime_batch_id: str, viewer_key: Iterable[object] = ()) -> str | None:
    """The fragment's version, or None when there is no such batch (one statement)."""
    sql, params = _statement(prime_batch_id)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = sorted((int(kind), str(text)) for kind, text in cursor.fetchall())
    if not rows or rows[0][0] != 0:
        return None
    digest = hashlib.sha1(usedforsecurity=False)
    for kind, text in rows:
        digest.update(f"{kind}:{text}\n".encode())
    digest.update(repr(tuple(viewer_key)).encode())
    digest.update(str(int(timezone.now().timestamp()) // CLOCK_SECONDS).encode())
    return digest.hexdigest()[:20]
