"""The one way to write to the audit trail."""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from portal.actors import Actor, actor_label, actor_staff
from portal.audit import context
from portal.audit.chain import (
    EPOCH,
    GENESIS_HASH,
    canonical_bytes,
    canonical_text,
    clean_text,
    row_of,
    to_json_value,
)
from portal.audit.models import AuditAction, AuditChainHead, AuditEvent, Outcome, TargetType
from portal.audit.redact import check_secrets, leaks, redact, scrub_text

_MAX = {
    "actor_label": 150,
    "target_id": 128,
    "prime_endpoint": 64,
    "user_agent": 300,
    "request_id": 64,
}


class SecretInAuditEvent(ValueError):
    """A secret value survived redaction; the event is refused rather than stored."""


def _actor_fields(actor: Actor | None) -> tuple[int | None, str]:
    """The staff id (None for a system actor or nobody) and the actor's label."""
    staff = actor_staff(actor)
    return (staff.pk if staff is not None else None), actor_label(actor)


def _client_ip(value: str | None) -> str:
    """A valid address in its normal text form (IPv4-mapped IPv6 as IPv4), else ""."""
    if not value:
        return ""
    try:
        address = ipaddress.ip_address(str(value).strip())
    except ValueError:
        return ""
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)


def _lock_head() -> AuditChainHead:
    """The chain head, locked until the caller's transaction ends (serialises writers)."""
    head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
    if head is not None:
        return head
    # First event ever (or the head row was lost): start from the last stored event.
    last = AuditEvent.objects.order_by("-seq").values_list("seq", "hash", "occurred_at").first()
    seq, last_hash, occurred_at = last or (0, GENESIS_HASH, None)
    head, _ = AuditChainHead.objects.select_for_update().get_or_create(
        pk=1, defaults={"seq": seq, "hash": last_hash, "occurred_at": occurred_at}
    )
    return head


def audit_record(
    *,
    actor: Actor | None,
    action: AuditAction,
    target_type: TargetType,
    target_id: str = "",
    outcome: Outcome = Outcome.SUCCEEDED,
    before: object = None,
    after: object = None,
    prime_endpoint: str = "",
    prime_response: object = None,
    message: str = "",
    ctx: context.RequestContext | None = None,
    secrets: Iterable[str] = (),
) -> AuditEvent:
    """Append one event to the chain, inside the caller's transaction (or its own).

    `actor` is a staff member or a named system actor (None: nobody signed in). `before`,
    `after` and `prime_response` become plain JSON (dataclasses, Decimals and
    datetimes included) and are redacted (see `portal.audit.redact`). Pass the
    secret values you hold in `secrets` (a new key's secret, a password being
    set): they are blanked wherever they occur, and if one still survived the
    event is refused with `SecretInAuditEvent` instead of being stored.

    Call it inside the same `transaction.atomic()` as the change it records: the
    event then commits or rolls back with that change. It locks the chain head
    until that transaction ends, so keep the transaction short (no Prime call in it).
    """
    ctx = ctx or context.current()
    secret_values = check_secrets(secrets)
    actor_id, actor_label = _actor_fields(actor)

    def text(name: str, value: object) -> str:
        cleaned = clean_text(scrub_text("" if value is None else str(value), secret_values))
        limit = _MAX.get(name)
        return cleaned[:limit] if limit else cleaned

    def data(value: object) -> object:
        return None if value is None else redact(to_json_value(value), secret_values)

    fields: dict[str, object] = {
        "actor_id": actor_id,
        "actor_label": text("actor_label", actor_label),
        "action": str(action),
        "target_type": str(target_type),
        "target_id": text("target_id", target_id),
        "outcome": str(outcome),
        "before": data(before),
        "after": data(after),
        "prime_endpoint": text("prime_endpoint", prime_endpoint),
        "prime_response": data(prime_response),
        "message": text("message", message),
        "client_ip": _client_ip(ctx.client_ip),
        "user_agent": text("user_agent", ctx.user_agent),
        "request_id": text("request_id", ctx.request_id),
    }
    with transaction.atomic():
        head = _lock_head()
        # Time never goes backwards along the chain, so a time range is a seq range.
        fields["occurred_at"] = max(timezone.now(), head.occurred_at or EPOCH)
        fields["seq"] = head.seq + 1
        fields["prev_hash"] = head.hash
        canonical = canonical_text(row_of(fields))
        if secret_values and (
            leaks(canonical, secret_values)
            or leaks(canonical, tuple(json.dumps(s)[1:-1] for s in secret_values))
        ):
            raise SecretInAuditEvent("a secret value would have reached the audit trail")
        fields["hash"] = hashlib.sha256(canonical_bytes(canonical)).hexdigest()
        event = AuditEvent.objects.create(**fields)
        head.seq = event.seq
        head.hash = event.hash
        head.occurred_at = event.occurred_at
        head.save(update_fields=["seq", "hash", "occurred_at"])
    return event


def audit_refusal(*, actor: Actor | None, permission: str, path: str) -> AuditEvent:
    """Record an attempt the portal refused for lack of permission."""
    return audit_record(
        actor=actor,
        action=AuditAction.PERMISSION_REFUSED,
        target_type=TargetType.PAGE,
        target_id=path,
        outcome=Outcome.REFUSED,
        message=f"missing permission {permission}",
    )
