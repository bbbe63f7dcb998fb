"""Leader election for the one job that must run in exactly one worker: the Kraken poller.

PostgreSQL: a session advisory lock taken on a connection of its own (never Django's,
which `close_old_connections` or `CONN_MAX_AGE` may close or recycle). When the
leader's process dies, even by `kill -9`, the operating system closes its socket,
PostgreSQL ends the session and the lock is free for the next worker that asks. TCP
keepalives on that session let PostgreSQL notice a leader whose machine vanished.

SQLite (the embedded default, one machine): an exclusive `flock` on a file in
`var/locks/`, which the kernel releases when the process dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
from pathlib import Path
from typing import IO, Protocol

import psycopg
from django.conf import settings
from django.db import connections

logger = logging.getLogger("portal.worker.leader")


class LeaderLock(Protocol):
    def acquire(self) -> bool: ...

    def held(self) -> bool: ...

    def release(self) -> None: ...


def lock_key(role: str) -> int:
    """A stable signed 64-bit advisory lock key for a role name."""
    digest = hashlib.sha256(f"portal.worker:{role}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _conninfo() -> dict[str, object]:
    db = settings.DATABASES["default"]
    params: dict[str, object] = {
        "dbname": db.get("NAME") or "",
        "user": db.get("USER") or None,
        "password": db.get("PASSWORD") or None,
        "host": db.get("HOST") or None,
        "port": db.get("PORT") or None,
        "autocommit": True,
        "connect_timeout": 5,
        "application_name": "portal-worker-leader",
        # The server drops the session (and the lock) ~15 s after the leader's machine
        # stops answering; the client notices a dead server as quickly.
        "options": "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 "
        "-c tcp_keepalives_count=3 -c statement_timeout=5000",
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 3,
    }
    return {k: v for k, v in params.items() if v is not None}


class PostgresLeaderLock:
    """`pg_try_advisory_lock` on a dedicated connection, held while the connection lives."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.key = lock_key(role)
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(**_conninfo())  # type: ignore[arg-type]
        return self._conn

    def acquire(self) -> bool:
        try:
            row = self._connect().execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        except psycopg.Error as exc:
            logger.warning("leader lock %s: database unavailable (%s)", self.role, exc)
            self._drop()
            return False
        return bool(row and row[0])

    def held(self) -> bool:
        """True while our session (and so the lock) is alive; checked before every cycle."""
        if self._conn is None or self._conn.closed:
            return False
        try:
            # The lock lives exactly as long as this session: a live session still holds it.
            row = self._conn.execute("SELECT 1").fetchone()
        except psycopg.Error as exc:
            logger.warning("leader lock %s lost: %s", self.role, exc)
            self._drop()
            return False
        return bool(row and row[0])

    def release(self) -> None:
        if self._conn is not None and not self._conn.closed:
            with contextlib.suppress(psycopg.Error):
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None


class FileLeaderLock:
    """An exclusive `flock` on `var/locks/leader-<role>.lock` (one machine: SQLite)."""

    def __init__(self, role: str, directory: Path | None = None) -> None:
        self.role = role
        self.path = (directory or Path(settings.VAR_DIR) / "locks") / f"leader-{role}.lock"
        self._file: IO[str] | None = None

    def acquire(self) -> bool:
        if self._file is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - held open for as long as we lead
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle
        return True

    def held(self) -> bool:
        return self._file is not None

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def leader_lock(role: str) -> LeaderLock:
    """The lock that fits the database in use."""
    if connections["default"].vendor == "postgresql":
        return PostgresLeaderLock(role)
    return FileLeaderLock(role)
