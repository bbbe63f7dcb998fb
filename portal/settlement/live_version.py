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


def _row_text(model: type[models.Model], alias: str = "") -> str:
    """All the model's columns as one text expression (NULL as empty)."""
    prefix = f"{alias}." if alias else ""
    parts = [
        f"COALESCE(CAST({prefix}{_q(field.column)} AS TEXT), '')"
        for field in model._meta.concrete_fields
    ]
    return " || '|' || ".join(parts)


def _statement(prime_batch_id: str) -> tuple[str, list[str]]:
    """The one statement and its parameters (identifiers from the models' metadata).

    The legs' change requests are reached by joining the legs' audit ids (`<batch>:<asset>`)
    on the (kind, target_id) index, and each leg's newest by a correlated MAX: an
    `IN (subquery)` there made PostgreSQL scan every change request.
    """
    batch_t, leg_t, change_t, event_t = (
        _table(Batch),
        _table(Leg),
        _table(ChangeRequest),
        _table(AuditEvent),
    )
    pid = prime_batch_id
    kind_value = str(LEG_KIND)
    batch_key = _col(Batch, "prime_batch_id")
    batch_sub = f"SELECT {_q(Batch._meta.pk.column)} FROM {batch_t} WHERE {batch_key} = %s"
    leg_ids = (
        f"(SELECT CAST(%s AS TEXT) || ':' || {_col(Leg, 'asset')} AS tid FROM {leg_t} "
        f"WHERE {_col(Leg, 'batch')} = ({batch_sub})) AS legids"
    )
    leg_params = [pid, pid]
    kind, target, state, target_type = (
        _col(ChangeRequest, "kind"),
        _col(ChangeRequest, "target_id"),
        _col(ChangeRequest, "state"),
        _col(ChangeRequest, "target_type"),
    )
    leg_type = str(TargetType.LEG)
    pk = _q(ChangeRequest._meta.pk.column)
    holding = ", ".join("%s" for _ in HOLDING_STATES)
    e_type, e_target = _col(AuditEvent, "target_type"), _col(AuditEvent, "target_id")
    seq = _col(AuditEvent, "seq")

    requests_of_legs = (
        f"SELECT CAST(r.{pk} AS TEXT) FROM {leg_ids} JOIN {change_t} r "
        f"ON r.{target_type} = %s AND r.{target} = legids.tid AND r.{kind} = %s"
    )

    def newest_event(match: str) -> str:
        return (
            f"COALESCE(CAST((SELECT MAX({seq}) FROM {event_t} WHERE {e_type} = %s "
            f"AND {e_target} {match}) AS TEXT), '')"
        )

    parts: list[tuple[str, list[str]]] = [
        (f"SELECT 0, {_row_text(Batch)} FROM {batch_t} WHERE {batch_key} = %s", [pid]),
        (
            f"SELECT 1, {_row_text(Leg)} FROM {leg_t} WHERE {_col(Leg, 'batch')} = ({batch_sub})",
            [pid],
        ),
        # The legs' open change requests ...
        (
            f"SELECT 2, {_row_text(ChangeRequest, 'c')} FROM {leg_ids} JOIN {change_t} c "
            f"ON c.{target_type} = %s AND c.{target} = legids.tid AND c.{kind} = %s "
            f"WHERE c.{state} IN ({holding})",
            [*leg_params, leg_type, kind_value, *[str(s) for s in HOLDING_STATES]],
        ),
        # ... and each leg's newest.
        (
            f"SELECT 2, {_row_text(ChangeRequest, 'c')} FROM (SELECT (SELECT MAX(n.{pk}) "
            f"FROM {change_t} n WHERE n.{target_type} = %s AND n.{target} = legids.tid "
            f"AND n.{kind} = %s) AS newest FROM {leg_ids}) AS newest_of_leg "
            f"JOIN {change_t} c ON c.{pk} = newest_of_leg.newest",
            [leg_type, kind_value, *leg_params],
        ),
        # The newest event of the timeline, one MAX per kind of target: each walks the
        # (target_type, target_id, -seq) index (an OR of the three scanned the trail).
        (
            f"SELECT 3, {newest_event('= %s')} || '|' "
            f"|| {newest_event(f'IN (SELECT legids.tid FROM {leg_ids})')} || '|' "
            f"|| {newest_event(f'IN ({requests_of_legs})')}",
            [
                str(TargetType.BATCH),
                pid,
                str(TargetType.LEG),
                *leg_params,
                str(TargetType.CHANGE_REQUEST),
                *leg_params,
                leg_type,
                kind_value,
            ],
        ),
    ]
    sql = " UNION ALL ".join(part for part, _ in parts)
    params = [param for _, values in parts for param in values]
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
