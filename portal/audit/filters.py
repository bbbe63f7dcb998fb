"""What the audit page, the export and its verification filter on: one small value object."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from portal.audit.chain import iso_utc, parse_iso_utc

FILTER_KEYS = ("actor", "action", "target_type", "target_id", "outcome", "since", "until", "q")


@dataclass(frozen=True)
class AuditFilter:
    """Every field optional; empty means "any". `since` inclusive, `until` exclusive."""

    actor: str = ""
    action: str = ""
    target_type: str = ""
    target_id: str = ""
    outcome: str = ""
    since: datetime | None = None
    until: datetime | None = None
    q: str = ""

    def is_empty(self) -> bool:
        return not any(getattr(self, f.name) for f in fields(self))

    def as_params(self) -> dict[str, str]:
        """The non-empty filters as strings (query string, export proof); times in UTC ISO."""
        params: dict[str, str] = {}
        for name in FILTER_KEYS:
            value = getattr(self, name)
            if not value:
                continue
            params[name] = iso_utc(value) if isinstance(value, datetime) else str(value)
        return params

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> AuditFilter:
        """Inverse of `as_params` (unknown keys are ignored)."""
        values: dict[str, Any] = {}
        for name in FILTER_KEYS:
            value = params.get(name)
            if not value:
                continue
            values[name] = parse_iso_utc(value) if name in ("since", "until") else str(value)
        return cls(**values)
