"""What every approvals service shares: the error, the answer, the audit event, the payload text."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from portal.actors import Actor
from portal.approvals.kinds import ChangeKindSpec, Payload, UnknownKind, spec_for
from portal.approvals.models import ChangeRequest
from portal.audit.models import AuditAction, AuditEvent, Outcome, TargetType
from portal.audit.services import audit_record


class ApprovalError(Exception):
    """A refused approvals action; `message` is for the person, `forbidden` means a 403."""

    def __init__(self, message: str, *, forbidden: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.forbidden = forbidden


@dataclass(frozen=True)
class ChangeOutcome:
    """What became of an action on a request: the request, a level and words for the person.

    `value` is the executed call's result in memory only (a new key's secret lives here
    for the one response that shows it; it is never stored).
    """

    change: ChangeRequest
    level: str  # "success", "info" or "error" (Django message levels by name)
    message: str
    value: object = None


def canonical_payload(payload: Payload) -> str:
    """The payload as canonical JSON text: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def payload_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def payload_of(change: ChangeRequest) -> Payload:
    value = json.loads(change.payload)
    if not isinstance(value, dict):
        raise ValueError("a stored payload is always an object")
    return value


def spec_of(change: ChangeRequest) -> ChangeKindSpec:
    try:
        return spec_for(change.kind)
    except UnknownKind as exc:
        from portal.approvals import messages

        raise ApprovalError(messages.KIND_UNAVAILABLE) from exc


def audit_change(
    change: ChangeRequest,
    *,
    actor: Actor | None,
    action: AuditAction,
    outcome: Outcome = Outcome.SUCCEEDED,
    before: object = None,
    after: object = None,
    prime_endpoint: str = "",
    prime_response: object = None,
    message: str = "",
) -> AuditEvent:
    """One event on the request's own audit target (the evidence export collects these)."""
    return audit_record(
        actor=actor,
        action=action,
        target_type=TargetType.CHANGE_REQUEST,
        target_id=str(change.pk),
        outcome=outcome,
        before=before,
        after=after,
        prime_endpoint=prime_endpoint,
        prime_response=prime_response,
        message=message,
    )
