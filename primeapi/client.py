"""PrimeClient: one typed method per Prime REST endpoint.

Every attempt takes a fresh nonce, builds the compact JSON body once, signs
those bytes and sends the same bytes.

Nonces: within one process, attempts on one API key pass through a per-key gate
held from taking the nonce until the answer arrives, and never carry a nonce
below one the process already sent on that key, so threads and clients sharing a
key (even with separate nonce sources) never overtake each other. The cost is
that calls on one key are sent one at a time per process. Across processes a
request can still overtake another; Kraken refuses it with ``EAPI:Invalid
nonce`` (not executed) and it is resent with a fresh nonce and signature.

Retries: reads (Get*/List*) are retried on connection failures, timeouts and
5xx / service-unavailable answers with capped exponential backoff and jitter.
Writes are resent only when the request certainly never reached Kraken
(connect failed) or Kraken refused its nonce; anything else that may have
reached Kraken raises ``OutcomeUnknownError`` and is never sent twice. A
``session`` passed in must not carry adapters that retry POSTs on their own.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, ReadTimeoutError

from primeapi.errors import (
    ConnectFailedError,
    ConnectionDroppedError,
    InvalidNonceError,
    MalformedResponseError,
    OutcomeUnknownError,
    PrimeError,
    ResponseTimeoutError,
    ServiceUnavailableError,
    TransportError,
    UnexpectedStatusError,
    error_from_strings,
)
from primeapi.models import (
    ASSET_KINDS,
    BATCH_STATUSES,
    ROLES,
    USER_STATUSES,
    ApiKey,
    ApiUser,
    BatchPage,
    IssuedApiKey,
    SettlementBatch,
    SettleResult,
    api_keys_from_api,
    api_users_from_api,
)
from primeapi.nonce import MonotonicNonce, NonceSource
from primeapi.signing import Signer, decode_secret

__all__ = ["DEFAULT_USER_AGENT", "READ_ENDPOINTS", "WRITE_ENDPOINTS", "Observer", "PrimeClient"]

logger = logging.getLogger("primeapi")

T = TypeVar("T")

#: ``observer(endpoint, ok, duration_s, error)``, called after every call.
Observer = Callable[[str, bool, float, PrimeError | None], None]

DEFAULT_USER_AGENT = "prime-ops-portal-primeapi/0.1"
API_PREFIX = "/0/private/"

READ_ENDPOINTS = frozenset(
    {
        "GetPrimeApiUser",
        "ListPrimeApiUsers",
        "ListPrimeApiUserKeys",
        "GetPrimeSettlementBatch",
        "ListPrimeSettlementBatches",
    }
)
WRITE_ENDPOINTS = frozenset(
    {
        "CreatePrimeApiUser",
        "UpdatePrimeApiUser",
        "UpdatePrimeApiUserRoles",
        "CreatePrimeApiUserKey",
        "UpdatePrimeApiUserKey",
        "DeletePrimeApiUserKey",
        "CreatePrimeSettlementBatch",
        "SettlePrimeSettlementBatchAsset",
    }
)

_BUILD_ERRORS = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidHeader,
    requests.exceptions.URLRequired,
)


class _KeyGate:
    """Orders one process's requests on one API key: a lock and the last nonce sent."""

    __slots__ = ("last_sent", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last_sent = 0


class _KeyGates:
    """One gate per API key for the whole process, so nonces reach Kraken in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._gates: dict[str, _KeyGate] = {}

    def gate(self, api_key: str) -> _KeyGate:
        # Fast path without the lock (a dict read is atomic); create under the lock.
        found = self._gates.get(api_key)
        if found is not None:
            return found
        with self._lock:
            return self._gates.setdefault(api_key, _KeyGate())

    def reset(self) -> None:
        # A forked child may inherit a lock held by a thread that does not exist there.
        self._lock = threading.Lock()
        self._gates = {}


_GATES = _KeyGates()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_GATES.reset)


def mask_key(api_key: str) -> str:
    """Show enough of a public API key to recognise it, never the whole key."""
    if len(api_key) < 12:
        return "***"
    return f"{api_key[:4]}…{api_key[-4:]}"


class _CallState:
    __slots__ = ("attempts", "warnings")

    def __init__(self) -> None:
        self.attempts = 0
        self.warnings: tuple[str, ...] = ()


class PrimeClient:
    """Typed client for Kraken's Prime REST API (and the local sandbox)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        api_secret: str,
        *,
        session: requests.Session | None = None,
        timeout: float | tuple[float, float] = (3.05, 10),
        nonce: NonceSource | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
        observer: Observer | None = None,
        max_attempts: int = 4,
        max_nonce_retries: int = 5,
        backoff_base: float = 0.25,
        backoff_cap: float = 4.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        serialize_per_key: bool = True,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("base_url must be an http(s) URL such as https://api.kraken.com")
        if not api_key or not api_key.strip():
            raise ValueError("api_key is empty")
        decode_secret(api_secret)  # fail now, with a message that never shows the secret
        if max_attempts < 1 or max_nonce_retries < 0:
            raise ValueError("max_attempts must be >= 1 and max_nonce_retries >= 0")
        self._base_url = base_url.rstrip("/")
        self._path_prefix = parts.path.rstrip("/")
        self._api_key = api_key.strip()
        self._signer = Signer(api_secret.strip())
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()
        self._timeout = timeout
        self._nonce: NonceSource = nonce if nonce is not None else MonotonicNonce()
        self._user_agent = user_agent
        self._observer = observer
        self._max_attempts = max_attempts
        self._max_nonce_retries = max_nonce_retries
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._serialize = serialize_per_key

    # --- plumbing -----------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"PrimeClient(base_url={self._base_url!r}, api_key={mask_key(self._api_key)!r})"

    @property
    def base_url(self) -> str:
        """The server this client talks to."""
        return self._base_url

    @property
    def api_key_hint(self) -> str:
        """The public key, masked for display."""
        return mask_key(self._api_key)

    def close(self) -> None:
        """Close the HTTP session if this client created it."""
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> PrimeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, endpoint: str, params: Mapping[str, Any], parse: Callable[[Any], T]) -> T:
        write = endpoint in WRITE_ENDPOINTS
        state = _CallState()
        started = time.monotonic()
        error: PrimeError | None = None
        ok = False
        try:
            value = self._run(endpoint, params, parse, write, state)
            ok = True
            return value
        except PrimeError as exc:
            error = exc
            raise
        finally:
            self._report(endpoint, ok, time.monotonic() - started, error, state)

    def _run(
        self,
        endpoint: str,
        params: Mapping[str, Any],
        parse: Callable[[Any], T],
        write: bool,
        state: _CallState,
    ) -> T:
        transient_retries = 0
        nonce_retries = 0
        while True:
            state.attempts += 1
            try:
                result, state.warnings = self._attempt(endpoint, params)
                return _parse(endpoint, parse, result)
            except InvalidNonceError:
                # Refused before execution: safe to resend, writes included.
                if nonce_retries >= self._max_nonce_retries:
                    raise
                nonce_retries += 1
                self._sleep(self._rng.uniform(0.001, 0.005) * nonce_retries)
            except PrimeError as exc:
                if _retryable(exc, write) and transient_retries + 1 < self._max_attempts:
                    transient_retries += 1
                    self._sleep(self._backoff(transient_retries))
                    continue
                if write and exc.outcome_unknown:
                    raise OutcomeUnknownError(exc, endpoint=endpoint) from exc
                raise

    def _backoff(self, retry: int) -> float:
        ceiling = min(self._backoff_cap, self._backoff_base * 2 ** (retry - 1))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def _attempt(self, endpoint: str, params: Mapping[str, Any]) -> tuple[Any, tuple[str, ...]]:
        url_path = f"{self._path_prefix}{API_PREFIX}{endpoint}"
        gate = _GATES.gate(self._api_key) if self._serialize else None
        with gate.lock if gate is not None else nullcontext():
            nonce = self._nonce.next_nonce(self._api_key)
            if gate is not None:
                # Another client in this process may use its own source on the same key;
                # never send a nonce below one this process already sent.
                nonce = max(nonce, gate.last_sent + 1)
                gate.last_sent = nonce
            body = encode_body(nonce, params)
            headers = {
                "API-Key": self._api_key,
                "API-Sign": self._signer.sign(url_path=url_path, nonce=nonce, body=body),
                "Content-Type": "application/json",
                "User-Agent": self._user_agent,
            }
            try:
                response = self._session.post(
                    f"{self._base_url}{API_PREFIX}{endpoint}",
                    data=body,
                    headers=headers,
                    timeout=self._timeout,
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                # The request object holds the signed headers; drop it before chaining.
                exc.request = None
                exc.response = None
                raise transport_error(exc, endpoint) from exc
        return read_envelope(response, endpoint)

    def _report(
        self,
        endpoint: str,
        ok: bool,
        duration_s: float,
        error: PrimeError | None,
        state: _CallState,
    ) -> None:
        extra = {
            "prime_endpoint": endpoint,
            "prime_ok": ok,
            "prime_attempts": state.attempts,
            "prime_duration_ms": round(duration_s * 1000, 1),
        }
        if ok:
            logger.info(
                "prime %s ok attempts=%d duration_ms=%.1f%s",
                endpoint,
                state.attempts,
                duration_s * 1000,
                f" warnings={list(state.warnings)}" if state.warnings else "",
                extra=extra,
            )
        else:
            logger.warning(
                "prime %s failed attempts=%d duration_ms=%.1f error=%s errors=%s "
                "outcome_unknown=%s",
                endpoint,
                state.attempts,
                duration_s * 1000,
                type(error).__name__ if error is not None else "unexpected",
                list(error.errors) if error is not None else [],
                error.outcome_unknown if error is not None else None,
                extra=extra,
            )
        if self._observer is not None:
            try:
                self._observer(endpoint, ok, duration_s, error)
            except Exception:
                logger.exception("prime observer failed for %s", endpoint)

    # --- API users ----------------------------------------------------------------------

    def create_api_user(self, name: str, role: str) -> ApiUser:
        """Create a Prime API user with a role (``Viewer`` or ``Trader``)."""
        params = {"name": name, "role": _choice("role", role, ROLES)}
        return self._call("CreatePrimeApiUser", params, ApiUser.from_api)

    def get_api_user(self, user_id: str) -> ApiUser:
        """Fetch one Prime API user."""
        return self._call("GetPrimeApiUser", {"user_id": user_id}, ApiUser.from_api)

    def list_api_users(self) -> tuple[ApiUser, ...]:
        """List every Prime API user of the account."""
        return self._call("ListPrimeApiUsers", {}, api_users_from_api)

    def update_api_user(
        self, user_id: str, *, name: str | None = None, status: str | None = None
    ) -> ApiUser:
        """Change a user's name and/or status (``Enabled`` or ``Disabled``)."""
        if name is None and status is None:
            raise ValueError("give a new name, a new status, or both")
        params = {
            "user_id": user_id,
            "name": name,
            "status": None if status is None else _choice("status", status, USER_STATUSES),
        }
        return self._call("UpdatePrimeApiUser", params, ApiUser.from_api)

    def update_api_user_roles(self, user_id: str, role: str) -> ApiUser:
        """Replace a user's role."""
        params = {"user_id": user_id, "role": _choice("role", role, ROLES)}
        return self._call("UpdatePrimeApiUserRoles", params, ApiUser.from_api)

    # --- API user keys ------------------------------------------------------------------

    def create_api_user_key(self, user_id: str) -> IssuedApiKey:
        """Issue a key for a user; the result carries the secret, which Kraken shows once."""
        return self._call("CreatePrimeApiUserKey", {"user_id": user_id}, IssuedApiKey.from_api)

    def list_api_user_keys(self, user_id: str) -> tuple[ApiKey, ...]:
        """List a user's keys (never their secrets)."""
        return self._call("ListPrimeApiUserKeys", {"user_id": user_id}, api_keys_from_api)

    def update_api_user_key(
        self, user_id: str, key_id: str, whitelisted_ips: Sequence[str]
    ) -> ApiKey:
        """Replace a key's IP allow-list (an empty list removes the restriction)."""
        if isinstance(whitelisted_ips, str) or not all(
            isinstance(ip, str) for ip in whitelisted_ips
        ):
            raise ValueError("whitelisted_ips must be a list of strings")
        params = {"user_id": user_id, "key_id": key_id, "whitelisted_ips": list(whitelisted_ips)}
        return self._call("UpdatePrimeApiUserKey", params, ApiKey.from_api)

    def delete_api_user_key(self, user_id: str, key_id: str) -> bool:
        """Delete a key for good; returns True or raises."""
        return self._call("DeletePrimeApiUserKey", {"user_id": user_id, "key_id": key_id}, _deleted)

    # --- settlement ---------------------------------------------------------------------

    def create_settlement_batch(self, asset_kind: str | None = "currency") -> SettlementBatch:
        """Snapshot the pending unsettled trades of one asset kind into a new batch."""
        kind = None if asset_kind is None else _choice("asset_kind", asset_kind, ASSET_KINDS)
        params = {"asset_kind": kind}
        return self._call("CreatePrimeSettlementBatch", params, SettlementBatch.from_api)

    def get_settlement_batch(self, batch_id: str) -> SettlementBatch:
        """Fetch one batch with its legs, transfers and trade ids."""
        return self._call(
            "GetPrimeSettlementBatch", {"batch_id": batch_id}, SettlementBatch.from_api
        )

    def list_settlement_batches(
        self,
        *,
        statuses: Iterable[str] | None = None,
        from_ms: int | None = None,
        until_ms: int | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> BatchPage:
        """List batches newest first, filtered by status and creation time (ms, from exclusive)."""
        status_list = (
            None
            if statuses is None
            else [_choice("statuses", status, BATCH_STATUSES) for status in statuses]
        )
        if limit is not None and not (_is_int(limit) and 1 <= limit <= 200):
            raise ValueError("limit must be an integer from 1 to 200")
        for label, number in (("offset", offset), ("from_ms", from_ms), ("until_ms", until_ms)):
            if number is not None and not (_is_int(number) and number >= 0):
                raise ValueError(f"{label} must be a non-negative integer")
        params = {
            "statuses": status_list,
            "from": from_ms,
            "until": until_ms,
            "limit": limit,
            "offset": offset,
        }
        return self._call("ListPrimeSettlementBatches", params, BatchPage.from_api)

    def settle_settlement_batch_asset(self, batch_id: str, asset: str) -> SettleResult:
        """Start the settlement transfer for one leg of a confirmed batch."""
        params = {"batch_id": batch_id, "asset": asset}
        return self._call("SettlePrimeSettlementBatchAsset", params, SettleResult.from_api)


# --- helpers (module level so tests can exercise them directly) ----------------------------


# One encoder for every request (building one per call cost ~1 µs of ~8).
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_body(nonce: int, params: Mapping[str, Any]) -> bytes:
    """Compact JSON with the nonce first; fields whose value is None are left out."""
    payload: dict[str, Any] = {"nonce": nonce}
    for key, value in params.items():
        if value is not None:
            payload[key] = value
    return _COMPACT_JSON.encode(payload).encode("utf-8")


def read_envelope(response: requests.Response, endpoint: str) -> tuple[Any, tuple[str, ...]]:
    """Return (result, warnings) from a Kraken answer, or raise the matching PrimeError."""
    status = response.status_code
    try:
        payload = json.loads(response.content, parse_float=Decimal)
    except ValueError:
        payload = None
    errors = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(errors, list) or not all(isinstance(item, str) for item in errors):
        if status != 200:
            raise UnexpectedStatusError(
                f"{endpoint}: HTTP {status} without a Kraken error body ({_body_hint(response)})",
                http_status=status,
                endpoint=endpoint,
            )
        raise MalformedResponseError(
            f"{endpoint}: the answer is not a Kraken envelope ({_body_hint(response)})",
            http_status=status,
            endpoint=endpoint,
        )
    failure = error_from_strings(errors, http_status=status, endpoint=endpoint)
    if failure is not None:
        raise failure
    if status != 200:
        raise UnexpectedStatusError(
            f"{endpoint}: HTTP {status} with an empty error list",
            errors=errors,
            http_status=status,
            endpoint=endpoint,
        )
    assert isinstance(payload, dict)
    if "result" not in payload:
        raise MalformedResponseError(
            f"{endpoint}: the answer has no result", http_status=status, endpoint=endpoint
        )
    return payload["result"], tuple(errors)


def transport_error(exc: requests.RequestException, endpoint: str) -> TransportError:
    """Classify a requests failure by whether the request may have reached Kraken."""
    kind = type(exc).__name__
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return ConnectFailedError(
            f"{endpoint}: could not connect in time; the request was not sent", endpoint=endpoint
        )
    if isinstance(exc, requests.exceptions.Timeout):
        return ResponseTimeoutError(
            f"{endpoint}: no answer in time; Kraken may have executed the request",
            endpoint=endpoint,
        )
    if isinstance(exc, _BUILD_ERRORS):
        return TransportError(
            f"{endpoint}: the request could not be built ({kind})",
            endpoint=endpoint,
            outcome_unknown=False,
        )
    reason: object = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    if isinstance(reason, ReadTimeoutError):
        return ResponseTimeoutError(
            f"{endpoint}: the answer stalled; Kraken may have executed the request",
            endpoint=endpoint,
        )
    # NewConnectionError (refused, DNS) subclasses ConnectTimeoutError in urllib3.
    if (
        isinstance(exc, requests.exceptions.ConnectionError)
        and not isinstance(exc, requests.exceptions.SSLError | requests.exceptions.ProxyError)
        and isinstance(reason, ConnectTimeoutError)
    ):
        return ConnectFailedError(
            f"{endpoint}: could not connect ({type(reason).__name__}); the request was not sent",
            endpoint=endpoint,
        )
    detail = type(reason).__name__ if isinstance(reason, BaseException) else kind
    return ConnectionDroppedError(
        f"{endpoint}: the connection failed mid-request ({kind}: {detail}); "
        "Kraken may have executed the request",
        endpoint=endpoint,
    )


def _retryable(exc: PrimeError, write: bool) -> bool:
    if isinstance(exc, ConnectFailedError):
        return True  # never reached Kraken: safe for reads and writes
    if write:
        return False
    if isinstance(exc, ResponseTimeoutError | ConnectionDroppedError | ServiceUnavailableError):
        return True
    return (
        isinstance(exc, UnexpectedStatusError)
        and exc.http_status is not None
        and exc.http_status >= 500
    )


def _parse(endpoint: str, parse: Callable[[Any], T], result: Any) -> T:
    try:
        return parse(result)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise MalformedResponseError(
            f"{endpoint}: the result has an unexpected shape ({exc})",
            http_status=200,
            endpoint=endpoint,
        ) from exc


def _deleted(result: Any) -> bool:
    if not isinstance(result, Mapping) or result.get("deleted") is not True:
        raise ValueError("expected {'deleted': true}")
    return True


def _choice(label: str, value: str, allowed: Sequence[str]) -> str:
    text = str(value)
    if text not in allowed:
        raise ValueError(f"{label} must be one of {', '.join(allowed)}; got {text!r}")
    return text


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _body_hint(response: requests.Response) -> str:
    # Length and type only: a misbehaving proxy could echo our request headers back.
    content_type = response.headers.get("Content-Type", "no content type")
    return f"{len(response.content)} bytes, {content_type}"
