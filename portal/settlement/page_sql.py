# ruff: noqa: S608 - identifiers come from the models' metadata, quoted; values are parameters.
"""The batch page's reads as plain statements: building and compiling the same reads with
the ORM cost the page more than running them (about 4 ms of Python for the leg requests'
query alone on the bench machine), and the page is read far more often than it changes.

Each statement is written once per process from the models' metadata (table and column
names quoted by the connection) and takes its values as parameters; rows come back as
model instances through `Manager.raw()`, which applies the fields' own conversions, so
the instances are what the ORM would have built.

- `batch_statement`, `legs_statement`;
- `requests_statement` (each leg's open request and newest one, with the requester's
  names and the number of votes), `votes_statement` (only when there are votes, with the
  voters' names);
- `timeline_statement`: the newest events about the batch, its legs and their requests,
  each naming its leg.
"""

from __future__ import annotations

from functools import lru_cache

from django.db import connection, models

from portal.approvals.models import ChangeRequest, Vote
from portal.audit.models import AuditEvent
from portal.db import sql_column as _col
from portal.db import sql_table as _table
from portal.settlement.models import Batch, Leg
from portal.staff.models import Staff

# What the timeline shows of an event, in this order (then the leg it is about).
TIMELINE_COLUMNS = (
    "seq",
    "occurred_at",
    "action",
    "outcome",
    "actor_label",
    "message",
    "target_type",
    "target_id",
)


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def _places(count: int) -> str:
    return ", ".join(["%s"] * count)


@lru_cache(maxsize=4)
def batch_statement(vendor: str) -> str:
    """One batch. Parameter: its Kraken id."""
    return f"SELECT * FROM {_table(Batch)} WHERE {_col(Batch, 'prime_batch_id')} = %s"


@lru_cache(maxsize=4)
def legs_statement(vendor: str) -> str:
    """The legs of a batch by asset. Parameter: the batch's primary key."""
    return (
        f"SELECT * FROM {_table(Leg)} WHERE {_col(Leg, 'batch')} = %s ORDER BY {_col(Leg, 'asset')}"
    )


# Who requested or voted, as `Staff.__str__` needs them (the rest of the row is not read).
STAFF_NAME_COLUMNS = ("username", "display_name")


def _names(alias: str, prefix: str) -> str:
    columns = (f"{alias}.{_col(Staff, name)} AS {prefix}_{name}" for name in STAFF_NAME_COLUMNS)
    return ", ".join(columns)


@lru_cache(maxsize=64)
def requests_statement(vendor: str, legs: int, holding: int) -> str:
    """The legs' requests that hold them and each leg's newest, newest first, with their
    requester's names (`requester_<column>`) and number of votes. Parameters: kind,
    target type, the `legs` leg ids, the `holding` states; kind, target type, the leg ids."""
    c = ChangeRequest
    pk, kind, target_type, target_id = (
        _q(c._meta.pk.column),
        _col(c, "kind"),
        _col(c, "target_type"),
        _col(c, "target_id"),
    )
    vote_change = _col(Vote, "change")
    of_legs = f"{kind} = %s AND {{a}}.{target_type} = %s AND {{a}}.{target_id} IN ({_places(legs)})"
    return (
        f"SELECT c.*, {_names('s', 'requester')}, "
        f"(SELECT COUNT(*) FROM {_table(Vote)} v WHERE v.{vote_change} = c.{pk}) AS vote_count "
        f"FROM {_table(c)} c JOIN {_table(Staff)} s "
        f"ON s.{_q(Staff._meta.pk.column)} = c.{_col(c, 'requested_by')} "
        f"WHERE c.{of_legs.format(a='c')} "
        f"AND (c.{_col(c, 'state')} IN ({_places(holding)}) OR c.{pk} IN ("
        f"SELECT MAX(n.{pk}) FROM {_table(c)} n WHERE n.{of_legs.format(a='n')} "
        f"GROUP BY n.{target_id})) "
        f"ORDER BY c.{_col(c, 'created_at')} DESC, c.{pk} DESC"
    )


