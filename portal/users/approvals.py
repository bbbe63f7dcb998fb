"""The users app's kinds of change under the approvals engine, and the one path every button takes.

`request_change` asks the engine for a change: if the policy says the kind needs
approval, a change request waits for an approver ("Sent for approval"); otherwise it
executes at once, as before, and is listed for review afterwards. Each kind executes
through this app's service (which sends through the door and mirrors + audits the
answer on the target), fingerprints its target at Kraken (a changed target voids the
request), reconciles an unknown outcome by asking Kraken, and describes before/after.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

from django.db import transaction
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from portal.actors import Actor
from portal.approvals import services as approvals
from portal.approvals.kinds import (
    ChangeKindSpec,
    JSONValue,
    Payload,
    Reconciled,
    Reconciliation,
    TargetUnavailable,
    register,
)
from portal.approvals.models import ChangeKind, ChangeRequest, RequestState
from portal.audit.models import AuditAction, TargetType
from portal.audit.services import audit_record
from portal.connection.door import (
    Attempt,
    CallOutcome,
    PrimeActionFailed,
    attempt_prime,
    audit_json,
)
from portal.staff.models import Staff
from portal.staff.roles import APPROVE_SETTLEMENT, MANAGE_PRIME_USERS
from portal.users import services
from portal.users.models import PrimeUser, PrimeUserStatus
from primeapi import models as prime_models

T = TypeVar("T")

SENT_FOR_APPROVAL = "Sent for approval: request #{pk} waits for an approver."
SENT_FOR_APPROVAL_HTML = (
    'Sent for approval: <a href="{url}">request #{pk}</a> waits for an approver.'
)

CHANGE_NOT_MADE = "The change was not made: {message}"

# The door's failure of the execution running now (the engine keeps only its words):
# the view answers with it exactly as before the engine existed.
_FAILURE: ContextVar[PrimeActionFailed | None] = ContextVar("approvals_failure", default=None)
# Set while the requester's own page carries out a change and will show its result (a new
# key's secret): a kind whose result must be shown refuses to run anywhere else.
_SHOWN_TO_REQUESTER: ContextVar[bool] = ContextVar("approvals_shown", default=False)


def result_will_be_shown() -> bool:
    """Whether the running execution's result reaches the requester's browser."""
    return _SHOWN_TO_REQUESTER.get()


class ChangeRefused(Exception):
    """The engine refused or voided the change; `message` is for the person."""

    def __init__(self, message: str, *, change: ChangeRequest | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.change = change


def attempt_service(run: Callable[[], T]) -> Attempt[T]:
    """Run a service that sends through the door; its PrimeActionFailed becomes an Attempt."""
    try:
        value = run()
    except PrimeActionFailed as failure:
        _FAILURE.set(failure)
        return Attempt(outcome=failure.outcome, message=failure.message)
    return Attempt(outcome=CallOutcome.DONE, value=value)


def refused(message: str) -> Attempt[object]:
    """An execution the portal refused before anything was sent."""
    return Attempt(outcome=CallOutcome.REFUSED, message=message)


@dataclass(frozen=True)
class Requested:
    """What became of a button's change: sent for approval, or done (with the result)."""

    change: ChangeRequest
    value: object = None

    @property
    def sent_for_approval(self) -> bool:
        return self.change.state == RequestState.PENDING

    @property
    def message(self) -> SafeString:
        """ "Sent for approval", linking to the request's page (for django.contrib.messages)."""
        url = reverse("approvals:detail", args=[self.change.pk])
        return format_html(SENT_FOR_APPROVAL_HTML, url=url, pk=self.change.pk)


def settle_outcome(outcome: approvals.ChangeOutcome) -> Requested:
    """Done or pending: the result; a door failure: re-raised as it was; else ChangeRefused."""
    change = outcome.change
    if change.state in (RequestState.DONE, RequestState.PENDING):
        return Requested(change, outcome.value)
    failure = _FAILURE.get()
    if failure is not None:
        raise failure
    raise ChangeRefused(outcome.message, change=change)


