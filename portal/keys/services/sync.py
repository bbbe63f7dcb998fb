"""`prime_sync`: reconcile the mirror of Prime users and their keys with Kraken.

Each app reconciles its own rows: the users' half is `portal.users.services`
(`prime_users_read`, `prime_users_reconcile`), the keys' half is here. Both reads go
through the door before any transaction opens; both halves are then stored, with an
audit event per difference, in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from portal.actors import Actor
from portal.approvals import services as approvals
from portal.audit.models import AuditAction, AuditEvent, TargetType
from portal.connection.door import call_prime
from portal.keys.models import ApiKey, SyncBaseline
from portal.users.models import PrimeUser
from portal.users.services import (
    prime_user_flag_changed_outside,
    prime_users_read,
    prime_users_reconcile,
    record_sync_difference,
)
from primeapi import models as prime_models
from primeapi.client import PrimeClient

__all__ = ["ProgressCallback", "SyncReport", "prime_sync"]

# (users done, users in all, name of the last one): drives a command's progress bar.
ProgressCallback = Callable[[int, int, str], None]
UpstreamKeys = dict[str, tuple[prime_models.ApiKey, ...]]


@dataclass
class SyncReport:
    """What one sync saw and changed in the mirror."""

    users_seen: int = 0
    keys_seen: int = 0
    differences: list[str] = field(default_factory=list)
    baseline: bool = False  # the installation's first full sync: imported, not "changed"
    # (target type, id) of what differed: open change requests on them are voided.
    changed_targets: list[tuple[str, str]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.differences)


def prime_sync(
    *, actor: Actor, user: PrimeUser | None = None, progress: ProgressCallback | None = None
) -> SyncReport:
    """Reconcile the mirror with ListPrimeApiUsers/ListPrimeApiUserKeys (or for one user).

    Adds what was created outside the portal, marks what disappeared, updates what
    changed, and records each difference as a SYNC_DIFFERENCE event.
    """
    upstream_users = prime_users_read(actor=actor, only=user)
    upstream_keys = call_prime(
        lambda client: _read_keys(client, upstream_users, progress),
        actor=actor,
        action=AuditAction.SYNC_DIFFERENCE,
        target_type=TargetType.PRIME_USER,
        target_id=user.prime_id if user is not None else "",
        endpoint="ListPrimeApiUserKeys",
    )
    now = timezone.now()
    with transaction.atomic():
        baseline = user is None and _first_sync_of_a_new_installation()
        users = prime_users_reconcile(
            actor=actor, upstream=upstream_users, only=user, now=now, baseline=baseline
        )
        report = SyncReport(
            users_seen=len(upstream_users), differences=users.differences, baseline=baseline
        )
        keys = ApiKey.objects.select_related("user")
        mirror = {k.prime_key_id: k for k in (keys if user is None else keys.filter(user=user))}
        for prime_id, owner in users.listed.items():
            _reconcile_keys(report, actor, owner, upstream_keys.get(prime_id, ()), mirror, now)
        for owner in users.newly_missing:
            _reconcile_keys(report, actor, owner, (), mirror, now)
        report.changed_targets += [(TargetType.PRIME_USER, pid) for pid in users.changed]
        if baseline:
            SyncBaseline.objects.create(
                taken_at=now,
                users=report.users_seen,
                keys=report.keys_seen,
                actor_label=str(getattr(actor, "username", actor)),
            )
    _void_open_requests(report, actor)
    return report


def _void_open_requests(report: SyncReport, actor: Actor) -> None:
    """A target that changed at Kraken voids the change requests waiting on it (the engine
    would void them at execution anyway; this says so at once, in the inbox)."""
    for target_type, target_id in dict.fromkeys(report.changed_targets):
        approvals.change_void_for_target(
            target_type=str(target_type),
            target_id=target_id,
            actor=actor,
            reason=f"{target_type} {target_id} changed at Kraken (found by a sync)",
        )


def _first_sync_of_a_new_installation() -> bool:
    """No baseline yet, and the portal never held nor touched a Prime user or key (an
    installation that already did, e.g. one upgraded to this version, has no baseline to take)."""
    if SyncBaseline.objects.exists() or PrimeUser.objects.exists():
        return False
    touched = AuditEvent.objects.filter(target_type__in=(TargetType.PRIME_USER, TargetType.KEY))
    return not touched.exclude(action=AuditAction.SYNC_DIFFERENCE).exists()  # a failed sync


def _read_keys(
    client: PrimeClient,
    users: Mapping[str, prime_models.ApiUser],
    progress: ProgressCallback | None,
) -> UpstreamKeys:
    keys: UpstreamKeys = {}
    if progress:
        progress(0, len(users), "")
    for done, upstream_user in enumerate(users.values(), start=1):
        keys[upstream_user.id] = client.list_api_user_keys(upstream_user.id)
        if progress:
            progress(done, len(users), upstream_user.name)
    return keys


def _difference(
    report: SyncReport, actor: Actor, key_id: str, message: str, before: object, after: object
) -> None:
    report.changed_targets.append((TargetType.KEY, key_id))
    report.differences.append(
        record_sync_difference(
            actor=actor,
            target_type=TargetType.KEY,
            target_id=key_id,
            message=message,
            before=before,
            after=after,
        )
    )


def _changes(mirror: ApiKey, owner: PrimeUser, up: prime_models.ApiKey) -> list[str]:
    """Apply Kraken's view of the key to its mirror row (not saved); say what differed."""
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
    return changes


