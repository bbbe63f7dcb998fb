"""The keys app's kinds of change under the approvals engine, and the services of its buttons.

    key issue          target: the user; the requester executes after approval, so the
                       secret appears once, in the requester's browser only
    allow-list widen   an entry added, or the list emptied ("anywhere")
    allow-list narrow  entries only removed
    role escalate      Viewer -> Trader (the permissions every key of the user carries)
    role demote        Trader -> Viewer
    key revoke

Each executes through this app's service (door, mirror, audit on the target), reads its
target's fingerprint at Kraken, and reconciles an unknown outcome by asking Kraken.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from portal.actors import Actor
from portal.approvals.kinds import (
    ChangeKindSpec,
    JSONValue,
    Payload,
    Reconciled,
    Reconciliation,
    TargetUnavailable,
    register,
)
from portal.approvals.models import OPEN_STATES, ChangeKind, ChangeRequest
from portal.audit.models import TargetType
from portal.connection.door import Attempt, attempt_prime, audit_json
from portal.keys import services
from portal.keys.models import ApiKey
from portal.staff.models import Staff
from portal.staff.roles import APPROVE_SETTLEMENT, MANAGE_KEYS, MANAGE_PRIME_USERS
from portal.users.approvals import (
    Requested,
    attempt_service,
    kraken_user,
    mirror_user,
    refused,
    request_change,
    result_will_be_shown,
    user_fingerprint,
)
from portal.users.models import PrimeRole, PrimeUser
from primeapi import models as prime_models

KEY_ISSUE_WITHIN = timedelta(minutes=30)
KEY_ISSUE_ELSEWHERE = (
    "A key is issued only from its requester's own page, where its secret is shown once; "
    "nothing was sent. Ask again and issue it from the keys page."
)
KEY_WAITS_FOR_ROLE = (
    "the user is a {wanted} (the key was approved for a {wanted} user; the user is {role} now)"
)


def _kraken_keys(prime_id: str) -> tuple[prime_models.ApiKey, ...]:
    attempt = attempt_prime(lambda client: client.list_api_user_keys(prime_id))
    if not attempt.done:
        raise TargetUnavailable(attempt.message)
    return attempt.result()


def _mirror_key(prime_key_id: str) -> ApiKey:
    key = ApiKey.objects.select_related("user").filter(prime_key_id=prime_key_id).first()
    if key is None:
        raise TargetUnavailable("This key is not in the portal; sync first.")
    return key


def _json_list(values: Sequence[str]) -> list[JSONValue]:
    return list(values)


def key_fingerprint(prime_key_id: str) -> JSONValue:
    """What a key change depends on: whether Kraken lists it, its allow-list and permissions."""
    key = _mirror_key(prime_key_id)
    for upstream in _kraken_keys(key.user.prime_id):
        if upstream.id == prime_key_id:
            return {
                "listed": True,
                "whitelisted_ips": _json_list(sorted(upstream.whitelisted_ips)),
                "permissions": _json_list(sorted(upstream.permissions)),
            }
    return {"listed": False}


# --- key issue --------------------------------------------------------------------------------


class KeyIssueKind(ChangeKindSpec):
    kind = ChangeKind.KEY_ISSUE
    target_type = str(TargetType.PRIME_USER)
    request_permission = MANAGE_KEYS
    approve_permission = APPROVE_SETTLEMENT
    requester_executes = True  # the secret appears in the requester's browser only
    execute_within = KEY_ISSUE_WITHIN
    execute_url_name = "keys:issue-approved"
    prime_endpoint = "CreatePrimeApiUserKey"

    def validate(self, *, payload: Payload, target_id: str) -> None:
        entries = payload.get("whitelisted_ips")
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise ValueError("The allow-list is a list of addresses.")
        if not isinstance(payload.get("label", ""), str):
            raise ValueError("The label is text.")
        if payload.get("role") not in PrimeRole.values:
            raise ValueError("The key is issued for a Viewer or a Trader user.")
        mirror_user(target_id)

    def fingerprint(self, *, target_id: str) -> JSONValue:
        # Not the role: a key may be asked for while the user's escalation waits too; the
        # role the key was approved for is in the payload, and `waits_for` holds it until then.
        user = kraken_user(target_id)
        return {"name": user.name, "status": user.status}

    def waits_for(self, *, payload: Payload, target_id: str) -> str:
        role = mirror_user(target_id).role
        if role != payload.get("role"):
            return KEY_WAITS_FOR_ROLE.format(wanted=payload.get("role"), role=role or "no role")
        return ""

    @sensitive_variables()
    def execute(self, *, payload: Payload, target_id: str, actor: Actor) -> Attempt[object]:
        if not result_will_be_shown():
            # Issued anywhere else (a generic "carry out" button), the secret would be lost.
            return refused(KEY_ISSUE_ELSEWHERE)
        user = mirror_user(target_id)
        entries = [str(e) for e in payload.get("whitelisted_ips") or []]  # type: ignore[union-attr]
        return attempt_service(
            lambda: services.key_issue(
                user=user,
                actor=actor,
                label=str(payload.get("label") or ""),
                whitelisted_ips=entries,
            )
        )

    def record(self, *, payload: Payload, target_id: str, value: object, actor: Actor) -> JSONValue:
        # Never the secret: the key's public facts only.
        if isinstance(value, services.IssuedKey):
            return {
                **value.key.snapshot(),  # type: ignore[dict-item]
                "allowlist_error": value.allowlist_error,
            }
        return None

    def reconcile(self, *, payload: Payload, target_id: str) -> Reconciliation:
        # A key Kraken lists that the portal does not know was made by this request, but its
        # secret is lost: the request is done (revoke that key). Sending again would show a
        # secret to whoever reconciles, so a "not applied" never leads to a second issue here.
        try:
            listed = _kraken_keys(target_id)
        except TargetUnavailable:
            return Reconciliation(Reconciled.STILL_UNKNOWN)
        known = set(ApiKey.objects.values_list("prime_key_id", flat=True))
        for upstream in listed:
            if upstream.id not in known:
                return Reconciliation(Reconciled.APPLIED, audit_json(upstream))  # type: ignore[arg-type]
        return Reconciliation(Reconciled.STILL_UNKNOWN)

    def describe(self, *, payload: Payload, target_id: str, fingerprint: JSONValue) -> tuple:
        user = dict(fingerprint) if isinstance(fingerprint, dict) else {}
        return {"user": user, "new key": None}, {
            "user": user,
            "new key": {
                "role": payload.get("role", ""),
                "permissions": list(
                    prime_models.ROLE_PERMISSIONS.get(str(payload.get("role", "")), ())
                ),
                "label": payload.get("label", ""),
                "whitelisted_ips": payload.get("whitelisted_ips") or "anywhere",
            },
        }


# --- allow-lists ------------------------------------------------------------------------------


def allowlist_kind(old: Sequence[str], new: Sequence[str]) -> ChangeKind:
    """Widening: an entry added, or the list emptied (anywhere); narrowing: entries removed,
    or a first list given to a key usable from anywhere."""
    if not new:
        return ChangeKind.ALLOWLIST_WIDEN if old else ChangeKind.ALLOWLIST_NARROW
    if old and set(new) - set(old):
        return ChangeKind.ALLOWLIST_WIDEN
    return ChangeKind.ALLOWLIST_NARROW


class AllowlistKind(ChangeKindSpec):
    target_type = str(TargetType.KEY)
    request_permission = MANAGE_KEYS
    approve_permission = APPROVE_SETTLEMENT
    prime_endpoint = "UpdatePrimeApiUserKey"

    def validate(self, *, payload: Payload, target_id: str) -> None:
        entries = payload.get("whitelisted_ips")
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise ValueError("The allow-list is a list of addresses.")
        key = _mirror_key(target_id)
        if not key.is_active:
            raise ValueError("This key is no longer active.")
        if allowlist_kind(key.whitelisted_ips, [str(e) for e in entries]) != self.kind:
            raise ValueError("This allow-list change is of another kind.")

    def fingerprint(self, *, target_id: str) -> JSONValue:
        return key_fingerprint(target_id)

    def execute(self, *, payload: Payload, target_id: str, actor: Actor) -> Attempt[object]:
        key = _mirror_key(target_id)
        entries = [str(e) for e in payload["whitelisted_ips"]]  # type: ignore[union-attr]
        return attempt_service(
            lambda: services.key_save_allowlist(key=key, actor=actor, entries=entries)
        )

    def record(self, *, payload: Payload, target_id: str, value: object, actor: Actor) -> JSONValue:
        return value.snapshot() if isinstance(value, ApiKey) else None  # type: ignore[return-value]

    def reconcile(self, *, payload: Payload, target_id: str) -> Reconciliation:
        try:
            now = key_fingerprint(target_id)
        except TargetUnavailable:
            return Reconciliation(Reconciled.STILL_UNKNOWN)
        wanted = sorted(str(e) for e in payload["whitelisted_ips"])  # type: ignore[union-attr]
        if isinstance(now, dict) and now.get("whitelisted_ips") == wanted:
            return Reconciliation(Reconciled.APPLIED, now)
        return Reconciliation(Reconciled.NOT_APPLIED)

    def describe(self, *, payload: Payload, target_id: str, fingerprint: JSONValue) -> tuple:
        before = fingerprint.get("whitelisted_ips") if isinstance(fingerprint, dict) else None
        after = payload.get("whitelisted_ips")
        return (
            {"whitelisted_ips": before or "anywhere"},
            {"whitelisted_ips": after or "anywhere"},
        )


class AllowlistWidenKind(AllowlistKind):
    kind = ChangeKind.ALLOWLIST_WIDEN


class AllowlistNarrowKind(AllowlistKind):
    kind = ChangeKind.ALLOWLIST_NARROW


# --- role -----------------------------------------------------------------------------------


class RoleKind(ChangeKindSpec):
    target_type = str(TargetType.PRIME_USER)
    request_permission = MANAGE_PRIME_USERS
    approve_permission = APPROVE_SETTLEMENT
    prime_endpoint = "UpdatePrimeApiUserRoles"
    role: str

    def validate(self, *, payload: Payload, target_id: str) -> None:
        if payload != {"role": self.role}:
            raise ValueError(f"This change sets the role to {self.role}.")
        mirror_user(target_id)

    def fingerprint(self, *, target_id: str) -> JSONValue:
        return user_fingerprint(target_id)

    def execute(self, *, payload: Payload, target_id: str, actor: Actor) -> Attempt[object]:
        user = mirror_user(target_id)
        try:
            services.role_change_check(user=user, role=self.role)
        except services.RoleChangeRefused as exc:
            return refused(exc.message)
        return attempt_service(
            lambda: services.prime_user_change_role(
                user=user, actor=actor, role=self.role, expected_role=user.role
            )
        )

    def record(self, *, payload: Payload, target_id: str, value: object, actor: Actor) -> JSONValue:
        return value.snapshot() if isinstance(value, PrimeUser) else None  # type: ignore[return-value]

    def reconcile(self, *, payload: Payload, target_id: str) -> Reconciliation:
        try:
            upstream = kraken_user(target_id)
        except TargetUnavailable:
            return Reconciliation(Reconciled.STILL_UNKNOWN)
        if (upstream.role or "") != self.role:
            return Reconciliation(Reconciled.NOT_APPLIED)
        services.role_mirror_store(user=mirror_user(target_id), upstream=upstream)
        return Reconciliation(Reconciled.APPLIED, audit_json(upstream))  # type: ignore[arg-type]

    def describe(self, *, payload: Payload, target_id: str, fingerprint: JSONValue) -> tuple:
        before = dict(fingerprint) if isinstance(fingerprint, dict) else {}
        after = {
            **before,
            "role": self.role,
            "key permissions": list(prime_models.ROLE_PERMISSIONS.get(self.role, ())),
        }
        old_role = str(before.get("role") or "")
        before = {
            **before,
            "key permissions": list(prime_models.ROLE_PERMISSIONS.get(old_role, ())),
        }
        return before, after


class RoleEscalateKind(RoleKind):
    kind = ChangeKind.ROLE_ESCALATE
    role = PrimeRole.TRADER


class RoleDemoteKind(RoleKind):
    kind = ChangeKind.ROLE_DEMOTE
    role = PrimeRole.VIEWER


# --- revoke -----------------------------------------------------------------------------------


class KeyRevokeKind(ChangeKindSpec):
    kind = ChangeKind.KEY_REVOKE
    target_type = str(TargetType.KEY)
    request_permission = MANAGE_KEYS
    approve_permission = APPROVE_SETTLEMENT
    prime_endpoint = "DeletePrimeApiUserKey"

    def validate(self, *, payload: Payload, target_id: str) -> None:
        if not isinstance(payload.get("reason"), str):
            raise ValueError("A reason is needed.")
        _mirror_key(target_id)

    def fingerprint(self, *, target_id: str) -> JSONValue:
        return key_fingerprint(target_id)

    def execute(self, *, payload: Payload, target_id: str, actor: Actor) -> Attempt[object]:
        key = _mirror_key(target_id)
        reason = str(payload["reason"])
        return attempt_service(lambda: services.key_revoke(key=key, actor=actor, reason=reason))

    def record(self, *, payload: Payload, target_id: str, value: object, actor: Actor) -> JSONValue:
        return {"revoked": target_id}

    def reconcile(self, *, payload: Payload, target_id: str) -> Reconciliation:
        try:
            now = key_fingerprint(target_id)
        except TargetUnavailable:
            return Reconciliation(Reconciled.STILL_UNKNOWN)
        if isinstance(now, dict) and now.get("listed"):
            return Reconciliation(Reconciled.NOT_APPLIED)
        key = _mirror_key(target_id)
        with transaction.atomic():
            if key.revoked_at is None:
                key.revoked_at = timezone.now()
                key.revoke_reason = str(payload["reason"])
                key.save(update_fields=["revoked_at", "revoke_reason"])
        return Reconciliation(Reconciled.APPLIED, {"revoked": target_id})

    def describe(self, *, payload: Payload, target_id: str, fingerprint: JSONValue) -> tuple:
        return fingerprint, {"listed": False, "reason": payload.get("reason", "")}


def register_kinds() -> None:
    """Called from KeysConfig.ready()."""
    for spec in (
        KeyIssueKind(),
        AllowlistWidenKind(),
        AllowlistNarrowKind(),
        RoleEscalateKind(),
        RoleDemoteKind(),
        KeyRevokeKind(),
    ):
        register(spec)


# --- the buttons' services ------------------------------------------------------------------


def key_role(user: PrimeUser) -> str:
    """The role a new key of the user will carry: Trader if an escalation is open."""
    escalating = ChangeRequest.objects.filter(
        kind=ChangeKind.ROLE_ESCALATE, target_id=user.prime_id, state__in=OPEN_STATES
    ).exists()
    return PrimeRole.TRADER if escalating else user.role


def key_issue_needs_approval(user: PrimeUser) -> bool:
    """Only a key of a Trader user (a credential that trades) goes under the policy, and so
    does one asked for while the user's escalation to Trader is open."""
    return key_role(user) == PrimeRole.TRADER


