"""The portal's one door to Kraken: get_prime_client() and plain-words error messages.

This is the only module that reads the PRIME_* settings.
"""

from __future__ import annotations

from primeapi import errors as prime_errors


def get_prime_client():
    """Build a PrimeClient from the environment or the stored connection settings."""
    raise NotImplementedError  # filled in by the Prime connection work (issue 3)


def describe_error(exc: Exception) -> str:
    """Say in plain words what went wrong with a Prime call and what the person can do next."""
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
