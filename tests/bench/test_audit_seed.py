"""bench's seed_audit_events: a valid chain in bulk, continuing whatever is there."""

from __future__ import annotations

import io

from django.core.management import call_command

from bench.management.commands.seed_audit_events import Command as SeedAuditEvents
from portal.audit.models import AuditEvent
from portal.audit.verify import verify_chain
from tests.audit.conftest import record


def test_seeding_continues_the_chain_and_it_verifies(db):
    record(2)
    out, err = io.StringIO(), io.StringIO()
    call_command(
        SeedAuditEvents(), "--count", "2500", "--chunk-size", "1000", stdout=out, stderr=err
    )
    assert "Seeded 2,500 events; head is now #2502." in out.getvalue()
    assert "seed_audit_events: done 2,500 events" in err.getvalue()
    report = verify_chain()
    assert report.ok, report.problems
    assert report.events == 2502
    after = record()
    assert after.seq == 2503
    assert verify_chain().ok


def test_seeded_events_vary_like_a_real_trail(db):
    call_command(SeedAuditEvents(), "--count", "3000", "--no-progress", stdout=io.StringIO())
    assert AuditEvent.objects.values("action").distinct().count() > 15
    assert AuditEvent.objects.values("target_type").distinct().count() >= 6
    assert AuditEvent.objects.values("outcome").distinct().count() == 4
    assert AuditEvent.objects.values("actor_label").distinct().count() > 20
