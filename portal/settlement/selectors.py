"""Settlement reads: a fixed, small number of queries per page whatever the row count."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import NamedTuple

from django.conf import settings
from django.db import connection
from django.db.models import IntegerField, Q
from django.db.models.expressions import RawSQL
from django.utils import timezone

from portal.actors import Actor, actor_staff
from portal.approvals.models import ChangeKind, ChangeRequest, RequestState, Vote, VoteDecision
from portal.audit.models import AuditEvent, TargetType
from portal.db import db_value, prepared_cursor, sql_column, sql_table
from portal.paging import Keyset, KeysetPage
from portal.settlement import page_sql
from portal.settlement.messages import amount_text, what_text
from portal.settlement.models import Batch, Direction, Leg, LegStatus, leg_audit_id
from portal.staff.roles import APPROVE_SETTLEMENT

LEG_KIND = ChangeKind.SETTLEMENT_LEG
# Leg requests that still hold their leg.
HOLDING_STATES = (
    RequestState.PENDING,
    RequestState.APPROVED,
    RequestState.EXECUTING,
    RequestState.OUTCOME_UNKNOWN,
)

# A batch page shows at most this many timeline entries (newest kept).
TIMELINE_LIMIT = 300
# The stale banner shows when the poller has not refreshed a batch for this many intervals.
STALE_AFTER_INTERVALS = 3


# What the list shows of a batch (its trade ids and Kraken's change time stay unread).
BATCH_LIST_FIELDS = (
    "prime_batch_id",
    "asset_kind",
    "status",
    "confirmed",
    "trade_count",
    "created_at",
    "last_refreshed_at",
    "is_final",
)
# Newest first; the id breaks ties between batches created in the same instant.
BATCH_PAGES = Keyset(
    order=("-created_at", "-pk"),
    forward="older",
    backward="newer",
    labels=("Newest", "Newer", "Older"),
    per_page=50,
)


def batch_list(
    *,
    status: str | None = None,
    created_from: datetime | None = None,
    created_until: datetime | None = None,
    older: str | None = None,
    newer: str | None = None,
) -> KeysetPage[Batch]:
    """A page of mirrored batches, newest first, with their leg counts: one query, no COUNT
    of the list (the legs are counted per returned row)."""
    legs_total, legs_settled = _leg_counts()
    batches = Batch.objects.only(*BATCH_LIST_FIELDS).annotate(
        legs_total=legs_total, legs_settled=legs_settled
    )
    if status:
        batches = batches.filter(status=status)
    if created_from is not None:
        batches = batches.filter(created_at__gte=created_from)
    if created_until is not None:
        batches = batches.filter(created_at__lt=created_until)
    return BATCH_PAGES.page(batches, after=older, before=newer)


@cache
def _leg_counts() -> tuple[RawSQL, RawSQL]:
    """The outer batch's legs, all and settled, each a correlated COUNT run per returned row
    (not before LIMIT).

    Written as SQL once: the same subqueries built through the ORM per request
    cost about 1 ms of Python a request to build and compile on the bench machine.
    """
    leg, batch = sql_table(Leg), sql_table(Batch)
    pk, fk = sql_column(Leg, "pk"), sql_column(Leg, "batch")
    counted = (
        f"SELECT COUNT({leg}.{pk}) FROM {leg} "  # noqa: S608 - names from the models
        f"WHERE {leg}.{fk} = {batch}.{sql_column(Batch, 'pk')}"
    )
    settled = f"{counted} AND {leg}.{sql_column(Leg, 'status')} = %s"
    return (
        RawSQL(counted, (), output_field=IntegerField()),  # noqa: S611 (no outside input)
        RawSQL(settled, (LegStatus.SETTLED,), output_field=IntegerField()),  # noqa: S611
    )


@dataclass(frozen=True)
class LegRow:
    """One leg and the change request that speaks for it (the open one, else the latest)."""

    leg: Leg
    change: ChangeRequest | None
    # Whether the person looking may approve or reject the request (four eyes, role).
    can_decide: bool = False
    # Whether the person looking requested it (and so must leave the decision to another).
    own_request: bool = False
    # The votes on the request, in the order they were cast (each with its voter).
    votes: tuple[Vote, ...] = ()

    @property
    def is_open(self) -> bool:
        return self.change is not None and self.change.state in HOLDING_STATES

    @property
    def requestable(self) -> bool:
        """True when a new request could be made (the service checks again)."""
        return (
            not self.is_open
            and self.leg.status == LegStatus.UNSETTLED
            and self.leg.can_settle
            and not self.leg.batch.is_final
        )

    @property
    def awaiting_approval(self) -> bool:
        """True while the request waits for an Approver."""
        return self.change is not None and self.change.state == RequestState.PENDING

    @property
    def waiting_for_confirmation(self) -> bool:
        """Approved, held back until Kraken confirms the batch."""
        return (
            self.change is not None
            and self.change.state == RequestState.APPROVED
            and not self.leg.batch.confirmed
        )

    @property
    def needs_check(self) -> bool:
        """True when the outcome of a send is unknown and Kraken must be asked."""
        return self.change is not None and self.change.state in (
            RequestState.OUTCOME_UNKNOWN,
            RequestState.EXECUTING,
        )

    @property
    def what(self) -> str:
        """What the request settles: ``incoming 1.50000000 BTC``."""
        if self.change is None:
            return what_text(self.leg.direction, self.leg.amount, self.leg.asset)
        payload = json.loads(self.change.payload)
        return what_text(
            str(payload.get("direction", "")),
            str(payload.get("amount_exact", payload.get("amount", ""))),
            self.leg.asset,
        )

    @property
    def approvers(self) -> list[str]:
        if self.change is None:
            return []
        return [str(v.voter) for v in self.votes if v.decision == VoteDecision.APPROVE]

    @property
    def rejection(self) -> str:
        if self.change is None:
            return ""
        for v in self.votes:
            if v.decision == VoteDecision.REJECT:
                return f"{v.voter}: {v.comment}"
        return ""

    @property
    def note(self) -> str:
        """What the person needs to know about the request now."""
        change = self.change
        if change is None:
            return ""
        if self.waiting_for_confirmation:
            return "Approved, will be sent when Kraken confirms the batch."
        result = change.result if isinstance(change.result, dict) else {}
        return str(change.void_reason or change.result_message or result.get("note") or "")


@dataclass(frozen=True)
class Freshness:
    """How old the mirror of a batch is."""

    refreshed_at: datetime | None
    age_seconds: int | None
    stale: bool


class TimelineEvent(NamedTuple):
    """What the batch page's timeline shows of one audit event."""

    seq: int
    occurred_at: datetime
    action: str
    outcome: str
    actor_label: str
    message: str
    target_type: str
    target_id: str
    # The leg the event is about, itself or through its change request ("" for the batch).
    leg_asset: str


