"""The kind registry: each app registers, from its own ready(), how to run its kinds of change.

The approvals engine imports no app. An app that puts a change under approval
subclasses `ChangeKindSpec` and calls `register(MyKind())` in its `AppConfig.ready()`;
the engine then asks the spec to execute the stored payload through the door, to
fingerprint the target (a changed target voids the request), to reconcile an
unknown outcome with Kraken, and to describe the change as before/after.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from portal.actors import Actor
from portal.connection.door import Attempt, audit_json

JSONValue = None | bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"]
Payload = dict[str, JSONValue]


class Reconciled(StrEnum):
    """What Kraken says about a change whose outcome was unknown."""

    APPLIED = "applied"  # the change is in force: the request is done
    NOT_APPLIED = "not_applied"  # nothing happened: the stored payload may be sent again
    STILL_UNKNOWN = "still_unknown"  # Kraken could not be asked: try again later


@dataclass(frozen=True)
class Reconciliation:
    answer: Reconciled
    result: JSONValue = None


class ChangeKindSpec:
    """How one kind of change is requested, approved, executed and shown. Subclass per kind."""

    kind: str  # a ChangeKind value (tests register stand-ins of their own)
    target_type: str
    request_permission: str
    approve_permission: str
    # The approver authorises; the requester executes within `execute_within` (a key's
    # secret then appears only in the requester's browser).
    requester_executes: bool = False
    execute_within: timedelta = timedelta(minutes=30)
    prime_endpoint: str = ""
    # For a kind the requester executes: the app's own URL name (taking the request's
    # ``pk``) that carries it out and shows the result once; "" uses approvals:execute.
    execute_url_name: str = ""

    def request_ttl(self) -> timedelta | None:
        """How long a request of this kind waits for approvers (None: the engine's default)."""
        return None

    def waits_for(self, *, payload: Payload, target_id: str) -> str:
        """Why an approved change cannot be sent yet ("" when it can), e.g. a batch Kraken has
        not confirmed. It then stays approved, and `change_execute_ready` sends it later."""
        return ""

    def execute(self, *, payload: Payload, target_id: str, actor: Actor) -> Attempt[object]:
        """Send the payload (through `portal.connection.door.attempt_prime`); no transaction."""
        raise NotImplementedError

    def record(self, *, payload: Payload, target_id: str, value: object, actor: Actor) -> JSONValue:
        """Store a successful execution locally (inside the engine's transaction).

        Returns the result as JSON for the request and its audit event (no secrets).
        """
        return audit_json(value)  # type: ignore[return-value]

    def fingerprint(self, *, target_id: str) -> JSONValue:
        """The target's current state that the request depends on (None: no dependency)."""
        return None

    def reconcile(self, *, payload: Payload, target_id: str) -> Reconciliation:
        """Ask Kraken whether an unknown-outcome execution took effect."""
        return Reconciliation(Reconciled.STILL_UNKNOWN)

    def describe(self, *, payload: Payload, target_id: str, fingerprint: JSONValue) -> tuple:
        """(before, after) for the diff shown to approvers."""
        return fingerprint, payload

    def validate(self, *, payload: Payload, target_id: str) -> None:
        """Raise ValueError (plain words) if the payload cannot be requested."""


class TargetUnavailable(Exception):
    """The target's current state could not be read (Kraken unreachable); str() says so."""


class UnknownKind(LookupError):
    """No app registered this kind of change (yet)."""


_REGISTRY: dict[str, ChangeKindSpec] = {}


def register(spec: ChangeKindSpec) -> ChangeKindSpec:
    """Register (or replace, e.g. in tests) the spec of one kind of change."""
    _REGISTRY[str(spec.kind)] = spec
    return spec


def unregister(kind: str) -> None:
    """Forget a kind (tests that registered a stand-in)."""
    _REGISTRY.pop(str(kind), None)


def spec_for(kind: str) -> ChangeKindSpec:
    """The registered spec (raises UnknownKind)."""
    try:
        return _REGISTRY[str(kind)]
    except KeyError as exc:
        raise UnknownKind(kind) from exc


def registered() -> dict[str, ChangeKindSpec]:
    """Every registered kind, by its value."""
    return dict(_REGISTRY)
