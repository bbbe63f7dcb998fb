"""Which events people hear about, who hears, and what the message says (never a secret).

From the audit trail (`notify_for_audit`, called in the transaction that wrote the
event) and from the worker's scheduled jobs (pending transfers, key expiry, digest).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from portal.approvals.kinds import UnknownKind, spec_for
from portal.approvals.models import ChangeKind, ChangeRequest, RequestState
from portal.approvals.selectors import change_waiting_for
from portal.audit.models import AuditAction, AuditEvent, TargetType
from portal.keys.models import ApiKey
from portal.notifications.models import EventType, PendingTransferSeen
from portal.notifications.services import notify
from portal.settlement.models import Leg
from portal.staff.models import Staff
from portal.staff.roles import APPROVE_SETTLEMENT, MANAGE_KEYS, REQUEST_SETTLEMENT, VIEW_PORTAL

DECIDED = {
    AuditAction.CHANGE_VOTE_REJECTED: "rejected",
    AuditAction.CHANGE_VOIDED: "void (its target changed)",
    AuditAction.CHANGE_EXPIRED: "expired",
    AuditAction.CHANGE_EXECUTION_FAILED: "refused by Kraken",
}


def _active_staff() -> list[Staff]:
    return list(Staff.objects.filter(is_active=True).order_by("pk"))


def _with_perm(*perms: str) -> list[Staff]:
    return [s for s in _active_staff() if any(s.has_perm(p) for p in perms)]


def _when(moment: datetime | None) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M %Z") if moment else "—"


def _dict(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}


def notify_for_audit(event: AuditEvent) -> int:
    """Turn one audit event into notifications (0 when nobody needs to hear about it)."""
    if event.target_type == TargetType.CHANGE_REQUEST:
        return _change_event(event)
    if event.target_type == TargetType.LEG:
        return _leg_event(event)
    return 0


def _change_event(event: AuditEvent) -> int:
    try:
        change = ChangeRequest.objects.select_related("requested_by").get(pk=int(event.target_id))
    except (ValueError, ChangeRequest.DoesNotExist):
        return 0
    path = reverse("approvals:detail", kwargs={"pk": change.pk})
    what = change.summary or change.get_kind_display()
    after = _dict(event.after)
    try:
        approve_perm = spec_for(change.kind).approve_permission
    except UnknownKind:
        approve_perm = ""
    if event.action == AuditAction.CHANGE_REQUESTED and change.state == RequestState.PENDING:
        approvers = [
            s
            for s in _active_staff()
            if s.pk != change.requested_by_id and s.has_perm(approve_perm)
        ]
        return notify(
            event_type=EventType.CHANGE_WAITING,
            event_key=f"change_waiting:{change.pk}",
            recipients=approvers,
            title=f"Waiting for your vote: {what}",
            body=(
                f"{change.requested_by.get_username()} asks for: {what}.\n"
                f"Reason: {change.reason or '—'}\n"
                f"Approvals needed: {change.quorum}. Expires: {_when(change.expires_at)}."
            ),
            path=path,
        )
    if (
        event.action == AuditAction.CHANGE_EXECUTION_FAILED
        and change.kind == ChangeKind.SETTLEMENT_LEG
    ):
        prime_batch_id = change.target_id.rpartition(":")[0]
        return notify(
            event_type=EventType.LEG_FAILED,
            event_key=f"leg_failed:{change.target_id}:change:{change.pk}",
            recipients=_with_perm(REQUEST_SETTLEMENT, APPROVE_SETTLEMENT),
            title=f"Leg settlement failed: {what}",
            body=event.message or f"Kraken refused to settle: {what}.",
            path=reverse("settlement:batch-detail", kwargs={"prime_batch_id": prime_batch_id}),
        )
    outcome = DECIDED.get(AuditAction(event.action)) if event.action in DECIDED else None
    if event.action == AuditAction.CHANGE_VOTE_APPROVED and after.get("state") in (
        RequestState.APPROVED,
        RequestState.DONE,
    ):
        outcome = "approved"
    if outcome is not None:
        return notify(
            event_type=EventType.CHANGE_DECIDED,
            event_key=f"change_decided:{change.pk}:{outcome}",
            recipients=[change.requested_by],
            title=f"Your request was {outcome}: {what}",
            body=f"{what}\nDecided by: {event.actor_label}.\n{event.message or ''}".strip(),
            path=path,
        )
    if event.action == AuditAction.CHANGE_OUTCOME_UNKNOWN:
        people = [change.requested_by, *_with_perm(approve_perm)] if approve_perm else []
        return notify(
            event_type=EventType.OUTCOME_UNKNOWN,
            event_key=f"outcome_unknown:audit:{event.seq}",
            recipients=people,
            title=f"Outcome unknown, needs a person: {what}",
            body="Kraken's answer did not arrive; check the request and reconcile it.",
            path=path,
        )
    return 0


def _leg_event(event: AuditEvent) -> int:
    prime_batch_id, _, asset = event.target_id.rpartition(":")
    if not prime_batch_id:
        return 0
    path = reverse("settlement:batch-detail", kwargs={"prime_batch_id": prime_batch_id})
    before, after = _dict(event.before), _dict(event.after)
    people = _with_perm(REQUEST_SETTLEMENT, APPROVE_SETTLEMENT)
    leg = f"{asset} in batch {prime_batch_id}"
    if (
        event.action == AuditAction.LEG_STATUS_CHANGED
        and after.get("status") == "settled"
        and before.get("status") != "settled"
    ):
        return notify(
            event_type=EventType.LEG_SETTLED,
            event_key=f"leg_settled:{event.target_id}",
            recipients=people,
            title=f"Leg settled: {leg}",
            body=f"The {asset} leg of batch {prime_batch_id} is settled.",
            path=path,
        )
    transfer_failed = (
        event.action == AuditAction.LEG_STATUS_CHANGED
        and after.get("transfer_status") == "failed"
        and before.get("transfer_status") != "failed"
    )
    if transfer_failed or event.action == AuditAction.LEG_SETTLE_FAILED:
        transfer = after.get("transfer_id") or f"audit:{event.seq}"
        return notify(
            event_type=EventType.LEG_FAILED,
            event_key=f"leg_failed:{event.target_id}:{transfer}",
            recipients=people,
            title=f"Leg settlement failed: {leg}",
            body=event.message or f"Settling the {asset} leg failed.",
            path=path,
        )
    if event.action == AuditAction.LEG_OUTCOME_UNKNOWN:
        return notify(
            event_type=EventType.OUTCOME_UNKNOWN,
            event_key=f"outcome_unknown:audit:{event.seq}",
            recipients=people,
            title=f"Outcome unknown, needs a person: {leg}",
            body=event.message or "Kraken's answer to the settle did not arrive.",
            path=path,
        )
    return 0


def notify_pending_transfers(*, now: datetime | None = None) -> int:
    """Remember when each pending transfer was first seen; tell people about the overdue ones."""
    now = now or timezone.now()
    pending = {
        leg.transfer_id: leg
        for leg in Leg.objects.filter(transfer_status="pending")
        .exclude(transfer_id="")
        .select_related("batch")
    }
    PendingTransferSeen.objects.exclude(transfer_id__in=list(pending)).delete()
    known = set(PendingTransferSeen.objects.values_list("transfer_id", flat=True))
    for transfer_id, leg in pending.items():
        if transfer_id not in known:
            PendingTransferSeen.objects.create(
                transfer_id=transfer_id,
                leg_label=f"{leg.asset} in batch {leg.batch.prime_batch_id}",
                link=reverse(
                    "settlement:batch-detail", kwargs={"prime_batch_id": leg.batch.prime_batch_id}
                ),
                first_seen_at=now,
            )
    overdue = now - timedelta(minutes=settings.NOTIFY_TRANSFER_PENDING_MINUTES)
    told = 0
    people = _with_perm(REQUEST_SETTLEMENT, APPROVE_SETTLEMENT)
    for seen in PendingTransferSeen.objects.filter(first_seen_at__lte=overdue):
        told += notify(
            event_type=EventType.TRANSFER_PENDING,
            event_key=f"transfer_pending:{seen.transfer_id}",
            recipients=people,
            title=f"Transfer pending since {_when(seen.first_seen_at)}: {seen.leg_label}",
            body=(
                f"Transfer {seen.transfer_id} ({seen.leg_label}) has been pending for more than "
                f"{settings.NOTIFY_TRANSFER_PENDING_MINUTES} minutes."
            ),
            path=seen.link,
        )
    return told


def notify_key_expiring(
    *, key_id: str, label: str, expires_at: datetime, path: str, recipients: Iterable[Staff]
) -> int:
    """A key expires soon (one notification per key and expiry date)."""
    return notify(
        event_type=EventType.KEY_EXPIRING,
        event_key=f"key_expiring:{key_id}:{expires_at.date().isoformat()}",
        recipients=recipients,
        title=f"Key expires {_when(expires_at)}: {label}",
        body=f"The API key {label} expires on {_when(expires_at)}. Issue a new one in time.",
        path=path,
    )


def notify_keys_expiring(*, now: datetime | None = None) -> int:
    """Keys whose `expires_at` falls within NOTIFY_KEY_EXPIRY_DAYS (none until keys have one)."""
    field_names = {f.name for f in ApiKey._meta.get_fields()}
    if "expires_at" not in field_names:
        return 0
    now = now or timezone.now()
    horizon = now + timedelta(days=settings.NOTIFY_KEY_EXPIRY_DAYS)
    people = _with_perm(MANAGE_KEYS)
    told = 0
    for key in ApiKey.objects.filter(Q(expires_at__gt=now) & Q(expires_at__lte=horizon)):
        told += notify_key_expiring(
            key_id=str(key.pk),
            label=str(key),
            expires_at=key.expires_at,  # type: ignore[attr-defined]
            path=reverse("users:list"),
            recipients=people,
        )
    return told


def send_daily_digest(*, now: datetime | None = None) -> int:
    """One digest per person with anything waiting: votes, own open requests, unknown outcomes."""
    now = now or timezone.now()
    day = timezone.localtime(now).date().isoformat()
    told = 0
    for person in _active_staff():
        if not person.has_perm(VIEW_PORTAL):
            continue
        waiting = change_waiting_for(staff=person).count()
        mine = ChangeRequest.objects.filter(
            requested_by=person, state__in=(RequestState.PENDING, RequestState.APPROVED)
        ).count()
        unknown = ChangeRequest.objects.filter(
            requested_by=person, state=RequestState.OUTCOME_UNKNOWN
        ).count()
        if not (waiting or mine or unknown):
            continue
        lines = [
            f"Waiting for your vote: {waiting}",
            f"Your requests still open: {mine}",
            f"Your requests with an unknown outcome: {unknown}",
        ]
        told += notify(
            event_type=EventType.DAILY_DIGEST,
            event_key=f"daily_digest:{day}",
            recipients=[person],
            title=f"Daily digest {day}: {waiting} waiting for your vote",
            body="\n".join(lines),
            path=reverse("approvals:inbox"),
        )
    return told
