"""Writes for Prime API users: call Kraken first, then mirror + audit in one transaction.

Also `prime_sync`, which reconciles the mirror (users and keys) with Kraken.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from portal.actors import SystemActor
from portal.audit.models import AuditAction, Outcome, TargetType
from portal.audit.services import audit_record
from portal.connection.door import PrimeActionFailed, audit_json, call_prime
from portal.keys.models import ApiKey
from portal.users.models import PrimeRole, PrimeUser, PrimeUserStatus
from primeapi import models as prime_models
from primeapi.errors import InvalidArgumentsError

__all__ = [
    "DifferencesChanged",
    "PrimeActionFailed",
    "SyncReport",
    "prime_sync",
    "prime_user_change_role",
    "prime_user_create",
    "prime_user_rename",
    "prime_user_review_differences",
    "prime_user_set_status",
    "prime_user_update_labels",
]

SYNC_ACTOR = SystemActor.SYNC
ProgressCallback = Callable[[int, int, str], None]


def _apply_user(user: PrimeUser, upstream: prime_models.ApiUser) -> None:
    user.name = upstream.name
    user.role = upstream.role or ""
    user.status = upstream.status
    user.last_synced_at = timezone.now()
    user.missing_upstream_at = None


_USER_FIELDS = ["name", "role", "status", "last_synced_at", "missing_upstream_at"]


def prime_user_create(
    *,
    actor: Any,
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
                "created_by": actor if getattr(actor, "pk", None) else None,
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
    user: PrimeUser, *, actor: Any, action: AuditAction, change: dict[str, str]
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
        _apply_user(user, upstream)
        user.save(update_fields=_USER_FIELDS)
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


def prime_user_rename(*, user: PrimeUser, actor: Any, name: str) -> PrimeUser:
    """Give the user a new name at Kraken."""
    return _update_user(
        user, actor=actor, action=AuditAction.PRIME_USER_RENAMED, change={"name": name}
    )


def prime_user_set_status(*, user: PrimeUser, actor: Any, status: str) -> PrimeUser:
    """Enable or disable the user (a disabled user's keys stop working at once)."""
    if status not in PrimeUserStatus.values:
        raise ValueError(f"status must be one of {', '.join(PrimeUserStatus.values)}")
    action = (
        AuditAction.PRIME_USER_ENABLED
        if status == PrimeUserStatus.ENABLED
        else AuditAction.PRIME_USER_DISABLED
    )
    return _update_user(user, actor=actor, action=action, change={"status": status})


def prime_user_change_role(*, user: PrimeUser, actor: Any, role: str) -> PrimeUser:
    """Send UpdatePrimeApiUserRoles; the user's keys' permissions follow the new role."""
    if role not in PrimeRole.values:
        raise ValueError(f"role must be one of {', '.join(PrimeRole.values)}")
    keys = list(user.keys.filter(revoked_at__isnull=True, missing_upstream_at__isnull=True))
    before = {
        **user.snapshot(),
        "key_permissions": {k.prime_key_id: list(k.permissions) for k in keys},
    }
    upstream = call_prime(
        lambda client: client.update_api_user_roles(user.prime_id, role),
        actor=actor,
        action=AuditAction.PRIME_USER_ROLE_CHANGED,
        target_type=TargetType.PRIME_USER,
        target_id=user.prime_id,
        endpoint="UpdatePrimeApiUserRoles",
        before=before,
        attempted={**user.snapshot(), "role": role},
    )
    permissions = list(prime_models.ROLE_PERMISSIONS.get(upstream.role or "", ()))
    with transaction.atomic():
        _apply_user(user, upstream)
        user.save(update_fields=_USER_FIELDS)
        ApiKey.objects.filter(pk__in=[k.pk for k in keys]).update(permissions=permissions)
        audit_record(
            actor=actor,
            action=AuditAction.PRIME_USER_ROLE_CHANGED,
            target_type=TargetType.PRIME_USER,
            target_id=user.prime_id,
            before=before,
            after={
                **user.snapshot(),
                "key_permissions": {k.prime_key_id: permissions for k in keys},
            },
            prime_endpoint="UpdatePrimeApiUserRoles",
            prime_response=audit_json(upstream),
        )
    return user


def prime_user_update_labels(
    *, user: PrimeUser, actor: Any, owner_label: str, desk_label: str, notes: str
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


def prime_user_review_differences(*, user: PrimeUser, actor: Any, seen: str) -> PrimeUser:
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
            raise DifferencesChanged(
                "Kraken showed further differences since you looked; review them again."
            )
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


# --- sync ----------------------------------------------------------------------------------


@dataclass
class SyncReport:
    """What one sync saw and changed in the mirror."""

    users_seen: int = 0
    keys_seen: int = 0
    differences: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.differences)


@dataclass
class _Upstream:
    users: dict[str, prime_models.ApiUser]
    keys: dict[str, tuple[prime_models.ApiKey, ...]]
    # User ids Kraken said are unknown (single-user resync).
    gone: set[str]


def _read_upstream(
    client: Any, only: PrimeUser | None, progress: ProgressCallback | None
) -> _Upstream:
    if only is not None:
        try:
            upstream_user = client.get_api_user(only.prime_id)
        except InvalidArgumentsError as exc:
            if (exc.detail or "").lower().startswith("unknown user"):
                return _Upstream({}, {}, {only.prime_id})
            raise
        keys = client.list_api_user_keys(only.prime_id)
        if progress:
            progress(1, 1, upstream_user.name)
        return _Upstream({upstream_user.id: upstream_user}, {upstream_user.id: keys}, set())
    users = {u.id: u for u in client.list_api_users()}
    keys: dict[str, tuple[prime_models.ApiKey, ...]] = {}
    total = len(users)
    if progress:
        progress(0, total, "")
    for done, upstream_user in enumerate(users.values(), start=1):
        keys[upstream_user.id] = client.list_api_user_keys(upstream_user.id)
        if progress:
            progress(done, total, upstream_user.name)
    return _Upstream(users, keys, set())


def prime_sync(
    *, actor: Any, user: PrimeUser | None = None, progress: ProgressCallback | None = None
) -> SyncReport:
    """Reconcile the mirror with ListPrimeApiUsers/ListPrimeApiUserKeys (or one user).

    Adds what was created outside the portal, marks what disappeared, updates
    what changed, and records each difference as a SYNC_DIFFERENCE event.
    """
    target_id = user.prime_id if user is not None else ""
    endpoint = "GetPrimeApiUser" if user is not None else "ListPrimeApiUsers"
    upstream = call_prime(
        lambda client: _read_upstream(client, user, progress),
        actor=actor,
        action=AuditAction.SYNC_DIFFERENCE,
        target_type=TargetType.PRIME_USER,
        target_id=target_id,
        endpoint=endpoint,
    )
    with transaction.atomic():
        return _reconcile(upstream, actor=actor, only=user)


def _record(
    report: SyncReport,
    actor: Any,
    target_type: TargetType,
    target_id: str,
    message: str,
    before: Any,
    after: Any,
) -> None:
    report.differences.append(message)
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


def _flag(obj: PrimeUser | ApiKey, now: Any, what: Sequence[str]) -> None:
    obj.changed_outside_at = now
    # Keep the latest few descriptions: enough to explain the badge.
    obj.changed_outside = ([*list(what), *list(obj.changed_outside or [])])[:10]


def _mark_missing(obj: PrimeUser | ApiKey, now: Any) -> dict[str, Any]:
    """Mark a mirrored user or key as no longer listed by Kraken; returns its snapshot before."""
    before = obj.snapshot()
    obj.missing_upstream_at = now
    obj.last_synced_at = now
    _flag(obj, now, ["no longer listed by Kraken"])
    obj.save(
        update_fields=[
            "missing_upstream_at",
            "last_synced_at",
            "changed_outside_at",
            "changed_outside",
        ]
    )
    return before


def _reconcile(upstream: _Upstream, *, actor: Any, only: PrimeUser | None) -> SyncReport:
    now = timezone.now()
    report = SyncReport(users_seen=len(upstream.users))
    users_q = PrimeUser.objects.all()
    keys_q = ApiKey.objects.select_related("user")
    if only is not None:
        users_q = users_q.filter(pk=only.pk)
        keys_q = keys_q.filter(user=only)
    mirror_users = {u.prime_id: u for u in users_q}
    mirror_keys = {k.prime_key_id: k for k in keys_q}

    for prime_id, up in upstream.users.items():
        mirror = mirror_users.get(prime_id)
        if mirror is None:
            mirror = PrimeUser.objects.create(
                prime_id=prime_id,
                name=up.name,
                role=up.role or "",
                status=up.status,
                created_at=now,
                last_synced_at=now,
                changed_outside_at=now,
                changed_outside=["created outside the portal"],
            )
            mirror_users[prime_id] = mirror
            _record(
                report,
                actor,
                TargetType.PRIME_USER,
                prime_id,
                f"User {up.name} ({prime_id}) is at Kraken but was not in the portal "
                "(created outside the portal, or by a request whose answer was lost).",
                None,
                mirror.snapshot(),
            )
        else:
            _reconcile_user(report, actor, mirror, up, now)
        _reconcile_keys(report, actor, mirror, upstream.keys.get(prime_id, ()), mirror_keys, now)

    # Mirrored users Kraken no longer lists (all of them on a full sync).
    missing_ids = upstream.gone if only is not None else set(mirror_users) - set(upstream.users)
    for prime_id in missing_ids:
        mirror = mirror_users.get(prime_id)
        if mirror is None or mirror.missing_upstream_at is not None:
            continue
        before = _mark_missing(mirror, now)
        _record(
            report,
            actor,
            TargetType.PRIME_USER,
            prime_id,
            f"User {mirror.name} ({prime_id}) is no longer listed by Kraken.",
            before,
            None,
        )
        _reconcile_keys(report, actor, mirror, (), mirror_keys, now)
    return report


def _reconcile_user(
    report: SyncReport, actor: Any, mirror: PrimeUser, up: prime_models.ApiUser, now: Any
) -> None:
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
        _flag(mirror, now, changes)
        fields += ["changed_outside_at", "changed_outside"]
    mirror.save(update_fields=fields)
    if changes:
        _record(
            report,
            actor,
            TargetType.PRIME_USER,
            mirror.prime_id,
            f"User {mirror.name} ({mirror.prime_id}) changed outside the portal: "
            + "; ".join(changes),
            before,
            mirror.snapshot(),
        )


def _reconcile_keys(
    report: SyncReport,
    actor: Any,
    owner: PrimeUser,
    upstream_keys: Sequence[prime_models.ApiKey],
    mirror_keys: dict[str, ApiKey],
    now: Any,
) -> None:
    owner_changes: list[str] = []
    listed = set()
    for up in upstream_keys:
        report.keys_seen += 1
        listed.add(up.id)
        mirror = mirror_keys.get(up.id)
        if mirror is None:
            mirror = ApiKey.objects.create(
                prime_key_id=up.id,
                user=owner,
                public_key=up.api_key,
                permissions=list(up.permissions),
                whitelisted_ips=list(up.whitelisted_ips),
                created_at=now,
                updated_at=up.updated_at,
                last_synced_at=now,
                changed_outside_at=now,
                changed_outside=["issued outside the portal"],
            )
            mirror_keys[up.id] = mirror
            owner_changes.append(f"key {up.id} issued outside the portal")
            _record(
                report,
                actor,
                TargetType.KEY,
                up.id,
                f"Key {up.id} of {owner.name} is at Kraken but was not in the portal "
                "(issued outside the portal, or by a request whose answer was lost).",
                None,
                mirror.snapshot(),
            )
            continue
        before = mirror.snapshot()
        changes = []
        if mirror.user_id != owner.pk:
            changes.append(f"owner → {owner.prime_id}")
            mirror.user = owner
        if mirror.public_key != up.api_key:
            changes.append("public key changed")
            mirror.public_key = up.api_key
        if sorted(mirror.permissions) != sorted(up.permissions):
            changes.append(
                f"permissions {', '.join(mirror.permissions) or '—'} → "
                f"{', '.join(up.permissions) or '—'}"
            )
            mirror.permissions = list(up.permissions)
        if sorted(mirror.whitelisted_ips) != sorted(up.whitelisted_ips):
            changes.append(
                f"allow-list {', '.join(mirror.whitelisted_ips) or 'anywhere'} → "
                f"{', '.join(up.whitelisted_ips) or 'anywhere'}"
            )
            mirror.whitelisted_ips = list(up.whitelisted_ips)
            mirror.no_allowlist_warning = False
        if mirror.missing_upstream_at is not None:
            changes.append("listed by Kraken again")
            mirror.missing_upstream_at = None
        if mirror.revoked_at is not None:
            # Revoked here, yet Kraken still lists it: show it as usable, loudly.
            changes.append("revoked in the portal, but Kraken still lists it")
            mirror.revoked_at = None
        mirror.updated_at = up.updated_at or mirror.updated_at
        mirror.last_synced_at = now
        if changes:
            _flag(mirror, now, changes)
            owner_changes.append(f"key {up.id}: " + "; ".join(changes))
        mirror.save()
        if changes:
            _record(
                report,
                actor,
                TargetType.KEY,
                up.id,
                f"Key {up.id} of {owner.name} changed outside the portal: " + "; ".join(changes),
                before,
                mirror.snapshot(),
            )
    for key in list(mirror_keys.values()):
        if key.user_id != owner.pk or key.prime_key_id in listed:
            continue
        if key.revoked_at is not None or key.missing_upstream_at is not None:
            continue
        before = _mark_missing(key, now)
        owner_changes.append(f"key {key.prime_key_id} no longer listed by Kraken")
        _record(
            report,
            actor,
            TargetType.KEY,
            key.prime_key_id,
            f"Key {key.prime_key_id} of {owner.name} is no longer listed by Kraken "
            "(deleted outside the portal).",
            before,
            None,
        )
    if owner_changes:
        _flag(owner, now, owner_changes)
        owner.save(update_fields=["changed_outside_at", "changed_outside"])
