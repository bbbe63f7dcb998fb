"""Every failure the Prime client raises, as one exception tree.

::

    PrimeError                      .errors .http_status .endpoint .outcome_unknown
    ├── PrimeAPIError               Kraken answered with E... strings (not executed)
    │   ├── InvalidKeyError             EAPI:Invalid key
    │   ├── InvalidSignatureError       EAPI:Invalid signature
    │   ├── InvalidNonceError           EAPI:Invalid nonce
    │   ├── PermissionDeniedError       EGeneral:Permission denied
    │   ├── InvalidArgumentsError       EGeneral:Invalid arguments[:detail]     .detail
    │   ├── RateLimitedError            EAPI:Rate limit exceeded,
    │   │                               EService: Throttled: <unix ts>          .retry_after
    │   ├── TemporaryLockoutError       EGeneral:Temporary lockout
    │   ├── ServiceUnavailableError     EService:Unavailable, EService:Busy,
    │   │                               EGeneral:Internal error
    │   └── FeatureDisabledError        EAPI:Feature disabled
    ├── TransportError              no usable Kraken answer
    │   ├── ConnectFailedError          never reached Kraken (refused, DNS, connect timeout)
    │   ├── ResponseTimeoutError        sent, no answer in time (may have executed)
    │   ├── ConnectionDroppedError      reset or aborted mid-request (may have executed)
    │   ├── MalformedResponseError      not JSON, no ``error`` list, or a bad ``result`` shape
    │   └── UnexpectedStatusError       HTTP status other than 200 without a Kraken error body
    └── OutcomeUnknownError         a write that may have reached Kraken failed; never resent

An error string that matches no row of the table still raises ``PrimeAPIError``
itself, carrying the strings. Warnings (``W...``) alone never raise.

``outcome_unknown`` is True when Kraken may have executed the request. Messages
are built only from Kraken's error strings, the endpoint name and the HTTP
status, so no error ever carries the API secret or a signature.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence

__all__ = [
    "ConnectFailedError",
    "ConnectionDroppedError",
    "FeatureDisabledError",
    "InvalidArgumentsError",
    "InvalidKeyError",
    "InvalidNonceError",
    "InvalidSignatureError",
    "MalformedResponseError",
    "OutcomeUnknownError",
    "PermissionDeniedError",
    "PrimeAPIError",
    "PrimeError",
    "RateLimitedError",
    "ResponseTimeoutError",
    "ServiceUnavailableError",
    "TemporaryLockoutError",
    "TransportError",
    "UnexpectedStatusError",
    "error_from_strings",
    "is_warning",
]


class PrimeError(Exception):
    """Base of every error the Prime client raises."""

    #: Default for ``outcome_unknown`` when the raiser does not say.
    default_outcome_unknown = False

    def __init__(
        self,
        message: str,
        *,
        errors: Iterable[str] = (),
        http_status: int | None = None,
        endpoint: str | None = None,
        outcome_unknown: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.errors: tuple[str, ...] = tuple(errors)
        self.http_status = http_status
        self.endpoint = endpoint
        self.outcome_unknown: bool = (
            self.default_outcome_unknown if outcome_unknown is None else outcome_unknown
        )

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[object, ...]:
        # Subclass constructors differ; rebuild from the attributes so errors survive
        # pickling (e.g. between processes) with their cause dropped.
        state = {k: v for k, v in self.__dict__.items() if not k.startswith("__")}
        return (_restore, (type(self), self.args, state))


def _restore(
    cls: type[PrimeError], args: tuple[object, ...], state: dict[str, object]
) -> PrimeError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


# --- Kraken answered with error strings -------------------------------------------------


class PrimeAPIError(PrimeError):
    """Kraken answered with one or more ``E...`` error strings; the request was refused."""

    def __init__(
        self,
        message: str | None = None,
        *,
        errors: Iterable[str] = (),
        http_status: int | None = None,
        endpoint: str | None = None,
        outcome_unknown: bool | None = None,
        detail: str | None = None,
    ) -> None:
        errors = tuple(errors)
        if message is None:
            message = _describe(endpoint, "; ".join(errors) or "error", http_status)
        super().__init__(
            message,
            errors=errors,
            http_status=http_status,
            endpoint=endpoint,
            outcome_unknown=outcome_unknown,
        )
        #: Text after the matched prefix (e.g. ``Unknown user``), if any.
        self.detail = detail


class InvalidKeyError(PrimeAPIError):
    """The API key is missing, unknown, deleted, or belongs to a disabled user."""


class InvalidSignatureError(PrimeAPIError):
    """The API-Sign header did not match (usually a wrong secret)."""


class InvalidNonceError(PrimeAPIError):
    """The nonce was not greater than the last one Kraken accepted for the key."""


class PermissionDeniedError(PrimeAPIError):
    """The key may not call this endpoint, or the caller's address is not allowed."""


class InvalidArgumentsError(PrimeAPIError):
    """Kraken refused the request's fields; ``detail`` holds Kraken's reason when given."""


class RateLimitedError(PrimeAPIError):
    """Too many calls on the key; ``retry_after`` is seconds to wait, or None if unknown."""

    def __init__(
        self,
        message: str | None = None,
        *,
        errors: Iterable[str] = (),
        http_status: int | None = None,
        endpoint: str | None = None,
        outcome_unknown: bool | None = None,
        detail: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message,
            errors=errors,
            http_status=http_status,
            endpoint=endpoint,
            outcome_unknown=outcome_unknown,
            detail=detail,
        )
        self.retry_after = retry_after


class TemporaryLockoutError(PrimeAPIError):
    """The key is locked for a while after repeated authentication failures."""


class ServiceUnavailableError(PrimeAPIError):
    """Kraken is unavailable, busy, or failed internally."""


