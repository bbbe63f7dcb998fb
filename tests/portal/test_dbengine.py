"""The PostgreSQL engine's health check (portal/dbengine/postgresql): no round trip for a
connection that is as it was left; a connection the server closed is still found out and
replaced before a request uses it."""

from __future__ import annotations

import select
import time

import pytest
from django.db import connection
from django.db.backends.postgresql.base import DatabaseWrapper as DjangoWrapper

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_postgresql_urls_use_the_portals_engine():
    assert connection.settings_dict["ENGINE"] == "portal.dbengine.postgresql"
    assert connection.vendor == "postgresql"


def test_an_idle_connection_is_used_without_a_round_trip(monkeypatch):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    asked = []
    monkeypatch.setattr(DjangoWrapper, "is_usable", lambda self: asked.append(1) or True)
    assert connection.is_usable() is True
    assert asked == []  # Django's SELECT 1 was not needed


def test_a_connection_the_server_closed_is_replaced_before_use(django_db_blocker):
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    from django.db import connections

    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()
    # The server's goodbye reaches the socket.
    readable, _, _ = select.select([connection.connection.fileno()], [], [], 5)
    assert readable, "the terminated connection's socket never became readable"

    assert connection.is_usable() is False
    # As at the start of a request (CONN_HEALTH_CHECKS): found out, closed, reconnected.
    connection.health_check_done = False
    connection.close_if_health_check_failed()
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (new_pid,) = cursor.fetchone()
    assert new_pid != pid
    assert time.monotonic() - started < 5


def _prepared() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def test_the_per_request_statement_is_prepared_after_a_few_runs(client, viewer):
    from portal.staff.models import PortalSession

    client.force_login(viewer)
    for _ in range(8):
        assert client.get("/").status_code == 200
    table = PortalSession._meta.db_table
    assert any(table in text and "$1" in text for text in _prepared()), _prepared()


def test_client_binding_cursors_still_never_prepare(viewer):
    from portal.staff.models import Staff

    for _ in range(8):
        list(Staff.objects.filter(pk=viewer.pk))
    # A client-bound statement carries its values inline: prepared, it would have no $1.
    assert all("$1" in text for text in _prepared()), _prepared()


def test_options_can_turn_preparing_off(settings):
    from django.db import connections

    options = {**connection.settings_dict["OPTIONS"], "prepare_threshold": None}
    other = connections.create_connection("default")
    other.settings_dict = {**other.settings_dict, "OPTIONS": options}
    try:
        other.ensure_connection()
        assert other.connection.prepare_threshold is None
    finally:
        other.close()
    connection.ensure_connection()
    assert connection.connection.prepare_threshold == 5


def test_times_are_read_by_the_compiled_loader_with_djangos_values():
    import datetime

    from django.db.backends.postgresql.psycopg_any import register_tzloader
    from psycopg import ClientCursor

    connection.ensure_connection()
    assert connection.compiled_times
    statement = (
        "SELECT x FROM (VALUES (now()), ('2026-03-29 01:30:00.123456+00'::timestamptz),"
        " ('1999-12-31 23:59:59+05:30'::timestamptz), (NULL::timestamptz)) AS t(x)"
    )
    with connection.cursor() as cursor:
        cursor.execute(statement)
        fast = [row[0] for row in cursor.fetchall()]
    django_cursor = ClientCursor(connection.connection)
    register_tzloader(connection.timezone, django_cursor)  # Django's own loader
    django_cursor.execute(statement)
    slow = [row[0] for row in django_cursor.fetchall()]
    assert fast[1:] == slow[1:] and fast[-1] is None
    assert all(value.tzinfo is datetime.UTC for value in fast[:-1])


def test_server_side_cursors_still_iterate(viewer):
    from portal.staff.models import Staff

    found = list(Staff.objects.filter(pk=viewer.pk).iterator(chunk_size=10))
    assert found == [viewer]
    assert found[0].date_joined.tzinfo is not None