@dataclass(frozen=True)
class LiveBatch:
    """What the polled part of the batch page shows (the timeline too, live)."""

    batch: Batch
    rows: list[LegRow]
    freshness: Freshness
    timeline: list[TimelineEvent]

    @property
    def approvable(self) -> list[LegRow]:
        """Rows whose request the person looking may approve now."""
        return [row for row in self.rows if row.awaiting_approval and row.can_decide]

    @property
    def requestable(self) -> list[LegRow]:
        return [row for row in self.rows if row.requestable]

    @property
    def legs_total(self) -> int:
        return len(self.rows)

    @property
    def legs_settled(self) -> int:
        return sum(1 for row in self.rows if row.leg.status == LegStatus.SETTLED)


@dataclass(frozen=True)
class ChartBar:
    asset: str
    direction: str
    amount: str
    y: float
    x: float
    width: float
    label_x: float
    anchor: str
    text_y: float


@dataclass(frozen=True)
class NetChart:
    """Geometry of the net-position SVG: outgoing bars left of zero, incoming right."""

    width: int
    height: int
    zero_x: float
    bars: list[ChartBar]
    row_height: int
    bar_height: int
    top: int
    asset_x: int
    axis_bottom: float
    out_label_x: float
    in_label_x: float


def batch_by_id(*, prime_batch_id: str) -> Batch | None:
    """One mirrored batch, or None."""
    return Batch.objects.filter(prime_batch_id=prime_batch_id).first()


def freshness_of(*, batch: Batch, now: datetime | None = None) -> Freshness:
    """Age of the batch's mirror and whether the poller has fallen behind."""
    now = now or timezone.now()
    if batch.last_refreshed_at is None:
        return Freshness(None, None, not batch.is_final)
    age = max(0, int((now - batch.last_refreshed_at).total_seconds()))
    limit = STALE_AFTER_INTERVALS * max(1, settings.PRIME_POLL_INTERVAL_SECONDS)
    return Freshness(batch.last_refreshed_at, age, (not batch.is_final) and age > limit)