def request_change(
    *,
    kind: str,
    target_id: str,
    payload: Payload,
    actor: Staff,
    reason: str = "",
    summary: str = "",
) -> Requested:
    """The one path of every users/keys button: a change request, executed at once if the
    policy does not ask for an approver. Raises PrimeActionFailed as the service did, or
    ChangeRefused (the engine's words: the target is unreadable, changed, not allowed)."""
    token = _FAILURE.set(None)
    shown = _SHOWN_TO_REQUESTER.set(True)
    try:
        try:
            outcome = approvals.change_request_create(
                kind=kind,
                target_id=target_id,
                payload=payload,
                actor=actor,
                reason=reason,
                summary=summary,
            )
        except approvals.ApprovalError as exc:
            raise ChangeRefused(exc.message) from exc
        change = outcome.change
        if change.state == RequestState.APPROVED and change.requester_executes:
            outcome = approvals.change_execute(change_id=change.pk, actor=actor)
        return settle_outcome(outcome)
    finally:
        _SHOWN_TO_REQUESTER.reset(shown)
        _FAILURE.reset(token)


def execute_approved(*, change_id: int, actor: Staff) -> Requested:
    """The requester carries out an approved change of a kind the requester executes."""
    token = _FAILURE.set(None)
    shown = _SHOWN_TO_REQUESTER.set(True)
    try:
        try:
            outcome = approvals.change_execute(change_id=change_id, actor=actor)
        except approvals.ApprovalError as exc:
            raise ChangeRefused(exc.message) from exc
        if outcome.change.state != RequestState.DONE and outcome.level != "error":
            raise ChangeRefused(outcome.message, change=outcome.change)
        return settle_outcome(outcome)
    finally:
        _SHOWN_TO_REQUESTER.reset(shown)
        _FAILURE.reset(token)


# --- reading the target at Kraken ---------------------------------------------------------


def kraken_user(prime_id: str) -> prime_models.ApiUser:
    """The user as Kraken holds it now (TargetUnavailable if Kraken cannot be asked)."""
    attempt = attempt_prime(lambda client: client.get_api_user(prime_id))
    if not attempt.done:
        raise TargetUnavailable(attempt.message)
    return attempt.result()


def user_fingerprint(prime_id: str) -> JSONValue:
    """What a user change depends on: the user's name, role and status at Kraken."""
    user = kraken_user(prime_id)
    return {"name": user.name, "role": user.role or "", "status": user.status}


def mirror_user(prime_id: str) -> PrimeUser:
    user = PrimeUser.objects.filter(prime_id=prime_id).first()
    if user is None:
        raise TargetUnavailable("This Prime user is not in the portal; sync first.")
    return user


class UserKind(ChangeKindSpec):
    """A change to one Prime API user (target: its Prime id)."""

    target_type = str(TargetType.PRIME_USER)
    request_permission = MANAGE_PRIME_USERS
    approve_permission = APPROVE_SETTLEMENT
    prime_endpoint = "UpdatePrimeApiUser"

    def fingerprint(self, *, target_id: str) -> JSONValue:
        return user_fingerprint(target_id)

    def describe(self, *, payload: Payload, target_id: str, fingerprint: JSONValue) -> tuple:
        before = dict(fingerprint) if isinstance(fingerprint, dict) else {}
        return before, {**before, **payload}


class UserStatusKind(UserKind):
    """Enable or disable a user (a disabled user's keys stop working at once)."""

    status: str

    def validate(self, *, payload: Payload, target_id: str) -> None:
        if payload != {"status": self.status}:
            raise ValueError(f"This change sets the status to {self.status}.")
        mirror_user(target_id)

    def execute(self, *, payload: Payload, target_id: str, actor: Actor) -> Attempt[object]:
        user = mirror_user(target_id)
        return attempt_service(
            lambda: services.prime_user_set_status(user=user, actor=actor, status=self.status)
        )

    def record(self, *, payload: Payload, target_id: str, value: object, actor: Actor) -> JSONValue:
        return value.snapshot() if isinstance(value, PrimeUser) else None  # type: ignore[return-value]

    def reconcile(self, *, payload: Payload, target_id: str) -> Reconciliation:
        try:
            upstream = kraken_user(target_id)
        except TargetUnavailable:
            return Reconciliation(Reconciled.STILL_UNKNOWN)
        if upstream.status != self.status:
            return Reconciliation(Reconciled.NOT_APPLIED)
        user = mirror_user(target_id)
        before = user.snapshot()
        with transaction.atomic():
            services.prime_user_store(user=user, upstream=upstream)
            audit_record(
                actor=None,
                action=AuditAction.PRIME_USER_ENABLED
                if self.status == PrimeUserStatus.ENABLED
                else AuditAction.PRIME_USER_DISABLED,
                target_type=TargetType.PRIME_USER,
                target_id=target_id,
                before=before,
                after=user.snapshot(),
                prime_response=audit_json(upstream),
                message="Kraken shows the change in force (reconciled)",
            )
        return Reconciliation(Reconciled.APPLIED, user.snapshot())  # type: ignore[arg-type]


