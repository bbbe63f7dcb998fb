"""Issue keys through the portal, then look for every secret everywhere it must not be.

The database (every column of every table, raw SQL), the SQL and application logs
(every logger at DEBUG), the cache, the session store (where messages live), the
audit events, response headers: none may hold a secret.
"""

from __future__ import annotations

import logging
import pickle
import re
from urllib.parse import quote, quote_plus

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.core.cache import caches
from django.db import connection
from django.urls import reverse

from portal.audit.models import AuditEvent
from portal.keys.models import ApiKey
from portal.staff.models import PortalSession as Session
from tests.users.conftest import HX

pytestmark = pytest.mark.django_db

SECRET = re.compile(r'id="secret-value">([^<]+)<')


def _token(client, user) -> str:
    page = client.get(reverse("keys:list", args=[user.prime_id])).content.decode()
    return re.search(r'name="token" value="([^"]+)"', page).group(1)


def _forms(secret: str) -> list[str]:
    """The secret as it could be written: plain, URL-encoded, JSON-escaped."""
    return [secret, quote(secret, safe=""), quote_plus(secret), secret.replace("/", "\\/")]


def _database_text() -> str:
    """Every value of every row of every table, as text (raw SQL, no ORM)."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        chunks.append(bytes(value).decode("utf-8", "replace"))
                    else:
                        chunks.append(str(value))
    return "\n".join(chunks)


def _sessions_text() -> str:
    """Every session decoded (messages are kept in the session)."""
    store = SessionStore()
    return "\n".join(repr(store.decode(s.session_data)) for s in Session.objects.all())


def _cache_text() -> str:
    chunks = []
    for alias in caches:
        cache = caches[alias]
        raw = getattr(cache, "_cache", None)
        if raw is None:  # not a local-memory cache: ask for nothing we cannot list
            continue
        for key, value in list(raw.items()):
            chunks.append(str(key))
            try:
                chunks.append(repr(pickle.loads(value)))
            except Exception:
                chunks.append(repr(value))
    return "\n".join(chunks)


def test_issued_secrets_are_nowhere_but_in_their_one_response(
    op_client, make_prime_user, control, caplog, approve
):
    caplog.set_level(logging.DEBUG)  # every logger
    for name in list(logging.root.manager.loggerDict):
        logging.getLogger(name).setLevel(logging.DEBUG)
    connection.force_debug_cursor = True  # log every SQL statement with its parameters
    try:
        alice, bob = make_prime_user(name="Alice"), make_prime_user(name="Bob", role="Trader")
        secrets, headers_seen = [], []

        def issue(user, headers=None, **fields):
            data = {"token": _token(op_client, user), "label": "", "whitelisted_ips": ""}
            data.update(fields)
            url = reverse("keys:issue", args=[user.prime_id])
            response = op_client.post(url, data, headers=headers or {})
            if user.role == "Trader":
                # A Trader's key waits for an approver; then the requester issues it (issue 11).
                assert "Sent for approval" in response.content.decode()
                change = approve().change
                url = reverse("keys:issue-approved", args=[change.pk])
                assert SECRET.search(op_client.get(url).content.decode()) is None
                response = op_client.post(url, headers=headers or {})
            body = response.content.decode()
            found = SECRET.search(body)
            assert found, body[:500]
            secrets.append(found.group(1))
            headers_seen.append(repr(dict(response.headers)))
            # Reload (resubmit) and reopen: nothing secret.
            for again in (op_client.post(url, data), op_client.get(url)):
                assert found.group(1) not in again.content.decode()
            return response

        issue(alice, label="plain page")
        issue(alice, headers=HX, label="htmx")
        issue(bob, whitelisted_ips="192.0.2.1\n10.0.0.0/8", label="with allow-list")
        control.inject_fault("unavailable", "UpdatePrimeApiUserKey")
        failed = issue(bob, headers=HX, whitelisted_ips="192.0.2.2", label="allow-list fails")
        assert "allow-list was not set" in failed.content.decode()
        # Walk the pages afterwards, as a person would.
        for user in (alice, bob):
            op_client.get(reverse("keys:list", args=[user.prime_id]))
            op_client.get(reverse("users:detail", args=[user.prime_id]))
        op_client.get(reverse("users:list"))
    finally:
        connection.force_debug_cursor = False

    assert len(secrets) == 4 and len(set(secrets)) == 4
    assert ApiKey.objects.count() == 4
    assert any("INSERT" in r.getMessage() for r in caplog.records)  # SQL really was logged

    places = {
        "database": _database_text(),
        "sessions and messages": _sessions_text(),
        "cache": _cache_text(),
        "logs": caplog.text
        + "\n".join(f"{r.getMessage()} {r.args!r} {r.__dict__!r}" for r in caplog.records),
        "audit events": "\n".join(repr(e.__dict__) for e in AuditEvent.objects.all()),
        "response headers": "\n".join(headers_seen),
    }
    assert AuditEvent.objects.filter(action="key_issued").count() == 4
    for secret in secrets:
        for where, text in places.items():
            for form in _forms(secret):
                assert form not in text, f"a secret was found in the {where}"
