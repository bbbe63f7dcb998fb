"""Remove secrets from anything on its way into the audit trail."""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[redacted]"
_SECRET_KEYS = re.compile(
    r"(secret|password|passwd|signature|api[-_]?sign|token|otp|private|authorization|cookie)",
    re.IGNORECASE,
)


def redact(value: Any) -> Any:
    """Return a copy with every secret-looking field replaced by a marker."""
    if isinstance(value, dict):
        return {
            k: (REDACTED if _SECRET_KEYS.search(str(k)) else redact(v)) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value
