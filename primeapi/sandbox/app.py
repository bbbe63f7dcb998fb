"""The sandbox application: one lock around state, auth guard, settings, faults and storage.

The HTTP layer (``server.py``) calls ``take_fault`` / ``reject_with_fault`` /
``execute_private`` for ``/0/private/...`` and ``control_api.handle`` for ``/_sandbox/...``.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import traceback
from dataclasses import dataclass
from typing import Any

from primeapi.sandbox.auth import (
    PERMISSION_DENIED,
    RATE_LIMIT_EXCEEDED,
    Guard,
    authenticate,
    extract_nonce,
    parse_body,
)
from primeapi.sandbox.clock import Clock, SystemClock, to_ms
from primeapi.sandbox.demo import seed_demo
from primeapi.sandbox.endpoints import ENDPOINTS, may_call
from primeapi.sandbox.faults import Fault, FaultBook
from primeapi.sandbox.state import (
    KrakenError,
    SandboxState,
    Settings,
    ip_allowed,
)
from primeapi.sandbox.storage import read_json, write_json_atomic
from primeapi.sandbox.validation import validate

PRIVATE_PREFIX = "/0/private/"
INTERNAL_ERROR = "EGeneral:Internal error"
UNKNOWN_METHOD = "EGeneral:Unknown method"
UNAVAILABLE = "EService:Unavailable"
# A body that claims to be JSON but is cut short: the worst case for a client parser.
MALFORMED_BODY = b'{"error":[],"result":{"data":['


@dataclass
class Reply:
    """An HTTP answer."""

    status: int
    body: bytes
    content_type: str = "application/json"

    @classmethod
    def json(cls, payload: Any, status: int = 200) -> Reply:
        """Compact JSON reply."""
        return cls(status, json.dumps(payload, separators=(",", ":")).encode("utf-8"))

    @classmethod
    def kraken_error(cls, message: str, status: int = 200) -> Reply:
        """Kraken envelope with one error and no ``result``."""
        return cls.json({"error": [message]}, status)


def _peek_nonce(raw: bytes, content_type: str) -> int | None:
    """Best-effort nonce for the call log, whatever happened to the request."""
    try:
        params, form = parse_body(raw, content_type)
        return extract_nonce(params, form)[0]
    except KrakenError:
        return None


class SandboxApp:
    """State and behaviour of one sandbox account, safe to call from many threads."""

    def __init__(
        self,
        *,
        state_path: str | os.PathLike[str] | None,
        demo: bool,
        settings: Settings,
        clock: Clock | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.clock: Clock = clock or SystemClock()
        self.settings = settings
        self.guard = Guard()
        self.faults = FaultBook()
        # Set when the server stops, so held connections (latency, timeout faults) end.
        self.stopping = threading.Event()
        self.state_path = state_path
        loaded = read_json(state_path) if state_path else None
        if loaded is not None:
            # A restart keeps the account (same admin credentials); --demo seeds only once.
            self.state = SandboxState.from_dict(loaded)
        else:
            self.state = SandboxState.fresh(self.now_ms())
            if demo:
                seed_demo(self.state, self.now_ms())
        self.save()

    # ------------------------------------------------------------------ state

    def save(self) -> None:
        """Persist the whole state if ``--state`` was given (call with the lock held)."""
        if self.state_path:
            write_json_atomic(self.state_path, self.state.to_dict())

    def now_ms(self) -> int:
        """The sandbox clock's time in integer milliseconds."""
        return to_ms(self.clock.time())

    def advance_clock(self, seconds: float) -> int:
        """Move the sandbox's clock forward and apply what fell due; returns now in ms."""
        with self.lock:
            self.clock.advance(seconds)
            return self.tick()

    def tick(self) -> int:
        """Apply lazy time-based transitions; returns now in ms (call with the lock held)."""
        now = self.now_ms()
        if self.state.tick(now, self.settings):
            self.save()
        return now

    def reset(self, *, demo: bool = False) -> None:
        """Forget everything but the admin key; optionally reseed the demo data."""
        with self.lock:
            self.state.reset()
            self.guard.clear()
            self.faults.clear()
            if demo:
                seed_demo(self.state, self.now_ms(), random.Random())
            self.save()

    # ------------------------------------------------------------ private API

    def take_fault(self, endpoint: str) -> Fault | None:
        """Consume the next fault injected for ``endpoint``, if any."""
        if endpoint not in ENDPOINTS:
            return None
        with self.lock:
            return self.faults.take(endpoint)

    def reject_with_fault(
        self, fault: Fault, endpoint: str, headers: Any, raw: bytes, peer: str
    ) -> Reply:
        """Answer a request with a rejecting fault, without executing it."""
        if fault.kind == "http_500":
            reply = Reply.kraken_error(INTERNAL_ERROR, 500)
            errors = [INTERNAL_ERROR]
        elif fault.kind == "malformed":
            reply = Reply(200, MALFORMED_BODY)
            errors = []
        elif fault.kind == "rate_limit":
            reply = Reply.kraken_error(RATE_LIMIT_EXCEEDED)
            errors = [RATE_LIMIT_EXCEEDED]
        elif fault.kind == "throttled":
            # Kraken's text has spaces after both colons; the timestamp is unix seconds.
            message = f"EService: Throttled: {int(self.clock.time() + fault.seconds)}"
            reply = Reply.kraken_error(message)
            errors = [message]
        elif fault.kind == "unavailable":
            reply = Reply.kraken_error(UNAVAILABLE)
            errors = [UNAVAILABLE]
        else:
            raise ValueError(f"{fault.kind} is not a rejecting fault")
        with self.lock:
            self._log(endpoint, headers, raw, peer, executed=False, errors=errors, fault=fault)
            self.save()
        return reply

    def execute_private(
        self,
        endpoint: str,
        *,
        method: str,
        url_path: str,
        headers: Any,
        raw: bytes,
        peer: str,
        fault: Fault | None = None,
    ) -> Reply:
        """Authenticate, authorise, validate and run one private call; log it."""
        with self.lock:
            now = self.tick()
            executed = False
            try:
                result = self._dispatch(endpoint, method, url_path, headers, raw, peer, now)
                executed = True
                reply = Reply.json({"error": [], "result": result})
                errors: list[str] = []
            except KrakenError as exc:
                status = 200
                if exc.message == UNKNOWN_METHOD:
                    status = 404 if method == "POST" else 405
                reply = Reply.kraken_error(exc.message, status)
                errors = [exc.message]
            except Exception:
                # A genuine bug: the only case answered with HTTP 500. Tracebacks carry
                # no request bodies or headers, so no secret reaches the log.
                traceback.print_exc(file=sys.stderr)
                reply = Reply.kraken_error(INTERNAL_ERROR, 500)
                errors = [INTERNAL_ERROR]
            self._log(endpoint, headers, raw, peer, executed=executed, errors=errors, fault=fault)
            self.save()
            return reply

    def _dispatch(
        self,
        endpoint: str,
        method: str,
        url_path: str,
        headers: Any,
        raw: bytes,
        peer: str,
        now: int,
    ) -> dict[str, Any]:
        spec = ENDPOINTS.get(endpoint)
        if spec is None or method != "POST":
            raise KrakenError(UNKNOWN_METHOD)
        auth = authenticate(
            self.state,
            self.guard,
            self.settings,
            url_path=url_path,
            headers=headers,
            raw=raw,
            now=now / 1000,
        )
        if not ip_allowed(peer, auth.key.whitelisted_ips):
            raise KrakenError(PERMISSION_DENIED)
        if not may_call(spec.access, auth.user):
            raise KrakenError(PERMISSION_DENIED)
        args = validate(spec.spec, auth.params, form=auth.form)
        return spec.handler(self.state, args, now)

    def _log(
        self,
        endpoint: str,
        headers: Any,
        raw: bytes,
        peer: str,
        *,
        executed: bool,
        errors: list[str],
        fault: Fault | None,
    ) -> None:
        api_key = headers.get("API-Key")
        self.state.log_call(
            {
                "time_ms": self.now_ms(),
                "endpoint": endpoint,
                # Public key only (truncated if absurd); API-Sign and bodies are never logged.
                "api_key": api_key[:128] if api_key else None,
                "nonce": _peek_nonce(raw, headers.get("Content-Type", "")),
                "executed": executed,
                "error": errors,
                "peer": peer,
                "fault": fault.kind if fault else None,
            }
        )