def live_batch(*, prime_batch_id: str, viewer: Actor | None = None) -> LiveBatch:
    """The batch, its legs, their requests and the timeline, as `viewer` may act: three
    statements, five when the legs have requests, six when these have votes (plain
    statements: portal/settlement/page_sql.py)."""
    vendor = connection.vendor
    found = list(Batch.objects.raw(page_sql.batch_statement(vendor), [prime_batch_id]))
    if not found:
        raise Batch.DoesNotExist(f"No batch {prime_batch_id}.")
    batch = found[0]
    legs = list(Leg.objects.raw(page_sql.legs_statement(vendor), [batch.pk]))
    by_id = {leg_audit_id(prime_batch_id, leg.asset): leg for leg in legs}
    chosen, votes = _leg_requests(list(by_id))
    rows = []
    for target_id, leg in by_id.items():
        leg.batch = batch
        change = chosen.get(target_id)
        rows.append(_leg_row(leg, change, votes.get(change.pk, ()) if change else (), viewer))
    timeline = batch_timeline(prime_batch_id=prime_batch_id, leg_assets=[leg.asset for leg in legs])
    return LiveBatch(batch=batch, rows=rows, freshness=freshness_of(batch=batch), timeline=timeline)


def _leg_requests(
    leg_ids: list[str],
) -> tuple[dict[str, ChangeRequest], dict[int, tuple[Vote, ...]]]:
    """Per leg, the request that speaks for it (the open one, else the newest), and the
    votes on them, with requesters' and voters' names: one statement, two with votes."""
    if not leg_ids:
        return {}, {}
    vendor = connection.vendor
    params: list[object] = [LEG_KIND, TargetType.LEG, *leg_ids, *HOLDING_STATES]
    params += [LEG_KIND, TargetType.LEG, *leg_ids]
    statement = page_sql.requests_statement(vendor, len(leg_ids), len(HOLDING_STATES))
    changes = list(ChangeRequest.objects.raw(statement, params))
    chosen: dict[str, ChangeRequest] = {}
    for change in changes:
        current = chosen.get(change.target_id)
        if current is None or (
            change.state in HOLDING_STATES and current.state not in HOLDING_STATES
        ):
            chosen[change.target_id] = change
    shown = list(chosen.values())
    voted = [change.pk for change in shown if getattr(change, "vote_count", 0)]
    all_votes = (
        list(Vote.objects.raw(page_sql.votes_statement(vendor, len(voted)), voted)) if voted else []
    )
    for change in shown:
        change.requested_by = page_sql.staff_named(change, "requester", change.requested_by_id)
    votes: dict[int, list[Vote]] = {}
    for vote in all_votes:
        vote.voter = page_sql.staff_named(vote, "voter", vote.voter_id)
        votes.setdefault(vote.change_id, []).append(vote)
    return chosen, {pk: tuple(found) for pk, found in votes.items()}


def _leg_row(
    leg: Leg, change: ChangeRequest | None, votes: tuple[Vote, ...], viewer: Actor | None
) -> LegRow:
    staff = actor_staff(viewer)
    if change is None or staff is None:
        return LegRow(leg=leg, change=change, votes=votes)
    own = change.requested_by_id == staff.pk
    voted = any(v.voter_id == staff.pk for v in votes)
    return LegRow(
        leg=leg,
        change=change,
        can_decide=staff.has_perm(APPROVE_SETTLEMENT) and not own and not voted,
        own_request=own,
        votes=votes,
    )


