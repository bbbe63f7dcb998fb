"""Helpers for the audit tests: recording events, and tampering with them as an attacker would."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from portal.actors import SystemActor
from portal.audit.models import AuditAction, Outcome, TargetType
from portal.audit.services import audit_record


def record(n: int = 1, **overrides):
    """Record n events (by a system actor unless told otherwise); returns the last one."""
    event = None
    for i in range(n):
        fields = {
            "actor": SystemActor.COMMAND_LINE,
            "action": AuditAction.KEY_LABEL_CHANGED,
            "target_type": TargetType.KEY,
            "target_id": f"KEY{i:04d}",
            "before": {"label": f"old {i}"},
            "after": {"label": f"new {i}"},
        }
        fields.update(overrides)
        event = audit_record(**fields)
    return event


def tamper(sql: str, params=()) -> None:
    """Run raw SQL against the audit table as a database superuser would (triggers bypassed)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = origin")


class Clock:
    """Stands in for django.utils.timezone inside audit_record: time moves only when told."""

    def __init__(self, start=None):
        self.current = start or timezone.now().replace(microsecond=0)

    def now(self):
        return self.current

    def advance(self, **delta):
        self.current += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr("portal.audit.services.timezone", fake)
    return fake


@pytest.fixture
def varied_events(db, admin, operator, clock):
    """A small trail with different actors, actions, targets and outcomes, an hour apart."""
    plan = [
        (admin, AuditAction.STAFF_CREATED, TargetType.STAFF, "vic.viewer", Outcome.SUCCEEDED),
        (
            operator,
            AuditAction.PRIME_USER_CREATED,
            TargetType.PRIME_USER,
            "USR0000000001",
            Outcome.SUCCEEDED,
        ),
        (operator, AuditAction.KEY_ISSUED, TargetType.KEY, "KEYAAAAAAAAA1", Outcome.SUCCEEDED),
        (operator, AuditAction.KEY_REVOKED, TargetType.KEY, "KEYAAAAAAAAA1", Outcome.FAILED),
        (
            SystemActor.POLLER,
            AuditAction.BATCH_STATUS_CHANGED,
            TargetType.BATCH,
            "B_ABCDEFGH",
            Outcome.SUCCEEDED,
        ),
        (operator, AuditAction.LEG_REQUESTED, TargetType.LEG, "B_ABCDEFGH:BTC", Outcome.SUCCEEDED),
        (admin, AuditAction.CONNECTION_CHANGED, TargetType.CONNECTION, "", Outcome.REFUSED),
        (operator, AuditAction.LEG_SUBMITTED, TargetType.LEG, "B_ABCDEFGH:ETH", Outcome.UNKNOWN),
    ]
    events = []
    for actor, action, ttype, tid, outcome in plan:
        clock.advance(hours=1)
        events.append(
            audit_record(
                actor=actor,
                action=action,
                target_type=ttype,
                target_id=tid,
                outcome=outcome,
                after={"n": len(events)},
            )
        )
    return events
