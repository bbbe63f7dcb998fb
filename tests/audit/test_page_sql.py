"""The audit page's plain statement finds what the ORM's filter finds, in the same order."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal.audit import page_sql
from portal.audit.filters import AuditFilter
from portal.audit.models import AuditEvent
from portal.audit.selectors import audit_event_filter
from tests.audit.conftest import Clock, record

FILTERS = [
    AuditFilter(),
    AuditFilter(actor="ada.admin"),
    AuditFilter(actor="system:prime_poll"),
    AuditFilter(action="key_issued"),
    AuditFilter(target_type="key"),
    AuditFilter(target_type="key", target_id="KEYAAAAAAAAA1"),
    AuditFilter(target_id="KEYAAAAAAAAA1"),
    AuditFilter(target_id="B_ABCDEFGH"),
    AuditFilter(outcome="failed"),
    AuditFilter(actor="otto.operator", outcome="succeeded"),
    AuditFilter(q="abcdefgh"),
    AuditFilter(q="OTTO"),
    AuditFilter(q="h:btc"),
    AuditFilter(q="100%_"),  # wildcards are literal
    AuditFilter(q="KEY0"),
    AuditFilter(q="a\\b"),
    AuditFilter(action="key_label_changed", q="key00"),
    AuditFilter(actor="nobody"),
]


def _expected(
    filters: AuditFilter, *, older: int | None, newer: int | None, limit: int
) -> list[AuditEvent]:
    qs = audit_event_filter(filters=filters)
    if newer is not None:
        return list(qs.filter(seq__gt=newer).order_by("seq")[:limit])
    if older is not None:
        qs = qs.filter(seq__lt=older)
    return list(qs.order_by("-seq")[:limit])


def _found(
    filters: AuditFilter, *, older: int | None, newer: int | None, limit: int
) -> list[page_sql.EventRow]:
    statement, params = page_sql.page_statement(
        filters=filters, older_than=older, newer_than=newer, limit=limit
    )
    return page_sql.fetch_rows(statement, params)


@pytest.fixture
def trail(varied_events: list[AuditEvent], clock: Clock) -> list[AuditEvent]:
    """The varied events, then a run of key label changes, a minute apart."""
    for _ in range(30):
        clock.advance(minutes=1)
        record(1)
    return varied_events


@pytest.mark.parametrize("filters", FILTERS, ids=repr)
def test_the_page_statement_finds_what_the_orm_finds(
    trail: list[AuditEvent], filters: AuditFilter
) -> None:
    middle = AuditEvent.objects.order_by("seq")[15].seq
    for older, newer in ((None, None), (middle, None), (None, middle)):
        for limit in (5, 51):
            expected = _expected(filters, older=older, newer=newer, limit=limit)
            found = _found(filters, older=older, newer=newer, limit=limit)
            assert [row.seq for row in found] == [event.seq for event in expected]
            for row, event in zip(found, expected, strict=True):
                assert row == page_sql.EventRow(
                    *(getattr(event, name) for name in page_sql.COLUMNS)
                )
                assert row.occurred_at.utcoffset() == timedelta(0)


def test_a_time_range_finds_what_the_orm_finds(trail: list[AuditEvent]) -> None:
    events = list(AuditEvent.objects.order_by("seq"))
    for since_at, until_at in (
        (events[2].occurred_at, events[5].occurred_at),
        (events[3].occurred_at + timedelta(seconds=1), None),
        (None, events[9].occurred_at),
        (events[-1].occurred_at + timedelta(hours=1), None),
    ):
        for filters in (
            AuditFilter(since=since_at, until=until_at),
            AuditFilter(since=since_at, until=until_at, actor="otto.operator"),
        ):
            expected = _expected(filters, older=None, newer=None, limit=51)
            found = _found(filters, older=None, newer=None, limit=51)
            assert [row.seq for row in found] == [event.seq for event in expected]