def batch_timeline(*, prime_batch_id: str, leg_assets: Iterable[str]) -> list[TimelineEvent]:
    """Everything that happened to a batch, its legs and their requests, oldest first: one query.

    Legs are matched by their exact target ids (`<batch>:<asset>`), not by prefix:
    equality uses the (target_type, target_id, -seq) index on every database,
    where a LIKE prefix made PostgreSQL walk the whole trail (106 ms at 1M events).
    The legs' change requests come in by a subquery, so the cost does not grow
    with their number, and each request's event names its leg by its primary key.
    Three parts joined by UNION ALL rather than one OR: PostgreSQL plans an OR of the
    three on the audit table in about 2 ms, each part in a tenth of that.
    """
    prefix = f"{prime_batch_id}:"
    leg_ids = [leg_audit_id(prime_batch_id, asset) for asset in leg_assets]
    if not leg_ids:  # an empty IN () is not SQL; no leg matches the empty string
        leg_ids = [""]
    vendor = connection.vendor
    statement = page_sql.timeline_statement(vendor, len(leg_ids), TIMELINE_LIMIT)
    halves = page_sql.timeline_halves(vendor)
    params = [TargetType.BATCH, prime_batch_id] * halves
    params += [TargetType.LEG, *leg_ids] * halves
    params += [TargetType.CHANGE_REQUEST, LEG_KIND, TargetType.LEG, *leg_ids] * halves
    with prepared_cursor() as cursor:  # planned once per connection (six index scans)
        cursor.execute(statement, params)
        newest = cursor.fetchall()
    return [
        TimelineEvent(
            seq,
            db_value(AuditEvent, "occurred_at", at),
            action,
            outcome,
            actor,
            message,
            target_type,
            target_id,
            (leg or "").removeprefix(prefix),
        )
        for seq, at, action, outcome, actor, message, target_type, target_id, leg in reversed(
            newest
        )
    ]


def net_position_chart(*, rows: list[LegRow]) -> NetChart:
    """Bars either side of zero; lengths on a log scale because each asset has its own unit."""
    width, label_w, pad = 720, 90, 12
    row_h, bar_h, top = 30, 18, 26
    zero_x = label_w + (width - label_w) / 2
    half = (width - label_w) / 2 - pad
    max_bar = half - 110  # room for the amount text at the end of the longest bar
    magnitudes = [math.log10(1 + float(abs(row.leg.amount))) for row in rows]
    biggest = max(magnitudes, default=0) or 1
    bars = []
    for index, (row, magnitude) in enumerate(zip(rows, magnitudes, strict=True)):
        length = max(2.0, max_bar * magnitude / biggest)
        y = top + index * row_h + (row_h - bar_h) / 2
        if row.leg.direction == Direction.OUTGOING:
            x, label_x, anchor = zero_x - length, zero_x - length - 6, "end"
        else:
            x, label_x, anchor = zero_x, zero_x + length + 6, "start"
        bars.append(
            ChartBar(
                asset=row.leg.asset,
                direction=row.leg.direction,
                amount=f"{amount_text(row.leg.amount, row.leg.asset)} {row.leg.asset}",
                y=round(y, 1),
                x=round(x, 1),
                width=round(length, 1),
                label_x=round(label_x, 1),
                anchor=anchor,
                text_y=round(y + bar_h / 2 + 5, 1),
            )
        )
    height = top + max(1, len(rows)) * row_h + 10
    return NetChart(
        width=width,
        height=height,
        zero_x=round(zero_x, 1),
        bars=bars,
        row_height=row_h,
        bar_height=bar_h,
        top=top,
        asset_x=label_w - 10,
        axis_bottom=height - 6,
        out_label_x=round(zero_x - 8, 1),
        in_label_x=round(zero_x + 8, 1),
    )


def change_for_action(*, change_id: int) -> ChangeRequest:
    """One leg request (for a view to find the page it belongs to)."""
    return ChangeRequest.objects.get(pk=change_id, kind=LEG_KIND)


def leg_by_asset(*, prime_batch_id: str, asset: str) -> Leg:
    """One leg with its batch."""
    return Leg.objects.select_related("batch").get(
        batch__prime_batch_id=prime_batch_id, asset=asset
    )


def active_batches_to_poll() -> list[Batch]:
    """Batches the poller should refresh, most urgent first (legs with open requests first)."""
    busy = {
        target_id.rpartition(":")[0]
        for target_id in ChangeRequest.objects.filter(
            kind=LEG_KIND, state__in=HOLDING_STATES
        ).values_list("target_id", flat=True)
    }
    # Final batches found by the list (which omits trade ids) get one Get as well.
    incomplete = Q(is_final=True, trade_count__gt=0, trade_ids=[])
    batches = list(Batch.objects.filter(Q(is_final=False) | incomplete))
    far_past = timezone.now() - timedelta(days=3650)
    batches.sort(
        key=lambda b: (
            b.prime_batch_id not in busy,
            b.last_refreshed_at or far_past,
            b.created_at,
        )
    )
    return batches
