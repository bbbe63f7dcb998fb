"""Canonical content and hashing of audit events (shared by record, verify and export)."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

GENESIS_HASH = "0" * 64

# The fields whose values the hash covers, in a fixed order.
HASHED_FIELDS = (
    "seq",
    "occurred_at",
    "actor_id",
    "actor_label",
    "action",
    "target_type",
    "target_id",
    "outcome",
    "before",
    "after",
    "prime_endpoint",
    "prime_response",
    "message",
    "client_ip",
    "user_agent",
    "request_id",
    "prev_hash",
)


def to_json_value(value: Any) -> Any:
    """Turn any structure into plain JSON values (Decimals and datetimes become strings)."""
    if value is None:
        return None
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def canonical_bytes(fields: dict[str, Any]) -> bytes:
    """The exact bytes hashed for one event."""
    content = {}
    for name in HASHED_FIELDS:
        value = fields.get(name)
        if isinstance(value, datetime):
            value = value.isoformat(timespec="microseconds")
        content[name] = value
    return json.dumps(
        content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, cls=DjangoJSONEncoder
    ).encode("utf-8")


def event_hash(fields: dict[str, Any]) -> str:
    """SHA-256 over the canonical content, which includes the previous event's hash."""
    return hashlib.sha256(canonical_bytes(fields)).hexdigest()


def fields_of(event) -> dict[str, Any]:
    """The hashed fields of a stored AuditEvent."""
    return {name: getattr(event, name) for name in HASHED_FIELDS}
