"""Reads of the audit trail: a fixed, small number of queries whatever the trail's size."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet, Subquery

from portal.audit.filters import AuditFilter
from portal.audit.models import AuditEvent, TargetType
from portal.paging import Keyset, KeysetPage

PER_PAGE = 50
SYSTEM_ACTORS = ("system:prime_poll", "system:prime_sync", "anonymous")
# Columns the list does not show; leaving them out keeps the page query narrow.
_LIST_DEFERRED = ("before", "after", "prime_response", "user_agent", "prev_hash", "hash")


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


def audit_event_page(
    *,
    filters: AuditFilter,
    older_than: int | None = None,
    newer_than: int | None = None,
) -> KeysetPage[AuditEvent]:
    """One page, newest first, by keyset on seq (no COUNT, no OFFSET): one query."""
    qs = audit_event_filter(filters=filters).defer(*_LIST_DEFERRED)
    return EVENT_PAGES.page(
        qs,
        after=None if older_than is None else str(older_than),
        before=None if newer_than is None else str(newer_than),
    )


def audit_event_get(*, seq: int) -> AuditEvent:
    """One event by its seq (raises AuditEvent.DoesNotExist)."""
    return AuditEvent.objects.get(seq=seq)


def audit_event_exists(*, seq: int) -> bool:
    """Whether an event with this seq exists (one indexed lookup)."""
    return AuditEvent.objects.filter(seq=seq).exists()


def audit_actor_names() -> list[str]:
    """Names offered by the actor filter: every staff username and the system actors."""
    names = list(get_user_model().objects.order_by("username").values_list("username", flat=True))
    return [*names, *SYSTEM_ACTORS]
