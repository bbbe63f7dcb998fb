"""Nonces shared by every portal process that uses the same Prime key.

`SharedNonce.next_nonce(api_key)` takes the next value from the `NonceCounter`
row of the key (keyed by the SHA-256 of the key, never the key) in one atomic
statement that also creates the row on first use::

    INSERT INTO counter (key_fingerprint, value) VALUES (:fp, :floor)
    ON CONFLICT (key_fingerprint)
    DO UPDATE SET value = GREATEST(counter.value + 1, excluded.value)  -- MAX() on SQLite
    RETURNING value

`:floor` is the current time in milliseconds, or one more than the last nonce
this process handed out for the key if that is higher, so values follow the
clock, never go back, and never repeat within a process even if a counter
update was rolled back (SQLite inside an atomic block, see sidedb.py).

A shared counter alone still lets two processes send their nonces out of order
(A takes 41, B takes 42, B's request arrives first, Kraken refuses 41). Kraken
counts such refusals towards a temporary lockout of the key, so each process
also holds a per-key gate from taking a nonce until the answer arrives:

- PostgreSQL: a session advisory lock (`pg_advisory_lock`) on the connection that
  took the nonce, with `lock_timeout` set for that one statement only;
- SQLite (one machine by nature): an exclusive `flock` on a file in VAR_DIR.

`GatedSession` (the client's `requests.Session`) releases the gate when the HTTP
exchange ends, and the client's observer releases it again as a safety net. If
the gate cannot be had within the timeout (a stuck process) the call goes ahead
without it; the client then retries an `EAPI:Invalid nonce` answer itself (the
request was not executed), so the worst case is a retried call, not a failure.
Within one process the client already sends one request per key at a time.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError
from django.db.backends.base.base import BaseDatabaseWrapper

from portal.connection.models import NonceCounter
from portal.connection.sidedb import default_connection, needs_side_connection, new_side_connection

try:
    import fcntl
except ImportError:  # pragma: no cover - not a target platform
    fcntl = None  # type: ignore[assignment]

__all__ = ["GatedSession", "SharedNonce", "forget_process_state", "key_fingerprint"]

logger = logging.getLogger(__name__)

# Namespace of the portal's advisory locks ("PRNC"), so they never meet other users' locks.
_ADVISORY_CLASS = 0x50524E43


def key_fingerprint(api_key: str) -> str:
    """SHA-256 of the public API key: the counter's key, and safe to show or log."""
    return hashlib.sha256(api_key.strip().encode("utf-8")).hexdigest()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# --- per-process state ---------------------------------------------------------------

_floor_lock = threading.Lock()
_floor: dict[str, int] = {}
_local = threading.local()
_lock_files: dict[str, int] = {}


def forget_process_state() -> None:
    """Forget this process's floors, held gates and lock files (after a fork, and in tests)."""
    global _floor_lock, _local
    _floor_lock = threading.Lock()
    _local = threading.local()
    _floor.clear()
    # flock belongs to the open file: a forked child opens its own. Closing the child's
    # copy of a descriptor does not release a lock the parent holds through it.
    for fd in _lock_files.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    _lock_files.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=forget_process_state)


@dataclass
class _Held:
    """The gate this thread holds for one key, and the connection the nonce came from."""

    fingerprint: str
    connection: BaseDatabaseWrapper
    owns_connection: bool
    advisory: tuple[int, int] | None = None
    lock_fd: int | None = None


# --- the counter ----------------------------------------------------------------------


def _take(connection: BaseDatabaseWrapper, fingerprint: str, floor: int) -> int:
    table = connection.ops.quote_name(NonceCounter._meta.db_table)
    if connection.vendor == "postgresql":
        greatest = "GREATEST"
    elif connection.vendor == "sqlite":
        greatest = "MAX"
    else:
        raise ImproperlyConfigured("The shared nonce counter supports PostgreSQL and SQLite.")
    sql = (
        f"INSERT INTO {table} (key_fingerprint, value) VALUES (%s, %s) "  # noqa: S608 - table name only
        "ON CONFLICT (key_fingerprint) DO UPDATE "
        f"SET value = {greatest}({table}.value + 1, excluded.value) "
        "RETURNING value"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [fingerprint, floor])
        (value,) = cursor.fetchone()
    return int(value)


