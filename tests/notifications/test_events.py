"""Events become notifications in the transaction of the change: who hears, and the link."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from portal.actors import SystemActor
from portal.approvals import services
from portal.approvals.models import ChangeKind, VoteDecision
from portal.audit.models import AuditAction, TargetType
from portal.audit.services import audit_record
from portal.notifications.events import notify_pending_transfers, send_daily_digest
from portal.notifications.models import Channel, EventType, Notification
from tests.conftest import make_staff


def _policy_request(admin):
    return services.policy_change_request(
        kind=ChangeKind.KEY_REVOKE,
        needs_approval=True,
        approvers=1,
        require_step_up_every_time=False,
        actor=admin,
        reason="review revocations",
    ).change


def test_a_request_tells_the_people_who_may_approve_it_and_nobody_else(admin, approver, viewer):
    other_admin = make_staff("ben.admin", "Admin")
    other_admin.email = "ben@example.test"
    other_admin.save()
    change = _policy_request(admin)

    waiting = Notification.objects.get(event_type=EventType.CHANGE_WAITING)
    assert waiting.recipient == other_admin
    assert waiting.link == f"https://portal.example.test/approvals/{change.pk}/"
    assert "review revocations" in waiting.body
    assert [d.channel for d in waiting.deliveries.all()] == [Channel.EMAIL]
    assert not Notification.objects.filter(recipient__in=[admin, approver, viewer]).exists()


def test_the_requester_hears_the_decision(admin):
    other_admin = make_staff("ben.admin", "Admin")
    change = _policy_request(admin)
    services.change_vote(
        change_id=change.pk, actor=other_admin, decision=VoteDecision.REJECT, step_up="none"
    )
    decided = Notification.objects.get(event_type=EventType.CHANGE_DECIDED)
    assert decided.recipient == admin
    assert decided.title.startswith("Your request was rejected")


def test_an_expired_request_tells_its_requester(admin):
    make_staff("ben.admin", "Admin")
    change = _policy_request(admin)
    services.change_expire_due(now=change.expires_at + timedelta(seconds=1))
    decided = Notification.objects.get(event_type=EventType.CHANGE_DECIDED, recipient=admin)
    assert "expired" in decided.title


def test_leg_events_reach_settlement_people(operator, approver, viewer):
    audit_record(
        actor=SystemActor.POLLER,
        action=AuditAction.LEG_STATUS_CHANGED,
        target_type=TargetType.LEG,
        target_id="BATCH-1:BTC",
        before={"status": "settling"},
        after={"status": "settled", "transfer_id": "T1"},
    )
    audit_record(
        actor=SystemActor.POLLER,
        action=AuditAction.LEG_SETTLE_FAILED,
        target_type=TargetType.LEG,
        target_id="BATCH-1:ETH",
        after={"state": "failed", "transfer_id": "T2"},
        message="The transfer T2 failed.",
    )
    settled = Notification.objects.filter(event_type=EventType.LEG_SETTLED)
    assert {n.recipient for n in settled} == {operator, approver}
    assert settled[0].link == "https://portal.example.test/settlement/BATCH-1/"
    failed = Notification.objects.filter(event_type=EventType.LEG_FAILED)
    assert {n.recipient for n in failed} == {operator, approver}


def test_a_transfer_kraken_failed_reaches_settlement_people(operator, approver, viewer):
    audit_record(
        actor=SystemActor.POLLER,
        action=AuditAction.LEG_STATUS_CHANGED,
        target_type=TargetType.LEG,
        target_id="BATCH-2:ETH",
        before={"status": "settling", "transfer_id": "T3", "transfer_status": "pending"},
        after={"status": "unsettled", "transfer_id": "T3", "transfer_status": "failed"},
    )
    failed = Notification.objects.filter(event_type=EventType.LEG_FAILED)
    assert {n.recipient for n in failed} == {operator, approver}
    assert failed[0].link == "https://portal.example.test/settlement/BATCH-2/"


def test_a_transfer_pending_too_long_is_told_once(settings, operator):
    from portal.settlement.models import Batch, Leg

    batch = Batch.objects.create(prime_batch_id="B-9", created_at=timezone.now())
    Leg.objects.create(
        batch=batch,
        asset="USD",
        direction="outgoing",
        amount=5,
        transfer_id="TR-1",
        transfer_status="pending",
    )
    now = timezone.now()
    assert notify_pending_transfers(now=now) == 0
    later = now + timedelta(minutes=settings.NOTIFY_TRANSFER_PENDING_MINUTES + 1)
    assert notify_pending_transfers(now=later) == 1
    assert notify_pending_transfers(now=later) == 0
    note = Notification.objects.get(event_type=EventType.TRANSFER_PENDING)
    assert "TR-1" in note.body and note.recipient == operator


def test_the_daily_digest_goes_to_people_with_something_waiting(admin, viewer):
    other_admin = make_staff("ben.admin", "Admin")
    _policy_request(admin)
    assert send_daily_digest() == 2  # the requester (open request) and the other admin (vote)
    assert send_daily_digest() == 0  # once a day
    digest = Notification.objects.get(event_type=EventType.DAILY_DIGEST, recipient=other_admin)
    assert "Waiting for your vote: 1" in digest.body
