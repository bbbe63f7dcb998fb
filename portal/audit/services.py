"""The one way to write to the audit trail."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from portal.audit import context
from portal.audit.chain import GENESIS_HASH, event_hash, to_json_value
from portal.audit.models import AuditAction, AuditChainHead, AuditEvent, Outcome, TargetType
from portal.audit.redact import redact


def _actor_fields(actor: Any) -> tuple[int | None, str]:
    """A staff member, or a system process named by a string such as 'prime_poll'."""
    if actor is None:
        return None, "anonymous"
    if isinstance(actor, str):
        return None, f"system:{actor}"
    if getattr(actor, "is_authenticated", False):
        return actor.pk, actor.get_username()
    return None, "anonymous"


def audit_record(
    *,
    actor: Any,
    action: AuditAction,
    target_type: TargetType,
    target_id: str = "",
    outcome: Outcome = Outcome.SUCCEEDED,
    before: Any = None,
    after: Any = None,
    prime_endpoint: str = "",
    prime_response: Any = None,
    message: str = "",
    ctx: context.RequestContext | None = None,
) -> AuditEvent:
    """Append one event to the chain, inside the caller's transaction (or its own).

    `actor` is a Staff member, or a string naming a system process. `before`,
    `after` and `prime_response` are redacted and turned into plain JSON.
    """
    ctx = ctx or context.current()
    actor_id, actor_label = _actor_fields(actor)
    with transaction.atomic():
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(
            pk=1, defaults={"seq": 0, "hash": GENESIS_HASH}
        )
        fields = {
            "seq": head.seq + 1,
            "occurred_at": timezone.now(),
            "actor_id": actor_id,
            "actor_label": actor_label,
            "action": str(action),
            "target_type": str(target_type),
            "target_id": str(target_id)[:128],
            "outcome": str(outcome),
            "before": to_json_value(redact(before)),
            "after": to_json_value(redact(after)),
            "prime_endpoint": prime_endpoint,
            "prime_response": to_json_value(redact(prime_response)),
            "message": message,
            "client_ip": ctx.client_ip,
            "user_agent": ctx.user_agent,
            "request_id": ctx.request_id,
            "prev_hash": head.hash,
        }
        fields["hash"] = event_hash(fields)
        event = AuditEvent.objects.create(**fields)
        head.seq = event.seq
        head.hash = event.hash
        head.save(update_fields=["seq", "hash"])
    return event


def audit_refusal(*, actor: Any, permission: str, path: str) -> AuditEvent:
    """Record an attempt the portal refused for lack of permission."""
    return audit_record(
        actor=actor,
        action=AuditAction.PERMISSION_REFUSED,
        target_type=TargetType.PAGE,
        target_id=path,
        outcome=Outcome.REFUSED,
        message=f"missing permission {permission}",
    )