class FeatureDisabledError(PrimeAPIError):
    """The feature is not enabled for this account."""


# --- No usable Kraken answer ------------------------------------------------------------


class TransportError(PrimeError):
    """The call produced no usable Kraken answer."""


class ConnectFailedError(TransportError):
    """The request never reached Kraken (refused, DNS failure, connect timeout)."""

    default_outcome_unknown = False


class ResponseTimeoutError(TransportError):
    """The request was sent but no answer came in time; Kraken may have executed it."""

    default_outcome_unknown = True


class ConnectionDroppedError(TransportError):
    """The connection was reset or aborted mid-request; Kraken may have executed it."""

    default_outcome_unknown = True


class MalformedResponseError(TransportError):
    """The answer was not JSON, had no ``error`` list, or its ``result`` had a bad shape."""

    default_outcome_unknown = True


class UnexpectedStatusError(TransportError):
    """An HTTP status other than 200 came back without a Kraken error body."""

    default_outcome_unknown = True


class OutcomeUnknownError(PrimeError):
    """A write failed after it may have reached Kraken; check with Kraken before resending."""

    default_outcome_unknown = True

    def __init__(self, cause: PrimeError, *, endpoint: str | None = None) -> None:
        endpoint = endpoint or cause.endpoint
        super().__init__(
            _describe(
                endpoint,
                "the outcome is unknown; check with Kraken before trying again "
                f"({type(cause).__name__}: {cause.message})",
                None,
            ),
            errors=cause.errors,
            http_status=cause.http_status,
            endpoint=endpoint,
            outcome_unknown=True,
        )
        self.__cause__ = cause

    @property
    def cause(self) -> PrimeError | None:
        """The transport or server failure that left the outcome unknown (None once pickled)."""
        return self.__cause__ if isinstance(self.__cause__, PrimeError) else None


# --- Mapping Kraken's strings to classes -------------------------------------------------

#: Prefix (compared after normalising spaces around ``:``, case-insensitively) → class.
ERROR_TABLE: tuple[tuple[str, type[PrimeAPIError]], ...] = (
    ("EAPI:Invalid key", InvalidKeyError),
    ("EAPI:Invalid signature", InvalidSignatureError),
    ("EAPI:Invalid nonce", InvalidNonceError),
    ("EGeneral:Permission denied", PermissionDeniedError),
    ("EGeneral:Invalid arguments", InvalidArgumentsError),
    ("EAPI:Rate limit exceeded", RateLimitedError),
    ("EService:Throttled", RateLimitedError),
    ("EGeneral:Temporary lockout", TemporaryLockoutError),
    ("EService:Unavailable", ServiceUnavailableError),
    ("EService:Busy", ServiceUnavailableError),
    ("EGeneral:Internal error", ServiceUnavailableError),
    ("EAPI:Feature disabled", FeatureDisabledError),
)

_INTERNAL = "egeneral:internal error"


def _pattern(prefix: str) -> re.Pattern[str]:
    # Kraken is not consistent about spaces around ':' ("EService: Throttled: <ts>").
    parts = r"\s*:\s*".join(re.escape(part) for part in prefix.split(":"))
    return re.compile(rf"\s*{parts}\s*(?::\s*(?P<detail>.*))?", re.IGNORECASE | re.DOTALL)


_PATTERNS = tuple((_pattern(prefix), cls) for prefix, cls in ERROR_TABLE)


def is_warning(error: str) -> bool:
    """True for a Kraken warning string (``W...``), which never raises on its own."""
    return error.startswith("W")


def _normalise(error: str) -> str:
    return re.sub(r"\s*:\s*", ":", error.strip())


def _match(error: str) -> tuple[type[PrimeAPIError], str | None] | None:
    for pattern, cls in _PATTERNS:
        found = pattern.fullmatch(error)
        if found is not None:
            detail = found.group("detail")
            return cls, (detail.strip() or None) if detail is not None else None
    return None


def _retry_after(detail: str | None, now: float) -> float | None:
    if detail is None:
        return None
    try:
        until = float(detail)
    except ValueError:
        return None
    return max(0.0, until - now)


def error_from_strings(
    errors: Sequence[str],
    *,
    http_status: int | None = None,
    endpoint: str | None = None,
    now: float | None = None,
) -> PrimeAPIError | None:
    """Build the exception for Kraken's ``error`` list, or None when it holds only warnings."""
    failures = [e for e in errors if not is_warning(e)]
    if not failures:
        return None
    cls: type[PrimeAPIError] = PrimeAPIError
    detail: str | None = None
    for failure in failures:
        found = _match(failure)
        if found is not None:
            cls, detail = found
            break
    # An internal error, or a 5xx without a recognised refusal, may come after Kraken
    # acted; "Unavailable" and "Busy" are refusals.
    outcome_unknown = (
        cls in (ServiceUnavailableError, PrimeAPIError)
        and http_status is not None
        and http_status >= 500
    ) or any(_normalise(f).casefold().startswith(_INTERNAL) for f in failures)
    if cls is RateLimitedError:
        return RateLimitedError(
            errors=errors,
            http_status=http_status,
            endpoint=endpoint,
            outcome_unknown=outcome_unknown,
            detail=detail,
            retry_after=_retry_after(detail, time.time() if now is None else now),
        )
    return cls(
        errors=errors,
        http_status=http_status,
        endpoint=endpoint,
        outcome_unknown=outcome_unknown,
        detail=detail,
    )


def _describe(endpoint: str | None, text: str, http_status: int | None) -> str:
    where = f"{endpoint}: " if endpoint else ""
    status = f" (HTTP {http_status})" if http_status is not None and http_status != 200 else ""
    return f"{where}{text}{status}"
