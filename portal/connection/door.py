"""The portal's one door to Kraken: every Prime call from a service goes through here.

    view -> service -> door (`call_prime` / `attempt_prime`) -> primeapi.PrimeClient

`attempt_prime(operation)` runs ``operation(client)`` once, with no database
transaction open (a Prime call inside one would hold row locks across a network
round trip), and classifies what happened as a `CallOutcome`:

    DONE          Kraken answered and executed the call
    REFUSED       Kraken answered with an error: nothing was executed
    UNKNOWN       the call may have reached Kraken (timeout, dropped connection)
    UNREACHABLE   nothing reached Kraken (no connection configured, connect failed)

`call_prime(...)` is the usual form for a service: on failure it writes the attempt
to the audit trail (outcome failed, or unknown) with Kraken's answer and raises
`PrimeActionFailed`, whose `message` says in plain words what happened and what the
person can do next. `audit_json()` is the one serializer of Prime results for the
audit trail. The connection itself (credentials, the cached client) lives in
`resolve.py` and `clients.py` beside this module; this module re-exports what the
rest of the portal needs, so an app imports only the door.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from django.core.exceptions import ImproperlyConfigured
from django.db import connection as db_connection

from portal.actors import Actor
from portal.audit.models import AuditAction, Outcome, TargetType
from portal.audit.services import audit_record
from portal.connection import clients
from portal.connection.clients import forget_clients
from portal.connection.resolve import (
    ConnectionSource,
    PrimeConnection,
    PrimeNotConfigured,
    environment_connection,
    resolve_connection,
)
from primeapi import errors as prime_errors
from primeapi.client import PrimeClient

__all__ = [
    "Attempt",
    "CallOutcome",
    "ConnectionSource",
    "PrimeActionFailed",
    "PrimeConnection",
    "PrimeNotConfigured",
    "TransactionOpenError",
    "attempt_prime",
    "audit_json",
    "call_prime",
    "classify",
    "describe_error",
    "environment_connection",
    "error_answer",
    "forget_clients",
    "get_prime_client",
    "resolve_connection",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")


def get_prime_client() -> PrimeClient:
    """The client for the connection in force (raises PrimeNotConfigured if there is none)."""
    return clients.get_prime_client()


class CallOutcome(enum.StrEnum):
    """What became of one Prime call."""

    DONE = "done"
    REFUSED = "refused"
    UNKNOWN = "unknown"
    UNREACHABLE = "unreachable"


class TransactionOpenError(RuntimeError):
    """A Prime call was attempted inside a database transaction (a programming error)."""


class PrimeActionFailed(Exception):
    """A Prime call failed; `message` is for the person, nothing changed locally."""

    def __init__(self, message: str, *, outcome: CallOutcome, error: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.outcome = outcome
        self.error = error

    @property
    def outcome_unknown(self) -> bool:
        return self.outcome is CallOutcome.UNKNOWN


@dataclass(frozen=True)
class Attempt(Generic[T]):
    """One Prime call's classified result: `value` when DONE, else `error` and `message`."""

    outcome: CallOutcome
    value: T | None = None
    error: prime_errors.PrimeError | None = None
    message: str = ""

    @property
    def done(self) -> bool:
        return self.outcome is CallOutcome.DONE

    @property
    def outcome_unknown(self) -> bool:
        return self.outcome is CallOutcome.UNKNOWN

    def result(self) -> T:
        """The value of a DONE call (a programming error to ask any other attempt)."""
        if self.outcome is not CallOutcome.DONE:
            raise RuntimeError(f"a {self.outcome} Prime call has no result")
        return self.value  # type: ignore[return-value]


def classify(exc: prime_errors.PrimeError) -> CallOutcome:
    """Sort a Prime failure into refused / unknown / unreachable."""
    if exc.outcome_unknown:
        return CallOutcome.UNKNOWN
    if isinstance(exc, PrimeNotConfigured | prime_errors.ConnectFailedError):
        return CallOutcome.UNREACHABLE
    if isinstance(exc, prime_errors.TransportError):
        # An answer that was not Kraken's (a proxy's 5xx, a cut-off body): not executed.
        return CallOutcome.UNREACHABLE
    return CallOutcome.REFUSED


def _inside_transaction() -> bool:
    # The test runner's own wrapping transaction does not count (as for atomic(durable=True)).
    return any(not getattr(block, "_from_testcase", False) for block in db_connection.atomic_blocks)


