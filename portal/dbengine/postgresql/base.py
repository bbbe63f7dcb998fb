"""Django's PostgreSQL backend, with a health check that costs no round trip and prepared
statements for the statements every request makes.

With `CONN_HEALTH_CHECKS`, Django asks a reused connection `SELECT 1` before the first query
of every request: one more round trip on every page, a tenth of an unchanged live poll's
cost. What the check is for is a connection the server closed while it sat idle between
requests (a restart, an idle timeout, `pg_terminate_backend`). The server then sends its
last message and closes the socket, so the socket has something to read although no query
is running. Here the socket is looked at first (`select`, no wait): nothing to read, the
connection is as it was left and is used; anything to read is left to Django's `SELECT 1`,
which fails on a closed connection, so Django reconnects before the request's first query,
as before. Selected in portal/settings.py for every PostgreSQL `DATABASE_URL`.

`prepared_cursor()`: Django binds parameters on the client, so PostgreSQL plans every
statement afresh; for the one statement every request makes (the session with its person,
portal/staff/principal.py) planning costs several times what running it does. A cursor
from here binds on the server (Django's own `ServerBindingCursor`), so psycopg prepares a
statement once it has run a few times on a connection (`prepare_threshold`) and PostgreSQL
plans it once per connection. Statements go through Django's cursor wrapper as any other
(counted, logged, wrapped). Behind a pooler in transaction mode, which cannot keep prepared
statements, set psycopg's `prepare_threshold` to None in the database OPTIONS.

Times: Django reads every `timestamp with time zone` through its own loader, a Python
subclass of psycopg's, which parses in Python and then sets the zone: a few microseconds a
value, a hundred or more values on a list page. When Django works in UTC and the session's
TimeZone is UTC (Django sets it on connecting), psycopg's compiled loader gives the very
same values, zone object included (`datetime.timezone.utc`), so the connection uses it.
"""

from __future__ import annotations

import datetime
import select
from typing import Any

from django.db.backends.postgresql import base
from django.utils.asyncio import async_unsafe
from psycopg.pq import Format

try:  # psycopg's compiled adapters (psycopg[binary]); without them Django's loader stays
    from psycopg_binary._psycopg import (  # type: ignore[attr-defined]
        TimestamptzLoader as CompiledTimestamptzLoader,
    )
except ImportError:  # pragma: no cover - the portal installs psycopg[binary]
    CompiledTimestamptzLoader = None

django_pg: Any = base
# Runs of one statement on a connection before psycopg prepares it (psycopg's default).
PREPARE_THRESHOLD = 5  # names the stubs do not know (Django's psycopg 3 cursor and helpers)


class DatabaseWrapper(base.DatabaseWrapper):
    # Whether this connection reads times with psycopg's compiled loader (see above).
    compiled_times = False

    def init_connection_state(self) -> None:
        super().init_connection_state()
        self.compiled_times = (
            CompiledTimestamptzLoader is not None
            and self.connection is not None
            and self.timezone is datetime.UTC
            and self.connection.info.parameter_status("TimeZone") == "UTC"
        )
        if self.compiled_times:
            self.connection.adapters.register_loader("timestamptz", CompiledTimestamptzLoader)

    @async_unsafe
    def create_cursor(self, name: str | None = None) -> Any:
        if not self.compiled_times:
            return super().create_cursor(name)
        # Django's create_cursor without its per-cursor zone check (the compiled loader
        # already gives Django's zone, and has no `timezone` attribute to compare).
        if not name:
            return self.connection.cursor()
        if self.settings_dict["OPTIONS"].get("server_side_binding") is not True:
            return django_pg.ServerSideCursor(
                self.connection, name=name, scrollable=False, withhold=self.connection.autocommit
            )
        return self.connection.cursor(name, scrollable=False, withhold=self.connection.autocommit)

    def get_connection_params(self) -> dict[str, Any]:
        params: dict[str, Any] = super().get_connection_params()
        if "prepare_threshold" not in self.settings_dict["OPTIONS"]:
            # Only cursors that bind on the server prepare (prepared_cursor below); Django's
            # usual client-binding cursors never do. OPTIONS' prepare_threshold wins.
            params["prepare_threshold"] = PREPARE_THRESHOLD
        return params

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

    @async_unsafe
    def prepared_cursor(self) -> Any:
        """A cursor binding on the server (see the module docstring); otherwise as
        `cursor()`: health check, connection, Django's wrapper."""
        self.close_if_health_check_failed()
        self.ensure_connection()
        with self.wrap_database_errors:
            cursor = django_pg.ServerBindingCursor(self.connection)
            if not self.compiled_times:
                # As Django's create_cursor: the cursor's zone when the connection's differs.
                tzloader = self.connection.adapters.get_loader(
                    django_pg.TIMESTAMPTZ_OID, Format.TEXT
                )
                if self.timezone != tzloader.timezone:
                    django_pg.register_tzloader(self.timezone, cursor)
            return self._prepare_cursor(cursor)  # type: ignore[attr-defined]
