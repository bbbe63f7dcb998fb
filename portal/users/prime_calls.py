"""How the users and keys services call Kraken: one attempt, and a failed one is audited.

`call_prime()` runs one client method. If Kraken refuses, or the call fails, the
attempt is written to the audit trail (outcome failed, or unknown when the write
may have reached Kraken) with Kraken's answer, and `PrimeActionFailed` carries
`describe_error()`'s plain words to the view. Nothing local is changed.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from django.core.exceptions import ImproperlyConfigured

from portal import prime
from portal.audit.models import AuditAction, Outcome, TargetType
from portal.audit.services import audit_record
from primeapi.errors import PrimeError

logger = logging.getLogger(__name__)

T = TypeVar("T")


class PrimeActionFailed(Exception):
    """A Prime call failed; `message` is for the person, nothing changed locally."""

    def __init__(self, message: str, *, outcome_unknown: bool = False, error: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.outcome_unknown = outcome_unknown
        self.error = error


def plain(value: Any) -> Any:
    """A Prime result (frozen dataclasses, tuples, datetimes) as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def error_answer(exc: BaseException) -> dict[str, Any]:
    """What Kraken (or the transport) answered, for the audit event."""
    return {
        "error": type(exc).__name__,
        "errors": list(getattr(exc, "errors", ()) or ()),
        "http_status": getattr(exc, "http_status", None),
        "outcome_unknown": bool(getattr(exc, "outcome_unknown", False)),
    }


def call_prime(
    operation: Callable[[Any], T],
    *,
    actor: Any,
    action: AuditAction,
    target_type: TargetType,
    target_id: str = "",
    endpoint: str,
    before: Any = None,
    attempted: Any = None,
) -> T:
    """Run `operation(client)`; on failure audit the attempt and raise PrimeActionFailed."""
    try:
        return operation(prime.get_prime_client())
    except (PrimeError, ImproperlyConfigured) as exc:
        unknown = bool(getattr(exc, "outcome_unknown", False))
        message = prime.describe_error(exc)
        audit_record(
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=target_id,
            outcome=Outcome.UNKNOWN if unknown else Outcome.FAILED,
            before=before,
            after=attempted,
            prime_endpoint=endpoint,
            prime_response=error_answer(exc),
            message=message,
        )
        logger.info("%s %s failed: %s", endpoint, target_id, type(exc).__name__)
        raise PrimeActionFailed(message, outcome_unknown=unknown, error=type(exc).__name__) from exc