def _reconcile_keys(
    report: SyncReport,
    actor: Actor,
    owner: PrimeUser,
    upstream_keys: Sequence[prime_models.ApiKey],
    mirror_keys: dict[str, ApiKey],
    now: datetime,
) -> None:
    owner_changes: list[str] = []
    listed = set()
    for up in upstream_keys:
        report.keys_seen += 1
        listed.add(up.id)
        mirror = mirror_keys.get(up.id)
        if mirror is None:
            # The first sync (the baseline) takes what Kraken has as it is; later, a key the
            # portal did not know of was issued outside it.
            outside = (
                {}
                if report.baseline
                else {
                    "changed_outside_at": now,
                    "changed_outside": ["issued outside the portal"],
                }
            )
            mirror = ApiKey.objects.create(
                prime_key_id=up.id,
                user=owner,
                public_key=up.api_key,
                permissions=list(up.permissions),
                whitelisted_ips=list(up.whitelisted_ips),
                created_at=now,
                updated_at=up.updated_at,
                last_synced_at=now,
                **outside,
            )
            mirror_keys[up.id] = mirror
            if report.baseline:
                continue
            owner_changes.append(f"key {up.id} issued outside the portal")
            message = (
                f"Key {up.id} of {owner.name} is at Kraken but was not in the portal "
                "(issued outside the portal, or by a request whose answer was lost)."
            )
            _difference(report, actor, up.id, message, None, mirror.snapshot())
            continue
        before = mirror.snapshot()
        changes = _changes(mirror, owner, up)
        mirror.updated_at = up.updated_at or mirror.updated_at
        mirror.last_synced_at = now
        if changes:
            mirror.flag_changed_outside(now, changes)
            owner_changes.append(f"key {up.id}: " + "; ".join(changes))
        mirror.save()
        if changes:
            message = f"Key {up.id} of {owner.name} changed outside the portal: " + "; ".join(
                changes
            )
            _difference(report, actor, up.id, message, before, mirror.snapshot())
    for key in list(mirror_keys.values()):
        if key.user_id != owner.pk or key.prime_key_id in listed:
            continue
        if key.revoked_at is not None or key.missing_upstream_at is not None:
            continue
        before = key.snapshot()
        key.mark_missing(now)
        key.save(
            update_fields=[
                "missing_upstream_at",
                "last_synced_at",
                "changed_outside_at",
                "changed_outside",
            ]
        )
        owner_changes.append(f"key {key.prime_key_id} no longer listed by Kraken")
        message = (
            f"Key {key.prime_key_id} of {owner.name} is no longer listed by Kraken "
            "(deleted outside the portal)."
        )
        _difference(report, actor, key.prime_key_id, message, before, None)
    if owner_changes:
        prime_user_flag_changed_outside(user=owner, what=owner_changes, now=now)
