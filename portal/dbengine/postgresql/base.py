"""Django's PostgreSQL backend, with a health check that costs no round trip.

With `CONN_HEALTH_CHECKS`, Django asks a reused connection `SELECT 1` before the first query
of every request: one more round trip on every page, a tenth of an unchanged live poll's
cost. What the check is for is a connection the server closed while it sat idle between
requests (a restart, an idle timeout, `pg_terminate_backend`). The server then sends its
last message and closes the socket, so the socket has something to read although no query
is running. Here the socket is looked at first (`select`, no wait): nothing to read, the
connection is as it was left and is used; anything to read is left to Django's `SELECT 1`,
which fails on a closed connection, so Django reconnects before the request's first query,
as before. Selected in portal/settings.py for every PostgreSQL `DATABASE_URL`.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        conn = self.connection
        if conn is None or conn.closed or conn.broken:
            return False
        try:
            readable, _, _ = select.select([conn.fileno()], [], [], 0)
        except (OSError, ValueError):  # the socket is gone
            return False
        if readable:
            return bool(super().is_usable())
        return True