# --- the gate -------------------------------------------------------------------------


def _advisory_key(fingerprint: str) -> tuple[int, int]:
    return _ADVISORY_CLASS, int(fingerprint[:8], 16) - 2**31


def _advisory_lock(connection: BaseDatabaseWrapper, key: tuple[int, int], timeout: float) -> bool:
    # set_config(..., true) lasts for this statement's implicit transaction only.
    sql = (
        "SELECT pg_advisory_lock(%s, %s) FROM (SELECT set_config('lock_timeout', %s, true)) AS cfg"
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, [key[0], key[1], f"{max(1, int(timeout * 1000))}ms"])
            cursor.fetchone()
        return True
    except DatabaseError:
        logger.warning("prime nonce gate not acquired within %.1fs; sending ungated", timeout)
        return False


def _lock_file_fd(fingerprint: str) -> int:
    fd = _lock_files.get(fingerprint)
    if fd is None:
        directory = Path(settings.VAR_DIR) / "locks"
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"prime-nonce-{fingerprint[:16]}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        _lock_files[fingerprint] = fd
    return fd


def _file_lock(fingerprint: str, timeout: float) -> int | None:
    if fcntl is None:  # pragma: no cover
        return None
    fd = _lock_file_fd(fingerprint)
    deadline = time.monotonic() + timeout
    pause = 0.0005
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                logger.warning(
                    "prime nonce gate not acquired within %.1fs; sending ungated", timeout
                )
                return None
            time.sleep(pause)
            pause = min(pause * 2, 0.005)


class SharedNonce:
    """A NonceSource for PrimeClient: database counter plus a cross-process gate per key."""

    def __init__(self, *, gate_timeout: float = 15.0) -> None:
        self.gate_timeout = gate_timeout

    def __repr__(self) -> str:
        return f"{type(self).__name__}(gate_timeout={self.gate_timeout})"

    def next_nonce(self, api_key: str) -> int:
        """Hold the key's gate (until release()) and return its next nonce."""
        fingerprint = key_fingerprint(api_key)
        held: _Held | None = getattr(_local, "held", None)
        if held is not None and held.fingerprint != fingerprint:
            self.release()
            held = None
        if held is None:
            held = self._acquire(fingerprint)
            _local.held = held
        with _floor_lock:
            floor = max(_now_ms(), _floor.get(fingerprint, 0) + 1)
        try:
            value = _take(held.connection, fingerprint, floor)
        except Exception:
            self.release()
            raise
        with _floor_lock:
            _floor[fingerprint] = max(value, _floor.get(fingerprint, 0))
        return value

    def _acquire(self, fingerprint: str) -> _Held:
        default = default_connection()
        if default.vendor == "postgresql":
            side = needs_side_connection()
            connection = new_side_connection() if side else default
            held = _Held(fingerprint, connection, owns_connection=side)
            key = _advisory_key(fingerprint)
            try:
                if _advisory_lock(connection, key, self.gate_timeout):
                    held.advisory = key
            except Exception:
                if side:
                    connection.close()
                raise
            return held
        held = _Held(fingerprint, default, owns_connection=False)
        held.lock_fd = _file_lock(fingerprint, self.gate_timeout)
        return held

    def release(self) -> None:
        """Release the gate this thread holds, if any (idempotent)."""
        held: _Held | None = getattr(_local, "held", None)
        if held is None:
            return
        _local.held = None
        if held.lock_fd is not None and fcntl is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(held.lock_fd, fcntl.LOCK_UN)
        if held.advisory is not None and not held.owns_connection:
            try:
                with held.connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", list(held.advisory))
            except DatabaseError:
                # Closing the session releases its advisory locks.
                logger.warning("prime nonce gate release failed; closing the connection")
                held.connection.close()
        if held.owns_connection:
            held.connection.close()


class GatedSession(requests.Session):
    """The client's HTTP session: releases the nonce gate once the exchange is over."""

    def __init__(self, nonce: SharedNonce) -> None:
        super().__init__()
        self._nonce = nonce

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        try:
            return super().request(*args, **kwargs)
        finally:
            self._nonce.release()
