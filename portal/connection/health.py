"""The Prime connection's health, recorded by the client's observer and read by the strip.

Health lives in a small table (`ConnectionHealth`, one row per connection) rather
than the cache: the default cache is per process, and the status strip must show
what any process (a web worker, the poller) last saw. Writes are cheap: each
process writes when the state it last wrote changes (ok → unreachable, …) and
otherwise at most once every HEALTH_WRITE_INTERVAL seconds, and each write is a
single upsert statement in autocommit (see sidedb.py). So another process's
success may take up to that interval to clear a banner.

A failure only marks the connection unreachable if no success was recorded after
the failing call started, so a late write from a slow failing call never hides a
newer success.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import DatabaseError
from django.utils import timezone

from portal.connection.models import ConnectionHealth, HealthStatus
from portal.connection.sidedb import autocommit_connection
from primeapi.errors import (
    InvalidKeyError,
    InvalidSignatureError,
    OutcomeUnknownError,
    PrimeError,
    ServiceUnavailableError,
    TemporaryLockoutError,
    TransportError,
)

__all__ = ["HEALTH_WRITE_INTERVAL", "HealthObserver", "classify", "forget_written", "record_call"]

logger = logging.getLogger(__name__)

HEALTH_WRITE_INTERVAL = 10.0  # seconds between unchanged writes, per process

# Kraken answered, but neither success nor a connection problem (bad arguments,
# permission, rate limit): the connection works, but it is not a "successful call".
CONTACT = "contact"

_written_lock = threading.Lock()
_written: dict[str, tuple[str, float]] = {}


def forget_written() -> None:
    """Forget what this process last wrote (tests, and after a fork)."""
    global _written_lock
    _written_lock = threading.Lock()
    _written.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=forget_written)


def classify(ok: bool, error: PrimeError | None) -> str:
    """HealthStatus value (or CONTACT) for one finished call."""
    if ok:
        return HealthStatus.OK
    cause = error.cause if isinstance(error, OutcomeUnknownError) else error
    if isinstance(cause, TransportError | ServiceUnavailableError):
        return HealthStatus.UNREACHABLE
    if cause is not None and cause.http_status is not None and cause.http_status >= 500:
        return HealthStatus.UNREACHABLE
    if isinstance(cause, InvalidKeyError | InvalidSignatureError | TemporaryLockoutError):
        return HealthStatus.REFUSED
    return CONTACT


def _error_words(error: PrimeError | None) -> str:
    if error is None:
        return ""
    shown = ", ".join(error.errors) if error.errors else ""
    status = f" HTTP {error.http_status}" if error.http_status not in (None, 200) else ""
    return f"{type(error).__name__}{status}{': ' + shown if shown else ''}"[:300]


def _should_write(fingerprint: str, state: str, now: float) -> bool:
    with _written_lock:
        last = _written.get(fingerprint)
        if last is not None and last[0] == state and now - last[1] < HEALTH_WRITE_INTERVAL:
            return False
        _written[fingerprint] = (state, now)
        return True


def _upsert(
    *,
    fingerprint: str,
    api_url: str,
    state: str,
    now: datetime,
    started: datetime,
    error: str,
) -> None:
    with autocommit_connection() as connection:
        table = connection.ops.quote_name(ConnectionHealth._meta.db_table)
        at = connection.ops.adapt_datetimefield_value(now)
        insert = (
            f"INSERT INTO {table} (fingerprint, api_url, status, last_success_at, "  # noqa: S608
            "failing_since, last_failure_at, last_error, updated_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (fingerprint) DO UPDATE SET "
        )
        if state in (HealthStatus.OK, CONTACT):
            success = at if state == HealthStatus.OK else None
            sql = insert + (
                "api_url = excluded.api_url, status = excluded.status, failing_since = NULL, "
                f"last_success_at = COALESCE(excluded.last_success_at, {table}.last_success_at), "
                "updated_at = excluded.updated_at"
            )
            params = [fingerprint, api_url, HealthStatus.OK, success, None, None, "", at]
        else:
            sql = insert + (
                "api_url = excluded.api_url, "
                f"failing_since = CASE WHEN {table}.status = excluded.status "
                f"AND {table}.failing_since IS NOT NULL THEN {table}.failing_since "
                "ELSE excluded.failing_since END, "
                "status = excluded.status, last_failure_at = excluded.last_failure_at, "
                "last_error = excluded.last_error, updated_at = excluded.updated_at "
                f"WHERE {table}.last_success_at IS NULL OR {table}.last_success_at < %s"
            )
            began = connection.ops.adapt_datetimefield_value(started)
            params = [fingerprint, api_url, str(state), None, at, at, error, at, began]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


def record_call(
    *,
    fingerprint: str,
    api_url: str,
    ok: bool,
    error: PrimeError | None,
    duration_s: float = 0.0,
) -> bool:
    """Record one finished call (throttled); True when a row was written."""
    state = classify(ok, error)
    if not _should_write(fingerprint, state, time.monotonic()):
        return False
    now = timezone.now()
    try:
        _upsert(
            fingerprint=fingerprint,
            api_url=api_url,
            state=state,
            now=now,
            started=now - timedelta(seconds=max(duration_s, 0.0)),
            error=_error_words(error),
        )
    except DatabaseError:
        # Health is advisory: never fail a Prime call because the row could not be written.
        with _written_lock:
            _written.pop(fingerprint, None)
        logger.warning("could not record the Prime connection's health", exc_info=True)
        return False
    from portal.connection.selectors import connection_status_forget

    connection_status_forget(fingerprint)
    return True


class HealthObserver:
    """PrimeClient observer: releases the nonce gate and records the connection's health."""

    def __init__(
        self, *, fingerprint: str, api_url: str, release: Callable[[], None] | None = None
    ) -> None:
        self.fingerprint = fingerprint
        self.api_url = api_url
        self._release = release

    def __call__(
        self, endpoint: str, ok: bool, duration_s: float, error: PrimeError | None
    ) -> None:
        if self._release is not None:
            self._release()
        record_call(
            fingerprint=self.fingerprint,
            api_url=self.api_url,
            ok=ok,
            error=error,
            duration_s=duration_s,
        )
