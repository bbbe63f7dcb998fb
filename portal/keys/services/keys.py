"""Writes for Prime API keys: issue (secret returned once, in memory), allow-lists, revoke.

The secret Kraken returns on issue is handed back to the caller inside `IssuedKey`
and nowhere else: it is not saved, logged, audited, cached or put in a message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from portal.actors import Actor, actor_staff
from portal.audit.models import AuditAction, TargetType
from portal.audit.services import audit_record
from portal.connection.door import PrimeActionFailed, audit_json, call_prime
from portal.keys.allowlist import parse_allowlist
from portal.keys.models import ApiKey, KeyIssueRequest
from portal.users.models import PrimeUser

__all__ = [
    "ALLOWLIST_CHANGED_SINCE_PREVIEW",
    "EMPTY_ALLOWLIST_NOT_CONFIRMED",
    "AllowlistChangedSincePreview",
    "AllowlistRefused",
    "EmptyAllowlistNotConfirmed",
    "IssuedKey",
    "KeyAlreadyIssued",
    "PrimeActionFailed",
    "allowlist_check",
    "key_issue",
    "key_revoke",
    "key_save_allowlist",
    "key_update_allowlist",
    "key_update_label",
]

ALLOWLIST_CHANGED_SINCE_PREVIEW = (
    "The allow-list changed since your preview; check this preview again."
)
EMPTY_ALLOWLIST_NOT_CONFIRMED = (
    "An empty allow-list makes the key usable from any address: tick the box to confirm that."
)


class AllowlistRefused(ValueError):
    """The entries are not an acceptable allow-list (the form should have said so)."""

    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__(" ".join(errors))
        self.errors = tuple(errors)


class AllowlistChangedSincePreview(Exception):
    """The key's allow-list is no longer the one the person's preview was made against."""

    def __init__(self) -> None:
        super().__init__(ALLOWLIST_CHANGED_SINCE_PREVIEW)
        self.message = ALLOWLIST_CHANGED_SINCE_PREVIEW


class EmptyAllowlistNotConfirmed(Exception):
    """An empty allow-list (usable from anywhere) was sent without its explicit confirmation."""

    def __init__(self) -> None:
        super().__init__(EMPTY_ALLOWLIST_NOT_CONFIRMED)
        self.message = EMPTY_ALLOWLIST_NOT_CONFIRMED


class KeyAlreadyIssued(Exception):
    """The issue form was already used: its key's secret was shown then, or never will be."""

    def __init__(self, key: ApiKey | None) -> None:
        super().__init__("this issue form was already used")
        self.key = key


@dataclass(frozen=True)
class IssuedKey:
    """A newly issued key, its secret (for this one response only) and the allow-list outcome."""

    key: ApiKey
    secret: str = field(repr=False)
    allowlist_error: str = ""
    allowlist_outcome_unknown: bool = False

    def __str__(self) -> str:
        return f"IssuedKey({self.key.prime_key_id})"


def _checked_entries(entries: Sequence[str]) -> list[str]:
    parsed = parse_allowlist("\n".join(entries))
    if not parsed.ok:
        raise AllowlistRefused(parsed.errors)
    return list(parsed.entries)


@sensitive_variables("issued", "secret")
def key_issue(
    *,
    user: PrimeUser,
    actor: Actor,
    label: str = "",
    whitelisted_ips: Sequence[str] | None = None,
    issue_token: str | None = None,
) -> IssuedKey:
    """Issue a key; with `whitelisted_ips`, set its allow-list at once in a second call.

    If that second call fails, the key still exists: it is marked "no allow-list",
    both outcomes are audited, and the result says what went wrong.
    """
    entries = _checked_entries(whitelisted_ips) if whitelisted_ips else []
    reservation = _reserve(issue_token, user=user, actor=actor) if issue_token else None
    attempted = {"user": user.prime_id, "label": label, "whitelisted_ips": entries}
    try:
        issued = call_prime(
            lambda client: client.create_api_user_key(user.prime_id),
            actor=actor,
            action=AuditAction.KEY_ISSUED,
            target_type=TargetType.KEY,
            endpoint="CreatePrimeApiUserKey",
            attempted=attempted,
        )
    except PrimeActionFailed as failure:
        if reservation is not None and not failure.outcome_unknown:
            reservation.delete()  # Kraken issued nothing: the same form may be sent again
        raise
    now = timezone.now()
    public = issued.without_secret()
    with transaction.atomic():
        key = ApiKey.objects.create(
            prime_key_id=public.id,
            user=user,
            public_key=public.api_key,
            label=label,
            permissions=list(public.permissions),
            whitelisted_ips=list(public.whitelisted_ips),
            # Until the allow-list call succeeds, the key is usable from anywhere.
            no_allowlist_warning=bool(entries),
            issued_by=actor_staff(actor),
            created_at=now,
            updated_at=public.updated_at,
            last_synced_at=now,
        )
        if reservation is not None:
            reservation.key = key
            reservation.save(update_fields=["key"])
        audit_record(
            actor=actor,
            action=AuditAction.KEY_ISSUED,
            target_type=TargetType.KEY,
            target_id=key.prime_key_id,
            after={**key.snapshot(), "label": label, "requested_whitelisted_ips": entries},
            prime_endpoint="CreatePrimeApiUserKey",
            prime_response=audit_json(public),
        )
    secret = issued.api_secret
    if not entries:
        return IssuedKey(key=key, secret=secret)
    try:
        key = _save_allowlist(key=key, actor=actor, entries=entries)
    except PrimeActionFailed as failure:
        return IssuedKey(
            key=key,
            secret=secret,
            allowlist_error=failure.message,
            allowlist_outcome_unknown=failure.outcome_unknown,
        )
    return IssuedKey(key=key, secret=secret)


