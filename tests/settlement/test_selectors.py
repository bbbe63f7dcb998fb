"""Settlement reads that need no request: the chart's geometry and the freshness rule."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from portal.settlement import selectors
from portal.settlement.models import Batch
from tests.settlement.conftest import mirror_batch

pytestmark = pytest.mark.django_db


def test_the_chart_puts_outgoing_left_of_zero_and_incoming_right():
    batch = mirror_batch(
        legs=[("BTC", "incoming", "1.5"), ("ETH", "outgoing", "10"), ("USD", "outgoing", "25000")]
    )
    live = selectors.live_batch(prime_batch_id=batch.prime_batch_id)
    chart = selectors.net_position_chart(rows=live.rows)
    bars = {bar.asset: bar for bar in chart.bars}
    assert bars["BTC"].x == chart.zero_x and bars["BTC"].anchor == "start"
    for asset in ("ETH", "USD"):
        assert bars[asset].x + bars[asset].width == pytest.approx(chart.zero_x, abs=0.2)
        assert bars[asset].anchor == "end"
    assert bars["USD"].width > bars["ETH"].width > bars["BTC"].width > 2
    assert bars["USD"].amount == "25,000.00 USD" and bars["BTC"].amount == "1.50000000 BTC"
    assert max(bar.label_x for bar in chart.bars) < chart.width
    assert min(bar.label_x for bar in chart.bars) > 0


def test_the_chart_of_a_batch_without_legs_is_empty_but_drawn():
    batch = mirror_batch(legs=[])
    chart = selectors.net_position_chart(
        rows=selectors.live_batch(prime_batch_id=batch.prime_batch_id).rows
    )
    assert chart.bars == [] and chart.height > 0


def test_freshness_is_stale_after_three_poll_intervals_unless_final(settings):
    settings.PRIME_POLL_INTERVAL_SECONDS = 10
    now = timezone.now()
    batch = mirror_batch()
    Batch.objects.filter(pk=batch.pk).update(last_refreshed_at=now - timedelta(seconds=31))
    batch.refresh_from_db()
    fresh = selectors.freshness_of(batch=batch, now=now)
    assert fresh.stale and fresh.age_seconds == 31
    assert not selectors.freshness_of(batch=batch, now=now - timedelta(seconds=2)).stale
    batch.is_final = True
    assert not selectors.freshness_of(batch=batch, now=now).stale
    never = mirror_batch(refreshed=False)
    assert selectors.freshness_of(batch=never).stale


def test_the_timeline_is_one_query_and_names_legs(django_assert_num_queries, operator):
    from portal.audit.models import AuditAction, TargetType
    from portal.audit.services import audit_record

    batch = mirror_batch()
    other = mirror_batch()
    for target_type, target_id in (
        (TargetType.BATCH, batch.prime_batch_id),
        (TargetType.LEG, f"{batch.prime_batch_id}:BTC"),
        (TargetType.LEG, f"{other.prime_batch_id}:BTC"),
    ):
        audit_record(
            actor=operator,
            action=AuditAction.LEG_REQUESTED,
            target_type=target_type,
            target_id=target_id,
        )
    with django_assert_num_queries(1):
        timeline = selectors.batch_timeline(
            prime_batch_id=batch.prime_batch_id, leg_assets=["BTC", "ETH"]
        )
    assert [event.leg_asset for event in timeline] == ["", "BTC"]


def test_the_timeline_shows_long_messages_in_full_whatever_the_target(operator):
    # On PostgreSQL the timeline is read from an index holding messages up to 1,000 bytes
    # and another for longer ones (audit migration 0010): events with a message too long
    # for an index entry, and incompressible, are still written and shown, in order.
    from portal.audit.models import AuditAction, TargetType
    from portal.audit.services import audit_record
    from portal.settlement.models import Leg
    from tests.settlement.conftest import open_request

    batch = mirror_batch()
    change = open_request(Leg.objects.get(batch=batch, asset="USD"), operator)
    rng = random.Random(13)  # 1,500 random ideographs: 4,500 bytes that do not compress
    long_text = "".join(chr(0x4E00 + rng.randrange(20_000)) for _ in range(1_500))
    written = []
    for target_type, target_id, message in (
        (TargetType.BATCH, batch.prime_batch_id, long_text),
        (TargetType.LEG, f"{batch.prime_batch_id}:BTC", "short"),
        (TargetType.CHANGE_REQUEST, str(change.pk), "é" * 501),  # 1,002 bytes
        (TargetType.LEG, f"{batch.prime_batch_id}:BTC", long_text[::-1]),
        (TargetType.CHANGE_REQUEST, str(change.pk), ""),
    ):
        event = audit_record(
            actor=operator,
            action=AuditAction.LEG_REQUESTED,
            target_type=target_type,
            target_id=target_id,
            message=message,
        )
        written.append((event.seq, message))
    timeline = selectors.live_batch(prime_batch_id=batch.prime_batch_id).timeline
    shown = [(event.seq, event.message) for event in timeline if event.seq >= written[0][0]]
    assert shown == written
    assert [event.leg_asset for event in timeline][-5:] == ["", "BTC", "USD", "BTC", "USD"]
