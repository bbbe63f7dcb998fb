"""Writes for Prime API users: call Kraken first, then mirror + audit in one transaction.

This app owns the users' rows only: it never imports the keys app and never writes a
key row. What spans a user and its keys (a role change, whose permissions every key
carries, and the full sync of users and keys) lives in `portal.keys.services`, which
calls the users' side of it here: `prime_users_read`, `prime_users_reconcile`,
`prime_user_store` and `prime_user_flag_changed_outside`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from portal.actors import Actor, actor_staff
from portal.audit.models import AuditAction, Outcome, TargetType
from portal.audit.services import audit_record
from portal.connection.door import PrimeActionFailed, audit_json, call_prime
from portal.users.models import PrimeUser, PrimeUserStatus
from primeapi import models as prime_models

__all__ = [
    "DIFFERENCES_CHANGED",
    "DifferencesChanged",
    "PrimeActionFailed",
    "UsersReconciled",
    "prime_user_create",
    "prime_user_flag_changed_outside",
    "prime_user_rename",
    "prime_user_review_differences",
    "prime_user_set_status",
    "prime_user_store",
    "prime_user_update_labels",
    "prime_users_read",
    "prime_users_reconcile",
    "record_sync_difference",
]

DIFFERENCES_CHANGED = "Kraken showed further differences since you looked; review them again."

_USER_FIELDS = ["name", "role", "status", "last_synced_at", "missing_upstream_at"]
_MISSING_FIELDS = ["missing_upstream_at", "last_synced_at", "changed_outside_at", "changed_outside"]


def _apply_user(user: PrimeUser, upstream: prime_models.ApiUser) -> None:
    user.name = upstream.name
    user.role = upstream.role or ""
    user.status = upstream.status
    user.last_synced_at = timezone.now()
    user.missing_upstream_at = None


def prime_user_store(*, user: PrimeUser, upstream: prime_models.ApiUser) -> PrimeUser:
    """Save what Kraken answered about the user; the caller audits it in its transaction."""
    _apply_user(user, upstream)
    user.save(update_fields=_USER_FIELDS)
    return user


def prime_user_create(
    *,
    actor: Actor,
    name: str,
    role: str,
    owner_label: str = "",
    desk_label: str = "",
    notes: str = "",
) -> PrimeUser:
    """Create a Prime API user (Viewer or Trader) and mirror it with its portal labels."""
    attempted = {"name": name, "role": role}
    upstream = call_prime(
        lambda client: client.create_api_user(name, role),
        actor=actor,
        action=AuditAction.PRIME_USER_CREATED,
        target_type=TargetType.PRIME_USER,
        endpoint="CreatePrimeApiUser",
        attempted=attempted,
    )
    now = timezone.now()
    values = {
        "name": upstream.name,
        "role": upstream.role or "",
        "status": upstream.status,
        "owner_label": owner_label,
        "desk_label": desk_label,
        "notes": notes,
        "last_synced_at": now,
    }
    with transaction.atomic():
        user, _ = PrimeUser.objects.update_or_create(
            prime_id=upstream.id,
            defaults={**values, "missing_upstream_at": None},
            create_defaults={
                **values,
                "created_at": now,
                "created_by": actor_staff(actor),
            },
        )
        audit_record(
            actor=actor,
            action=AuditAction.PRIME_USER_CREATED,
            target_type=TargetType.PRIME_USER,
            target_id=user.prime_id,
            after={**user.snapshot(), **user.labels()},
            prime_endpoint="CreatePrimeApiUser",
            prime_response=audit_json(upstream),
        )
    return user


def _update_user(
    user: PrimeUser, *, actor: Actor, action: AuditAction, change: dict[str, str]
) -> PrimeUser:
    """Send UpdatePrimeApiUser with `change` (name or status), then mirror and audit it."""
    before = user.snapshot()
    upstream = call_prime(
        lambda client: client.update_api_user(user.prime_id, **change),
        actor=actor,
        action=action,
        target_type=TargetType.PRIME_USER,
        target_id=user.prime_id,
        endpoint="UpdatePrimeApiUser",
        before=before,
        attempted={**before, **change},
    )
    with transaction.atomic():
        prime_user_store(user=user, upstream=upstream)
        audit_record(
            actor=actor,
            action=action,
            target_type=TargetType.PRIME_USER,
            target_id=user.prime_id,
            before=before,
            after=user.snapshot(),
            prime_endpoint="UpdatePrimeApiUser",
            prime_response=audit_json(upstream),
        )
    return user


def prime_user_rename(*, user: PrimeUser, actor: Actor, name: str) -> PrimeUser:
    """Give the user a new name at Kraken."""
    return _update_user(
        user, actor=actor, action=AuditAction.PRIME_USER_RENAMED, change={"name": name}
    )


def prime_user_set_status(*, user: PrimeUser, actor: Actor, status: str) -> PrimeUser:
    """Enable or disable the user (a disabled user's keys stop working at once)."""
    if status not in PrimeUserStatus.values:
        raise ValueError(f"status must be one of {', '.join(PrimeUserStatus.values)}")
    action = (
        AuditAction.PRIME_USER_ENABLED
        if status == PrimeUserStatus.ENABLED
        else AuditAction.PRIME_USER_DISABLED
    )
    return _update_user(user, actor=actor, action=action, change={"status": status})


def prime_user_update_labels(
    *, user: PrimeUser, actor: Actor, owner_label: str, desk_label: str, notes: str
) -> PrimeUser:
    """Change the portal-only owner, desk and notes (Kraken is not involved)."""
    before = user.labels()
    user.owner_label, user.desk_label, user.notes = owner_label, desk_label, notes
    if user.labels() == before:
        return user
    with transaction.atomic():
        user.save(update_fields=["owner_label", "desk_label", "notes"])
        audit_record(
            actor=actor,
            action=AuditAction.PRIME_USER_LABELS_CHANGED,
            target_type=TargetType.PRIME_USER,
            target_id=user.prime_id,
            before=before,
            after=user.labels(),
        )
    return user


class DifferencesChanged(Exception):
    """A sync found something new since the person looked; they must look again."""

    def __init__(self, message: str = DIFFERENCES_CHANGED) -> None:
        super().__init__(message)
        self.message = message


def prime_user_review_differences(*, user: PrimeUser, actor: Actor, seen: str) -> PrimeUser:
    """Clear the "changed outside the portal" badge after someone reviewed the differences.

    `seen` is the badge's time as the person's page showed it (ISO 8601); when a sync has
    flagged something newer since, nothing is cleared and DifferencesChanged is raised.
    Returns the user unchanged (and audits nothing) when there is nothing to review.
    """
    with transaction.atomic():
        user = PrimeUser.objects.select_for_update().get(pk=user.pk)
        if user.changed_outside_at is None:
            return user
        if user.changed_outside_at.isoformat() != seen:
            raise DifferencesChanged(DIFFERENCES_CHANGED)
        before = {
            "changed_outside_at": user.changed_outside_at.isoformat(),
            "changed_outside": list(user.changed_outside or []),
        }
        user.changed_outside_at = None
        user.changed_outside = []
        user.save(update_fields=["changed_outside_at", "changed_outside"])
        audit_record(
            actor=actor,
            action=AuditAction.SYNC_DIFFERENCE_REVIEWED,
            target_type=TargetType.PRIME_USER,
            target_id=user.prime_id,
            before=before,
            after={"changed_outside_at": None, "changed_outside": []},
            message="reviewed: " + "; ".join(before["changed_outside"]),
        )
    return user


# --- sync: the users' half (portal.keys.services.prime_sync runs both halves) --------------


def prime_users_read(
    *, actor: Actor, only: PrimeUser | None = None
) -> dict[str, prime_models.ApiUser]:
    """Every user Kraken lists (or only `only`, if listed), by Prime id; failures are audited."""
    listed = call_prime(
        lambda client: client.list_api_users(),
        actor=actor,
        action=AuditAction.SYNC_DIFFERENCE,
        target_type=TargetType.PRIME_USER,
        target_id=only.prime_id if only is not None else "",
        endpoint="ListPrimeApiUsers",
    )
    return {u.id: u for u in listed if only is None or u.id == only.prime_id}


def record_sync_difference(
    *,
    actor: Actor,
    target_type: TargetType,
    target_id: str,
    message: str,
    before: object,
    after: object,
) -> str:
    """Audit one difference a sync found (and mended) in the mirror; returns its message."""
    audit_record(
        actor=actor,
        action=AuditAction.SYNC_DIFFERENCE,
        target_type=target_type,
        target_id=target_id,
        outcome=Outcome.SUCCEEDED,
        before=before,
        after=after,
        message=message,
    )
    return message


@dataclass
class UsersReconciled:
    """The users' half of a sync: the mirror rows Kraken lists, those it stopped listing."""

    listed: dict[str, PrimeUser] = field(default_factory=dict)
    newly_missing: list[PrimeUser] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # Prime ids of users that differed


def prime_users_reconcile(
    *,
    actor: Actor,
    upstream: Mapping[str, prime_models.ApiUser],
    only: PrimeUser | None = None,
    now: datetime,
    baseline: bool = False,
) -> UsersReconciled:
    """Bring the users' mirror in line with `upstream` (from `prime_users_read`), auditing each
    difference. Run it inside the caller's transaction.

    With `baseline` (an installation's first sync), users the portal did not know are
    imported as they are: not "changed outside the portal", no difference recorded."""
    users = PrimeUser.objects.all() if only is None else PrimeUser.objects.filter(pk=only.pk)
    mirror = {u.prime_id: u for u in users}
    result = UsersReconciled()
    for prime_id, up in upstream.items():
        row = mirror.get(prime_id)
        if row is None:
            # The baseline takes Kraken's users as they are; later, an unknown user was
            # created outside the portal.
            outside = (
                {}
                if baseline
                else {
                    "changed_outside_at": now,
                    "changed_outside": ["created outside the portal"],
                }
            )
            row = PrimeUser.objects.create(
                prime_id=prime_id,
                name=up.name,
                role=up.role or "",
                status=up.status,
                created_at=now,
                last_synced_at=now,
                **outside,
            )
            if not baseline:
                result.differences.append(
                    record_sync_difference(
                        actor=actor,
                        target_type=TargetType.PRIME_USER,
                        target_id=prime_id,
                        message=f"User {up.name} ({prime_id}) is at Kraken but was not in the "
                        "portal (created outside the portal, or by a request whose answer was "
                        "lost).",
                        before=None,
                        after=row.snapshot(),
                    )
                )
        else:
            found = _reconcile_user(actor, row, up, now)
            if found:
                result.differences.extend(found)
                result.changed.append(prime_id)
        result.listed[prime_id] = row
    for prime_id in set(mirror) - set(upstream):
        row = mirror[prime_id]
        if row.missing_upstream_at is not None:
            continue
        before = row.snapshot()
        row.mark_missing(now)
        row.save(update_fields=_MISSING_FIELDS)
        result.newly_missing.append(row)
        result.changed.append(prime_id)
        result.differences.append(
            record_sync_difference(
                actor=actor,
                target_type=TargetType.PRIME_USER,
                target_id=prime_id,
                message=f"User {row.name} ({prime_id}) is no longer listed by Kraken.",
                before=before,
                after=None,
            )
        )
    return result


def _reconcile_user(
    actor: Actor, mirror: PrimeUser, up: prime_models.ApiUser, now: datetime
) -> list[str]:
    before = mirror.snapshot()
    changes = []
    for field_name, new in (("name", up.name), ("role", up.role or ""), ("status", up.status)):
        old = getattr(mirror, field_name)
        if old != new:
            changes.append(f"{field_name} {old or '—'} → {new or '—'}")
            setattr(mirror, field_name, new)
    if mirror.missing_upstream_at is not None:
        changes.append("listed by Kraken again")
        mirror.missing_upstream_at = None
    mirror.last_synced_at = now
    fields = [*_USER_FIELDS]
    if changes:
        mirror.flag_changed_outside(now, changes)
        fields += ["changed_outside_at", "changed_outside"]
    mirror.save(update_fields=fields)
    if not changes:
        return []
    message = f"User {mirror.name} ({mirror.prime_id}) changed outside the portal: " + "; ".join(
        changes
    )
    return [
        record_sync_difference(
            actor=actor,
            target_type=TargetType.PRIME_USER,
            target_id=mirror.prime_id,
            message=message,
            before=before,
            after=mirror.snapshot(),
        )
    ]


def prime_user_flag_changed_outside(*, user: PrimeUser, what: Sequence[str], now: datetime) -> None:
    """Add to the user's "changed outside the portal" badge (e.g. its keys changed at Kraken)."""
    user.flag_changed_outside(now, what)
    user.save(update_fields=["changed_outside_at", "changed_outside"])