class UserEnableKind(UserStatusKind):
    kind = ChangeKind.USER_ENABLE
    status = PrimeUserStatus.ENABLED


class UserDisableKind(UserStatusKind):
    kind = ChangeKind.USER_DISABLE
    status = PrimeUserStatus.DISABLED


NEW_USER = "new"


class UserCreateKind(UserKind):
    """Create a Prime API user; the target is "new" (nothing to fingerprint)."""

    kind = ChangeKind.USER_CREATE
    prime_endpoint = "CreatePrimeApiUser"

    def validate(self, *, payload: Payload, target_id: str) -> None:
        if not isinstance(payload.get("name"), str) or not payload["name"]:
            raise ValueError("A name is needed.")
        if payload.get("role") not in ("Viewer", "Trader"):
            raise ValueError("The role is Viewer or Trader.")

    def fingerprint(self, *, target_id: str) -> JSONValue:
        return None

    def execute(self, *, payload: Payload, target_id: str, actor: Actor) -> Attempt[object]:
        return attempt_service(
            lambda: services.prime_user_create(
                actor=actor,
                name=str(payload["name"]),
                role=str(payload["role"]),
                owner_label=str(payload.get("owner_label") or ""),
                desk_label=str(payload.get("desk_label") or ""),
                notes=str(payload.get("notes") or ""),
            )
        )

    def record(self, *, payload: Payload, target_id: str, value: object, actor: Actor) -> JSONValue:
        return value.snapshot() if isinstance(value, PrimeUser) else None  # type: ignore[return-value]

    def reconcile(self, *, payload: Payload, target_id: str) -> Reconciliation:
        # A user of that name Kraken lists and the portal does not know: made by this request.
        attempt = attempt_prime(lambda client: client.list_api_users())
        if not attempt.done:
            return Reconciliation(Reconciled.STILL_UNKNOWN)
        known = set(PrimeUser.objects.values_list("prime_id", flat=True))
        for upstream in attempt.result():
            if upstream.name == payload["name"] and upstream.id not in known:
                return Reconciliation(Reconciled.APPLIED, audit_json(upstream))  # type: ignore[arg-type]
        return Reconciliation(Reconciled.NOT_APPLIED)

    def describe(self, *, payload: Payload, target_id: str, fingerprint: JSONValue) -> tuple:
        return None, dict(payload)


def register_kinds() -> None:
    """Called from UsersConfig.ready()."""
    for spec in (UserEnableKind(), UserDisableKind(), UserCreateKind()):
        register(spec)


# --- the buttons' services ------------------------------------------------------------------


def prime_user_request_status(
    *, user: PrimeUser, actor: Staff, status: str, reason: str = ""
) -> Requested:
    """Enable or disable: under the policy it waits for an approver, else it is done now."""
    if status not in PrimeUserStatus.values:
        raise ValueError(f"status must be one of {', '.join(PrimeUserStatus.values)}")
    kind = ChangeKind.USER_ENABLE if status == PrimeUserStatus.ENABLED else ChangeKind.USER_DISABLE
    verb = "Enable" if status == PrimeUserStatus.ENABLED else "Disable"
    return request_change(
        kind=kind,
        target_id=user.prime_id,
        payload={"status": status},
        actor=actor,
        reason=reason,
        summary=f"{verb} {user.name}",
    )


def prime_user_request_create(
    *,
    actor: Staff,
    name: str,
    role: str,
    owner_label: str = "",
    desk_label: str = "",
    notes: str = "",
) -> Requested:
    """Create a Prime API user (runs at once by default and is reviewed afterwards)."""
    payload: Payload = {
        "name": name,
        "role": role,
        "owner_label": owner_label,
        "desk_label": desk_label,
        "notes": notes,
    }
    return request_change(
        kind=ChangeKind.USER_CREATE,
        target_id=NEW_USER,
        payload=payload,
        actor=actor,
        summary=f"Create {name} ({role})",
    )
