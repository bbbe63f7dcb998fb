"""A Prime user's role: the set of permissions each of its keys carries at Kraken.

Kraken applies a role change to every key of the user, so the change lives on the keys
side: the users app stores the user's new role (`prime_user_store`), this module sends
the change and brings the keys' mirrored permissions along, in one transaction.
"""

from __future__ import annotations

from django.db import transaction

from portal.actors import Actor
from portal.audit.models import AuditAction, TargetType
from portal.audit.services import audit_record
from portal.connection.door import audit_json, call_prime
from portal.keys.models import ApiKey
from portal.users.models import PrimeRole, PrimeUser
from portal.users.services import prime_user_store
from primeapi import models as prime_models

__all__ = [
    "ROLE_ALREADY_HELD",
    "ROLE_CHANGED_SINCE_PREVIEW",
    "RoleAlreadyHeld",
    "RoleChangeRefused",
    "RoleChangedSincePreview",
    "prime_user_change_role",
    "role_change_check",
    "role_mirror_store",
]

ROLE_ALREADY_HELD = "{name} already has the {role} role."
ROLE_CHANGED_SINCE_PREVIEW = "The role changed since your preview; check the new preview."


class RoleChangeRefused(Exception):
    """A role change the portal will not send; `message` says why, for the person."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RoleAlreadyHeld(RoleChangeRefused):
    """The user already has the asked-for role: there is nothing to change."""


class RoleChangedSincePreview(RoleChangeRefused):
    """The user's role is no longer the one the person's preview was computed from."""


def role_change_check(*, user: PrimeUser, role: str, expected_role: str | None = None) -> None:
    """Refuse a change to the role the user has, or (with `expected_role`) a stale preview."""
    if role == user.role:
        raise RoleAlreadyHeld(ROLE_ALREADY_HELD.format(name=user.name, role=user.role))
    if expected_role is not None and expected_role != user.role:
        raise RoleChangedSincePreview(ROLE_CHANGED_SINCE_PREVIEW)


def prime_user_change_role(
    *, user: PrimeUser, actor: Actor, role: str, expected_role: str
) -> PrimeUser:
    """Send UpdatePrimeApiUserRoles for the role previewed against `expected_role`; the user's
    keys' mirrored permissions follow the new role."""
    if role not in PrimeRole.values:
        raise ValueError(f"role must be one of {', '.join(PrimeRole.values)}")
    role_change_check(user=user, role=role, expected_role=expected_role)
    keys = list(
        ApiKey.objects.filter(user=user, revoked_at__isnull=True, missing_upstream_at__isnull=True)
    )
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
        _store_role(user, keys, upstream, permissions)
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


def _store_role(
    user: PrimeUser, keys: list[ApiKey], upstream: prime_models.ApiUser, permissions: list[str]
) -> None:
    prime_user_store(user=user, upstream=upstream)
    ApiKey.objects.filter(pk__in=[k.pk for k in keys]).update(permissions=permissions)


def role_mirror_store(*, user: PrimeUser, upstream: prime_models.ApiUser) -> PrimeUser:
    """Mirror a role Kraken shows in force (a reconciled unknown outcome), keys included."""
    keys = list(
        ApiKey.objects.filter(user=user, revoked_at__isnull=True, missing_upstream_at__isnull=True)
    )
    before = user.snapshot()
    permissions = list(prime_models.ROLE_PERMISSIONS.get(upstream.role or "", ()))
    with transaction.atomic():
        _store_role(user, keys, upstream, permissions)
        audit_record(
            actor=None,
            action=AuditAction.PRIME_USER_ROLE_CHANGED,
            target_type=TargetType.PRIME_USER,
            target_id=user.prime_id,
            before=before,
            after=user.snapshot(),
            prime_response=audit_json(upstream),
            message="Kraken shows the change in force (reconciled)",
        )
    return user