def attempt_prime(
    operation: Callable[[PrimeClient], T],
    *,
    describe: Callable[[prime_errors.PrimeError], str] | None = None,
) -> Attempt[T]:
    """Run ``operation(client)`` once, outside any transaction, and classify the result."""
    if _inside_transaction():
        raise TransactionOpenError(
            "A Prime call must not run inside a database transaction: it would hold locks "
            "across the network round trip. Call Prime first, then store the outcome."
        )
    try:
        try:
            client = get_prime_client()
        except ImproperlyConfigured as exc:
            raise PrimeNotConfigured(str(exc)) from exc
        value = operation(client)
    except prime_errors.PrimeError as exc:
        words = (describe or describe_error)(exc)
        return Attempt(outcome=classify(exc), error=exc, message=words)
    return Attempt(outcome=CallOutcome.DONE, value=value)


def call_prime(
    operation: Callable[[PrimeClient], T],
    *,
    actor: Actor,
    action: AuditAction,
    target_type: TargetType,
    target_id: str = "",
    endpoint: str,
    before: object = None,
    attempted: object = None,
) -> T:
    """Run ``operation(client)``; on failure audit the attempt and raise PrimeActionFailed."""
    attempt = attempt_prime(operation)
    if attempt.done:
        return attempt.result()
    assert attempt.error is not None
    audit_record(
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        outcome=Outcome.UNKNOWN if attempt.outcome_unknown else Outcome.FAILED,
        before=before,
        after=attempted,
        prime_endpoint=endpoint,
        prime_response=error_answer(attempt.error),
        message=attempt.message,
    )
    logger.info("%s %s failed: %s", endpoint, target_id, type(attempt.error).__name__)
    raise PrimeActionFailed(
        attempt.message, outcome=attempt.outcome, error=type(attempt.error).__name__
    ) from attempt.error


def audit_json(value: object) -> object:
    """A Prime result (frozen dataclasses, tuples, datetimes) as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: audit_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [audit_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): audit_json(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def error_answer(exc: BaseException) -> dict[str, object]:
    """What Kraken (or the transport) answered, for the audit event."""
    return {
        "error": type(exc).__name__,
        "errors": list(getattr(exc, "errors", ()) or ()),
        "http_status": getattr(exc, "http_status", None),
        "outcome_unknown": bool(getattr(exc, "outcome_unknown", False)),
    }


def describe_error(exc: Exception) -> str:
    """Say in plain words what went wrong with a Prime call and what the person can do next."""
    if isinstance(exc, PrimeNotConfigured):
        return f"Nothing was sent to Kraken: {exc}"
    if isinstance(exc, prime_errors.OutcomeUnknownError) or getattr(exc, "outcome_unknown", False):
        return (
            "Kraken did not answer in time, so the outcome is unknown. Nothing will be sent "
            "again automatically: resync to see what Kraken recorded before trying again."
        )
    if isinstance(exc, prime_errors.RateLimitedError):
        wait = getattr(exc, "retry_after", None)
        after = f" Try again in about {int(wait) + 1} seconds." if wait else " Try again shortly."
        return "Kraken is rate-limiting the portal's key." + after
    if isinstance(exc, prime_errors.InvalidArgumentsError):
        detail = getattr(exc, "detail", "") or ""
        return (
            f"Kraken refused the request as invalid{': ' + detail if detail else ''}. "
            "Nothing was changed; check the values and try again."
        )
    if isinstance(exc, prime_errors.PermissionDeniedError):
        return (
            "Kraken refused: the portal's Prime key lacks the permission for this. "
            "Nothing was changed; ask an Admin to check the Prime connection."
        )
    if isinstance(exc, prime_errors.InvalidKeyError | prime_errors.InvalidSignatureError):
        return (
            "Kraken did not accept the portal's credentials. Nothing was changed; "
            "ask an Admin to check the Prime connection."
        )
    if isinstance(exc, prime_errors.TemporaryLockoutError):
        return (
            "Kraken has temporarily locked the portal's key after repeated failures. "
            "Wait about 15 minutes, then try again."
        )
    if isinstance(exc, prime_errors.ServiceUnavailableError):
        return "Kraken is unavailable or busy right now. Nothing was changed; try again shortly."
    if isinstance(exc, prime_errors.TransportError):
        return (
            "The portal could not reach Kraken. Nothing was changed; check the status strip "
            "and try again shortly."
        )
    if isinstance(exc, prime_errors.PrimeError):
        shown = ", ".join(getattr(exc, "errors", ()) or ()) or "an unexpected error"
        return f"Kraken answered with {shown}. Nothing was changed."
    return "Something unexpected went wrong talking to Kraken. Nothing was changed."
