"""Reads of the audit trail: a fixed, small number of queries whatever the trail's size."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet, Subquery
from django.http import QueryDict

from portal.audit import page_sql
from portal.audit.filters import AuditFilter
from portal.audit.models import AuditEvent, TargetType
from portal.audit.page_sql import EventRow
from portal.db import prepared_cursor, sql_column, sql_table
from portal.paging import Keyset, KeysetPage, PagerLink

PER_PAGE = 50
SYSTEM_ACTORS = ("system:prime_poll", "system:prime_sync", "anonymous")


# Newest first by seq, which is unique and increasing: `?older=<seq>` walks back in time.
EVENT_PAGES = Keyset(
    order=("-seq",),
    forward="older",
    backward="newer",
    labels=("Newest", "Newer", "Older"),
    per_page=PER_PAGE,
)


def audit_event_filter(*, filters: AuditFilter, until_seq: int | None = None) -> QuerySet:
    """Events matching the filters (unordered). Each filter matches one index.

    A time range becomes a seq range: `audit_record` keeps `occurred_at`
    non-decreasing along `seq` (and `verify_audit` checks it), so the first event
    at or after `since` and the last one before `until` bound the seq, and every
    other index can then be walked newest first.
    """
    qs = AuditEvent.objects.all()
    if filters.actor:
        qs = qs.filter(actor_label=filters.actor)
    if filters.action:
        qs = qs.filter(action=filters.action)
    if filters.target_type:
        qs = qs.filter(target_type=filters.target_type)
        if filters.target_id:
            qs = qs.filter(target_id=filters.target_id)
    elif filters.target_id:
        # Lets the (target_type, target_id, seq) index answer an id given without its type.
        qs = qs.filter(target_type__in=TargetType.values, target_id=filters.target_id)
    if filters.outcome:
        qs = qs.filter(outcome=filters.outcome)
    if filters.q:
        qs = qs.filter(Q(target_id__icontains=filters.q) | Q(actor_label__icontains=filters.q))
    if filters.since:
        first = (
            AuditEvent.objects.filter(occurred_at__gte=filters.since)
            .order_by("occurred_at", "seq")
            .values("seq")[:1]
        )
        qs = qs.filter(seq__gte=Subquery(first))
    if filters.until:
        last = (
            AuditEvent.objects.filter(occurred_at__lt=filters.until)
            .order_by("-occurred_at", "-seq")
            .values("seq")[:1]
        )
        qs = qs.filter(seq__lte=Subquery(last))
    if until_seq is not None:
        qs = qs.filter(seq__lte=until_seq)
    return qs


@dataclass(frozen=True)
class EventPage:
    """One page of the list, newest first, and the keyset cursors around it."""

    rows: list[EventRow]
    next_cursor: str | None
    prev_cursor: str | None

    def links(self, query: QueryDict) -> list[PagerLink]:
        """First, previous and next, as the keyset paginator draws them."""
        cursors = KeysetPage[AuditEvent]([], self.next_cursor, self.prev_cursor, EVENT_PAGES)
        return cursors.links(query)


def audit_event_page(
    *,
    filters: AuditFilter,
    older_than: int | None = None,
    newer_than: int | None = None,
) -> EventPage:
    """One page, newest first, by keyset on seq (no COUNT, no OFFSET): one statement.

    `EVENT_PAGES.page()` over `audit_event_filter()`, written as a plain statement
    (`page_sql`): the page is read far more often than the ORM's work is worth.
    """
    size = EVENT_PAGES.per_page
    statement, params = page_sql.page_statement(
        filters=filters, older_than=older_than, newer_than=newer_than, limit=size + 1
    )
    found = page_sql.fetch_rows(statement, params)
    if newer_than is not None:
        rows = found[:size][::-1]
        has_next, has_prev = True, len(found) > size
    else:
        rows = found[:size]
        has_next, has_prev = len(found) > size, older_than is not None
    return EventPage(
        rows=rows,
        next_cursor=str(rows[-1].seq) if has_next and rows else None,
        prev_cursor=str(rows[0].seq) if has_prev and rows else None,
    )


def audit_event_get(*, seq: int) -> AuditEvent:
    """One event by its seq (raises AuditEvent.DoesNotExist)."""
    return AuditEvent.objects.get(seq=seq)


def audit_event_exists(*, seq: int) -> bool:
    """Whether an event with this seq exists (one indexed lookup)."""
    return AuditEvent.objects.filter(seq=seq).exists()


def audit_actor_names() -> list[str]:
    """Names offered by the actor filter: every staff username and the system actors."""
    staff = get_user_model()
    username = sql_column(staff, "username")
    # One plain statement: the ORM's queryset and compile cost more than the read.
    with prepared_cursor() as cursor:
        cursor.execute(
            f"SELECT {username} FROM {sql_table(staff)} ORDER BY {username}"  # noqa: S608
        )
        names = [name for (name,) in cursor.fetchall()]
    return [*names, *SYSTEM_ACTORS]
