"""Canonical content and hashing of audit events (shared by record, verify, seed and export).

An event's hash is SHA-256 over its canonical content, which includes the hash of
the event before it (`prev_hash`), so changing, removing, inserting or reordering
any event breaks the chain from that point on.

Canonical content, version "audit-v1": the 17 field values below, each written
with Python's `"%s" % value` (integers in decimal, a missing value as `None`),
joined by NUL characters after the version tag, encoded as UTF-8::

    audit-v1 NUL seq NUL occurred_us NUL actor_id NUL actor_label NUL action
    NUL target_type NUL target_id NUL outcome NUL prime_endpoint NUL message
    NUL client_ip NUL user_agent NUL request_id NUL prev_hash
    NUL before NUL after NUL prime_response

`occurred_us` is the event time in integer microseconds since the Unix epoch
(UTC). `before`, `after` and `prime_response` are the stored canonical JSON
texts (sorted keys, compact separators). No stored value can contain NUL
(`clean_text` replaces it when recording, PostgreSQL refuses it in text, and
JSON escapes it), so the fields cannot shift into one another; verification
also checks that each canonical text has exactly `FIELD_COUNT` separators.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from portal.audit.models import AuditEvent

CANONICAL_VERSION = "audit-v1"
GENESIS_HASH = "0" * 64

# The scalar fields, in canonical order, then the JSON fields.
SCALAR_FIELDS = (
    "seq",
    "occurred_at",
    "actor_id",
    "actor_label",
    "action",
    "target_type",
    "target_id",
    "outcome",
    "prime_endpoint",
    "message",
    "client_ip",
    "user_agent",
    "request_id",
    "prev_hash",
)
JSON_FIELDS = ("before", "after", "prime_response")
# A "row": the scalars (occurred_at as microseconds), the JSON texts (or None), the hash.
ROW_FIELDS = (*SCALAR_FIELDS, *JSON_FIELDS, "hash")
HASH_INDEX = len(ROW_FIELDS) - 1

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)

_dump_json = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
).encode


def micros(value: datetime) -> int:
    """Integer microseconds since the epoch of an aware datetime (exact, no float)."""
    if value.tzinfo is None:
        raise ValueError("audit times must be aware datetimes")
    return (value - EPOCH) // _ONE_MICROSECOND


def from_micros(value: int) -> datetime:
    """The aware UTC datetime for integer microseconds since the epoch."""
    return EPOCH + timedelta(microseconds=value)


def iso_utc(value: datetime) -> str:
    """`2026-01-02T03:04:05.000006Z`: the exact, fixed-width form used in exports."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso_utc(text: str) -> datetime:
    """Inverse of `iso_utc` (also accepts any ISO form with an offset)."""
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"time without a zone: {text!r}")
    return value


def clean_text(value: str) -> str:
    """Text that every database stores unchanged: no NUL, no lone surrogates."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def to_json_value(value: Any) -> Any:
    """Any structure as plain JSON values: dicts with string keys, lists, str, int, float, bool.

    Decimals, datetimes, UUIDs and enums become strings; dataclasses become dicts;
    non-finite floats become strings; bytes are never copied (only their length).
    """
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, enum.Enum):
        return to_json_value(value.value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"[{len(value)} bytes]"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_json_value(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.repr  # a field hidden from repr (a secret) stays out of the trail too
        }
    if isinstance(value, Mapping):
        return {clean_text(str(k)): to_json_value(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        items = [to_json_value(v) for v in value]
        return sorted(items, key=_dump_json)
    if isinstance(value, Sequence):
        return [to_json_value(v) for v in value]
    if isinstance(value, BaseException):
        return {"error": type(value).__name__, "message": clean_text(str(value))}
    return clean_text(str(value))


def json_text(value: Any) -> str:
    """Canonical JSON text of a value: sorted keys, compact, UTF-8 characters kept."""
    return _dump_json(to_json_value(value))


FIELD_COUNT = 17
SEPARATOR = "\x00"
CANONICAL_FORMAT = CANONICAL_VERSION + (SEPARATOR + "%s") * FIELD_COUNT


def canonical_text(row: Sequence[Any]) -> str:
    """The canonical content of a row (see the module docstring); row[:17] is used."""
    return CANONICAL_FORMAT % tuple(row[:FIELD_COUNT])


def canonical_bytes(text: str) -> bytes:
    """The bytes hashed for a canonical text (lone surrogates pass through, never fail)."""
    return text.encode("utf-8", "surrogatepass")


def well_formed(text: str) -> bool:
    """True unless a field smuggled in a separator (which would make the content ambiguous)."""
    return text.count(SEPARATOR) == FIELD_COUNT


def row_hash(row: Sequence[Any]) -> str:
    """SHA-256 (hex) of a row's canonical content."""
    return hashlib.sha256(canonical_bytes(canonical_text(row))).hexdigest()


def row_of(fields: Mapping[str, Any]) -> tuple[Any, ...]:
    """A row from field values as they are on a model instance (JSON fields as Python values)."""
    scalars = [fields[name] for name in SCALAR_FIELDS]
    scalars[1] = micros(scalars[1])
    texts = [None if fields[name] is None else json_text(fields[name]) for name in JSON_FIELDS]
    return (*scalars, *texts, fields.get("hash"))


def event_hash(fields: Mapping[str, Any]) -> str:
    """The hash an event with these field values must carry."""
    return row_hash(row_of(fields))


def fields_of(event: AuditEvent) -> dict[str, Any]:
    """The hashed field values of a stored AuditEvent."""
    return {name: getattr(event, name) for name in (*SCALAR_FIELDS, *JSON_FIELDS, "hash")}
