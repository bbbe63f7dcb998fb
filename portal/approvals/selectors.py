"""Reads for the inbox, a request's page and the navigation count (a few queries each)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import QuerySet
from django.utils import timezone

from portal.approvals.kinds import UnknownKind, registered, spec_for
from portal.approvals.models import ChangeRequest, RequestState, Vote
from portal.audit.diff import Change, diff
from portal.audit.models import AuditEvent, TargetType
from portal.staff.models import Staff

INBOX_LIMIT = 50
RECENT_DAYS = 7


def approvable_kinds(*, staff: Staff) -> list[str]:
    """The kinds of change this person may approve (permissions are cached per request)."""
    return [kind for kind, spec in registered().items() if staff.has_perm(spec.approve_permission)]


def _listed(qs: QuerySet[ChangeRequest]) -> QuerySet[ChangeRequest]:
    return qs.select_related("requested_by")


def change_waiting_for(*, staff: Staff) -> QuerySet[ChangeRequest]:
    """Pending, unexpired requests of others this person may approve and has not voted on."""
    return (
        ChangeRequest.objects.filter(
            state=RequestState.PENDING,
            kind__in=approvable_kinds(staff=staff),
            expires_at__gt=timezone.now(),
        )
        .exclude(requested_by=staff)
        .exclude(pk__in=Vote.objects.filter(voter=staff).values("change_id"))
        .order_by("expires_at", "pk")
    )


def change_waiting_count(*, staff: Staff) -> int:
    """How many requests wait for this person's vote (the navigation count: one query)."""
    return change_waiting_for(staff=staff).count()


def change_to_review(*, staff: Staff) -> QuerySet[ChangeRequest]:
    """Changes of others that ran at once (no approval) and nobody has reviewed yet."""
    return (
        _listed(
            ChangeRequest.objects.filter(
                quorum=0,
                reviewed_at__isnull=True,
                state__in=(RequestState.DONE, RequestState.FAILED, RequestState.OUTCOME_UNKNOWN),
                kind__in=approvable_kinds(staff=staff),
            )
        )
        .exclude(requested_by=staff)
        .order_by("created_at", "pk")
    )


def change_requested_by(*, staff: Staff) -> list[ChangeRequest]:
    return list(_listed(ChangeRequest.objects.filter(requested_by=staff))[:INBOX_LIMIT])


def change_decided_recently() -> list[ChangeRequest]:
    since = timezone.now() - timedelta(days=RECENT_DAYS)
    qs = ChangeRequest.objects.filter(decided_at__gte=since).exclude(state=RequestState.PENDING)
    return list(_listed(qs).order_by("-decided_at", "-pk")[:INBOX_LIMIT])


def change_get(*, pk: int) -> ChangeRequest:
    """One request with its people (raises ChangeRequest.DoesNotExist)."""
    return ChangeRequest.objects.select_related("requested_by", "executed_by").get(pk=pk)


def change_votes(*, change: ChangeRequest) -> list[Vote]:
    return list(change.votes.select_related("voter"))


def change_timeline(*, change: ChangeRequest) -> list[AuditEvent]:
    """The request's audit events, oldest first: requested, votes, execution, Kraken's answer."""
    return list(
        AuditEvent.objects.filter(
            target_type=TargetType.CHANGE_REQUEST, target_id=str(change.pk)
        ).order_by("seq")
    )


def change_diff(*, change: ChangeRequest) -> list[Change]:
    """The change as before/after leaves, as its kind describes it."""
    import json

    payload = json.loads(change.payload)
    try:
        before, after = spec_for(change.kind).describe(
            payload=payload, target_id=change.target_id, fingerprint=change.target_fingerprint
        )
    except UnknownKind:
        before, after = change.target_fingerprint, payload
    return diff(before, after)


@dataclass(frozen=True)
class ChangeActions:
    """What this person may do with this request now (the page shows these buttons)."""

    vote: bool
    withdraw: bool
    execute: bool
    reconcile: bool
    execute_url_name: str = "approvals:execute"
    already_voted: bool = False
    review: bool = False


def change_actions(*, change: ChangeRequest, staff: Staff, votes: list[Vote]) -> ChangeActions:
    """Which actions the page offers (the services check again when one is used)."""
    try:
        spec = spec_for(change.kind)
    except UnknownKind:
        return ChangeActions(False, False, False, False)
    mine = change.requested_by_id == staff.pk
    may_approve = not mine and staff.has_perm(spec.approve_permission)
    voted = any(v.voter_id == staff.pk for v in votes)
    open_now = change.state == RequestState.PENDING and change.expires_at > timezone.now()
    return ChangeActions(
        vote=open_now and may_approve and not voted,
        withdraw=mine and change.state in (RequestState.PENDING, RequestState.APPROVED),
        execute=mine
        and change.requester_executes
        and change.state == RequestState.APPROVED
        and (change.execute_by is None or change.execute_by > timezone.now()),
        reconcile=change.state == RequestState.OUTCOME_UNKNOWN
        and staff.has_perm(spec.approve_permission),
        execute_url_name=spec.execute_url_name or "approvals:execute",
        already_voted=voted,
        review=change.quorum == 0
        and change.reviewed_at is None
        and change.state in (RequestState.DONE, RequestState.FAILED, RequestState.OUTCOME_UNKNOWN)
        and may_approve,
    )