def _reserve(token: str, *, user: PrimeUser, actor: Actor) -> KeyIssueRequest:
    """Claim the form's token before calling Kraken; a second claim finds the first."""
    try:
        with transaction.atomic():
            return KeyIssueRequest.objects.create(
                token=token,
                user=user,
                requested_by=actor_staff(actor),
                created_at=timezone.now(),
            )
    except IntegrityError:
        existing = KeyIssueRequest.objects.select_related("key").filter(token=token).first()
        raise KeyAlreadyIssued(existing.key if existing else None) from None


def _save_allowlist(*, key: ApiKey, actor: Actor, entries: list[str]) -> ApiKey:
    before = key.snapshot()
    updated = call_prime(
        lambda client: client.update_api_user_key(key.user.prime_id, key.prime_key_id, entries),
        actor=actor,
        action=AuditAction.KEY_ALLOWLIST_CHANGED,
        target_type=TargetType.KEY,
        target_id=key.prime_key_id,
        endpoint="UpdatePrimeApiUserKey",
        before=before,
        attempted={**before, "whitelisted_ips": entries},
    )
    with transaction.atomic():
        key.whitelisted_ips = list(updated.whitelisted_ips)
        key.permissions = list(updated.permissions)
        key.updated_at = updated.updated_at or key.updated_at
        key.last_synced_at = timezone.now()
        key.no_allowlist_warning = False
        key.save(
            update_fields=[
                "whitelisted_ips",
                "permissions",
                "updated_at",
                "last_synced_at",
                "no_allowlist_warning",
            ]
        )
        audit_record(
            actor=actor,
            action=AuditAction.KEY_ALLOWLIST_CHANGED,
            target_type=TargetType.KEY,
            target_id=key.prime_key_id,
            before=before,
            after=key.snapshot(),
            prime_endpoint="UpdatePrimeApiUserKey",
            prime_response=audit_json(updated),
        )
    return key


def key_update_allowlist(
    *,
    key: ApiKey,
    actor: Actor,
    entries: Sequence[str],
    previewed_against: Sequence[str],
    confirm_anywhere: bool = False,
) -> ApiKey:
    """Replace the key's allow-list with what the person previewed.

    `previewed_against` is the allow-list their preview was made against: if the key's has
    changed since, nothing is sent (AllowlistChangedSincePreview). An empty list makes the
    key usable from anywhere and needs `confirm_anywhere` (else EmptyAllowlistNotConfirmed).
    """
    checked = allowlist_check(
        key=key,
        entries=entries,
        previewed_against=previewed_against,
        confirm_anywhere=confirm_anywhere,
    )
    return _save_allowlist(key=key, actor=actor, entries=checked)


def allowlist_check(
    *,
    key: ApiKey,
    entries: Sequence[str],
    previewed_against: Sequence[str],
    confirm_anywhere: bool = False,
) -> list[str]:
    """The checked entries of an allow-list change, or the refusal (see key_update_allowlist)."""
    checked = _checked_entries(entries)
    if list(previewed_against) != list(key.whitelisted_ips):
        raise AllowlistChangedSincePreview()
    if not checked and not confirm_anywhere:
        raise EmptyAllowlistNotConfirmed()
    return checked


def key_save_allowlist(*, key: ApiKey, actor: Actor, entries: Sequence[str]) -> ApiKey:
    """Send an allow-list that was checked (and approved, if the policy asked) as it is."""
    return _save_allowlist(key=key, actor=actor, entries=list(entries))


def key_revoke(*, key: ApiKey, actor: Actor, reason: str) -> ApiKey:
    """Delete the key at Kraken for good; the user's other keys are untouched."""
    if key.revoked_at is not None:
        return key
    before = key.snapshot()
    call_prime(
        lambda client: client.delete_api_user_key(key.user.prime_id, key.prime_key_id),
        actor=actor,
        action=AuditAction.KEY_REVOKED,
        target_type=TargetType.KEY,
        target_id=key.prime_key_id,
        endpoint="DeletePrimeApiUserKey",
        before=before,
        attempted={"revoked": True, "reason": reason},
    )
    now = timezone.now()
    with transaction.atomic():
        key.revoked_at = now
        key.revoked_by = actor_staff(actor)
        key.revoke_reason = reason
        key.last_synced_at = now
        key.save(update_fields=["revoked_at", "revoked_by", "revoke_reason", "last_synced_at"])
        audit_record(
            actor=actor,
            action=AuditAction.KEY_REVOKED,
            target_type=TargetType.KEY,
            target_id=key.prime_key_id,
            before=before,
            after={**key.snapshot(), "revoked": True, "reason": reason},
            prime_endpoint="DeletePrimeApiUserKey",
            prime_response={"deleted": True},
            message=reason,
        )
    return key


def key_update_label(*, key: ApiKey, actor: Actor, label: str) -> ApiKey:
    """Change the portal-only label of a key (Kraken is not involved); audited when it changes."""
    with transaction.atomic():
        key = ApiKey.objects.select_for_update().select_related("user").get(pk=key.pk)
        before = key.label
        if before == label:
            return key
        key.label = label
        key.save(update_fields=["label"])
        audit_record(
            actor=actor,
            action=AuditAction.KEY_LABEL_CHANGED,
            target_type=TargetType.KEY,
            target_id=key.prime_key_id,
            before={"label": before},
            after={"label": label},
        )
    return key
