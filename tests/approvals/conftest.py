"""Approvals fixtures: a stand-in kind (rename a Prime user at the sandbox) registered only here."""

from __future__ import annotations

import pytest

from portal.actors import Actor
from portal.approvals.kinds import (
    ChangeKindSpec,
    JSONValue,
    Payload,
    Reconciled,
    Reconciliation,
    TargetUnavailable,
    register,
    unregister,
)
from portal.connection.door import Attempt, attempt_prime, audit_json, get_prime_client
from portal.staff.roles import APPROVE_SETTLEMENT, MANAGE_PRIME_USERS

RENAME = "test_rename"
LATE_RENAME = "test_rename_by_requester"
WAITING_RENAME = "test_rename_when_confirmed"
UPDATE = "UpdatePrimeApiUser"


class RenameKind(ChangeKindSpec):
    """Rename a Prime API user: a real write at the sandbox, logged in its call log."""

    kind = RENAME
    target_type = "prime_user"
    request_permission = MANAGE_PRIME_USERS
    approve_permission = APPROVE_SETTLEMENT
    prime_endpoint = UPDATE

    def validate(self, *, payload: Payload, target_id: str) -> None:
        if not isinstance(payload.get("name"), str) or not payload["name"]:
            raise ValueError("A new name is needed.")

    def execute(self, *, payload: Payload, target_id: str, actor: Actor) -> Attempt[object]:
        name = str(payload["name"])
        return attempt_prime(lambda client: client.update_api_user(target_id, name=name))

    def fingerprint(self, *, target_id: str) -> JSONValue:
        attempt = attempt_prime(lambda client: client.get_api_user(target_id))
        if not attempt.done:
            raise TargetUnavailable(attempt.message)
        user = attempt.result()
        return {"name": user.name, "status": user.status, "roles": list(user.roles)}

    def reconcile(self, *, payload: Payload, target_id: str) -> Reconciliation:
        attempt = attempt_prime(lambda client: client.get_api_user(target_id))
        if not attempt.done:
            return Reconciliation(Reconciled.STILL_UNKNOWN)
        user = attempt.result()
        if user.name == payload["name"]:
            return Reconciliation(Reconciled.APPLIED, audit_json(user))  # type: ignore[arg-type]
        return Reconciliation(Reconciled.NOT_APPLIED)

    def describe(self, *, payload: Payload, target_id: str, fingerprint: JSONValue) -> tuple:
        before = fingerprint if isinstance(fingerprint, dict) else {}
        return before, {**before, "name": payload["name"]}


class LateRenameKind(RenameKind):
    """The same rename, carried out by the requester after approval (as a key issue is)."""

    kind = LATE_RENAME
    requester_executes = True


class WaitingRenameKind(RenameKind):
    """The same rename, held back until something else happens (as a leg waits for its batch)."""

    kind = WAITING_RENAME
    confirmed = False

    def waits_for(self, *, payload: Payload, target_id: str) -> str:
        return "" if WaitingRenameKind.confirmed else "Kraken confirms the batch"


@pytest.fixture
def rename_kind():
    register(RenameKind())
    register(LateRenameKind())
    register(WaitingRenameKind())
    WaitingRenameKind.confirmed = False
    yield RenameKind
    for kind in (RENAME, LATE_RENAME, WAITING_RENAME):
        unregister(kind)


@pytest.fixture
def prime_user(prime_settings):
    """A Prime API user at the sandbox (its id), created before the call log is cleared."""
    user = get_prime_client().create_api_user("Desk 4 bot", "Viewer")
    prime_settings.control.clear_calls()
    return user.id


def executed_writes(sandbox, endpoint: str = UPDATE) -> list[dict]:
    """Calls of `endpoint` the sandbox executed."""
    return sandbox.control.calls(endpoint, executed=True)


def kraken_name(user_id: str) -> str:
    return get_prime_client().get_api_user(user_id).name