@sensitive_variables()
def key_request_issue(
    *,
    user: PrimeUser,
    actor: Staff,
    label: str,
    whitelisted_ips: Sequence[str],
    issue_token: str | None = None,
) -> Requested | services.IssuedKey:
    """A Viewer user's key is issued now (as before); a Trader user's key is a change request
    (waiting for an approver, or run at once by the requester if the policy allows)."""
    if not key_issue_needs_approval(user):
        return services.key_issue(
            user=user,
            actor=actor,
            label=label,
            whitelisted_ips=list(whitelisted_ips),
            issue_token=issue_token,
        )
    return request_change(
        kind=ChangeKind.KEY_ISSUE,
        target_id=user.prime_id,
        payload={
            "label": label,
            "whitelisted_ips": _json_list(whitelisted_ips),
            "role": key_role(user),
        },
        actor=actor,
        summary=f"Issue a key for {user.name} (Trader)",
    )


def key_request_allowlist(
    *,
    key: ApiKey,
    actor: Staff,
    entries: Sequence[str],
    previewed_against: Sequence[str],
    confirm_anywhere: bool = False,
) -> Requested:
    """Replace the allow-list with what was previewed: widening waits for an approver."""
    checked = services.allowlist_check(
        key=key,
        entries=entries,
        previewed_against=previewed_against,
        confirm_anywhere=confirm_anywhere,
    )
    kind = allowlist_kind(key.whitelisted_ips, checked)
    words = "widen" if kind == ChangeKind.ALLOWLIST_WIDEN else "narrow"
    return request_change(
        kind=kind,
        target_id=key.prime_key_id,
        payload={"whitelisted_ips": _json_list(checked)},
        actor=actor,
        summary=f"Allow-list of key {key.prime_key_id} ({words})",
    )


def prime_user_request_role(
    *, user: PrimeUser, actor: Staff, role: str, expected_role: str
) -> Requested:
    """A role change previewed against `expected_role`: escalation waits for an approver."""
    if role not in PrimeRole.values:
        raise ValueError(f"role must be one of {', '.join(PrimeRole.values)}")
    services.role_change_check(user=user, role=role, expected_role=expected_role)
    kind = ChangeKind.ROLE_ESCALATE if role == PrimeRole.TRADER else ChangeKind.ROLE_DEMOTE
    return request_change(
        kind=kind,
        target_id=user.prime_id,
        payload={"role": role},
        actor=actor,
        summary=f"{user.name}: {user.role} → {role}",
    )


def key_request_revoke(*, key: ApiKey, actor: Staff, reason: str) -> Requested:
    """Revoke (runs at once by default, reviewed afterwards)."""
    return request_change(
        kind=ChangeKind.KEY_REVOKE,
        target_id=key.prime_key_id,
        payload={"reason": reason},
        actor=actor,
        reason=reason,
        summary=f"Revoke key {key.prime_key_id} of {key.user.name}",
    )