@lru_cache(maxsize=64)
def votes_statement(vendor: str, changes: int) -> str:
    """The votes on some requests, in the order they were cast, with their voter's names
    (`voter_<column>`). Parameters: the requests' ids."""
    v = Vote
    return (
        f"SELECT v.*, {_names('s', 'voter')} FROM {_table(v)} v JOIN {_table(Staff)} s "
        f"ON s.{_q(Staff._meta.pk.column)} = v.{_col(v, 'voter')} "
        f"WHERE v.{_col(v, 'change')} IN ({_places(changes)}) "
        f"ORDER BY v.{_col(v, 'voted_at')}, v.{_q(v._meta.pk.column)}"
    )


def staff_named(row: models.Model, prefix: str, pk: int) -> Staff:
    """The staff account whose names a statement put on `row` (`<prefix>_<column>`), as
    the ORM gives it for `.only()` of these columns (any other field is read on access)."""
    known = {name: getattr(row, f"{prefix}_{name}") for name in STAFF_NAME_COLUMNS}
    known[str(Staff._meta.pk.attname)] = pk
    # `from_db` takes the values in the model's field order.
    read = [field.attname for field in Staff._meta.concrete_fields if field.attname in known]
    return Staff.from_db(connection.alias, read, [known[name] for name in read])


# PostgreSQL keeps what the timeline shows in an index of its own for events whose message
# fits in 1,000 bytes, and the longer ones in another (portal/audit/migrations/0010): each
# part of the timeline is read from both, stating these conditions so that the planner
# sees the indexes apply. Other databases read each part once.
SHOWN_FROM_INDEX = ("octet_length(e.{message}) <= 1000", "octet_length(e.{message}) > 1000")


def timeline_halves(vendor: str) -> int:
    """How many times each part of the timeline (and so its parameters) is read."""
    return len(SHOWN_FROM_INDEX) if vendor == "postgresql" else 1


@lru_cache(maxsize=64)
def timeline_statement(vendor: str, legs: int, limit: int) -> str:
    """The newest `limit` events about a batch, its legs and their requests, each with the
    audit id of its leg ('' for the batch). Parameters, each group `timeline_halves()` times
    in a row: the batch target type and batch id; the leg target type and the `legs` leg
    ids; the request target type, the leg request kind, the leg target type and the leg ids
    again.

    Three parts joined by UNION ALL, each on the (target_type, target_id, -seq) index and
    stopping at the limit; the requests' events are found by joining the legs' requests
    (their ids as text are the events' target ids), which also names their leg. On
    PostgreSQL each part is read from the timeline's two indexes (`SHOWN_FROM_INDEX`), so
    that it never visits the table for the events with a short message.
    """
    e, c = AuditEvent, ChangeRequest
    target_type, target_id, seq = _col(e, "target_type"), _col(e, "target_id"), _col(e, "seq")
    columns = ", ".join(f"e.{_col(e, name)}" for name in TIMELINE_COLUMNS)
    events = _table(e)
    requests = (
        f"{_table(c)} c JOIN {events} e ON e.{target_type} = %s "
        f"AND e.{target_id} = CAST(c.{_q(c._meta.pk.column)} AS TEXT)"
    )
    of_legs = f"IN ({_places(legs)})"
    leg_requests = (
        f"c.{_col(c, 'kind')} = %s AND c.{_col(c, 'target_type')} = %s "
        f"AND c.{_col(c, 'target_id')} {of_legs}"
    )
    halves = (
        [half.format(message=_col(e, "message")) for half in SHOWN_FROM_INDEX]
        if timeline_halves(vendor) > 1
        else [""]
    )

    def part(name: str, leg: str, source: str, match: str) -> str:
        return " UNION ALL ".join(
            f"SELECT * FROM (SELECT {columns}, {leg} AS leg FROM {source} WHERE {match}"
            f"{f' AND {half}' if half else ''} "
            f"ORDER BY e.{seq} DESC LIMIT {int(limit)}) AS {name}{index}"
            for index, half in enumerate(halves)
        )

    parts = (
        part("batch_events", "''", f"{events} e", f"e.{target_type} = %s AND e.{target_id} = %s"),
        part(
            "leg_events",
            f"e.{target_id}",
            f"{events} e",
            f"e.{target_type} = %s AND e.{target_id} {of_legs}",
        ),
        part("request_events", f"c.{_col(c, 'target_id')}", requests, leg_requests),
    )
    return f"{' UNION ALL '.join(parts)} ORDER BY 1 DESC LIMIT {int(limit)}"
