"""The stored secret is encrypted at rest (MultiFernet) and the key can be rotated."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from portal.actors import SystemActor
from portal.audit.models import AuditAction, AuditEvent
from portal.connection import crypto, door
from portal.connection.checks import encryption_keys_set, encryption_keys_valid
from portal.connection.models import StoredConnection
from portal.connection.services import connection_store

pytestmark = pytest.mark.django_db

SECRET = "dGhpcyBpcyB0aGUgcGxhaW50ZXh0IHNlY3JldCBvZiB0aGUgdGVzdA=="


def _column() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret_encrypted FROM connection_storedconnection")
        return cursor.fetchone()[0]


def _store() -> None:
    connection_store(
        actor=SystemActor.COMMAND_LINE,
        api_url="https://api.kraken.com",
        api_key="K" * 56,
        api_secret=SECRET,
    )


def test_the_database_column_never_contains_the_plaintext_secret(
    no_prime_environment, encryption_key
):
    _store()
    column = _column()
    assert SECRET not in column
    assert crypto.decrypt_secret(column) == SECRET
    assert door.resolve_connection().api_secret == SECRET


def test_rotation_re_encrypts_with_the_new_key_so_the_old_one_can_be_dropped(
    no_prime_environment, settings, capsys
):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.PORTAL_ENCRYPTION_KEYS = [old]
    _store()
    before = _column()

    settings.PORTAL_ENCRYPTION_KEYS = [new, old]
    call_command("rotate_encryption_key")
    after = _column()
    assert after != before
    assert "Re-encrypted 1 stored secret(s)" in capsys.readouterr().out

    settings.PORTAL_ENCRYPTION_KEYS = [new]
    assert door.resolve_connection().api_secret == SECRET
    settings.PORTAL_ENCRYPTION_KEYS = [old]
    with pytest.raises(door.PrimeNotConfigured, match="cannot be decrypted"):
        door.resolve_connection()

    (event,) = AuditEvent.objects.filter(action=AuditAction.ENCRYPTION_ROTATED)
    assert event.actor_label == "system:rotate_encryption_key"
    assert event.after["rotated"] == 1
    assert event.after["encryption_key_id"] == crypto.key_id(new.encode())
    text = json.dumps([event.before, event.after, event.message])
    assert SECRET not in text and new not in text and old not in text


def test_rotation_without_the_old_key_fails_and_changes_nothing(no_prime_environment, settings):
    settings.PORTAL_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    _store()
    before = _column()
    settings.PORTAL_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(CommandError, match="cannot be decrypted"):
        call_command("rotate_encryption_key")
    assert _column() == before
    assert not AuditEvent.objects.filter(action=AuditAction.ENCRYPTION_ROTATED).exists()


def test_development_derives_a_key_from_the_secret_key(no_prime_environment, settings):
    settings.PORTAL_ENCRYPTION_KEYS = []
    settings.PRODUCTION = False
    _store()
    assert SECRET not in _column()
    assert door.resolve_connection().api_secret == SECRET
    settings.SECRET_KEY = "another-secret-key-" * 4
    with pytest.raises(door.PrimeNotConfigured, match="cannot be decrypted"):
        door.resolve_connection()


def test_production_refuses_to_store_without_encryption_keys(settings):
    settings.PORTAL_ENCRYPTION_KEYS = []
    settings.PRODUCTION = True
    with pytest.raises(ImproperlyConfigured, match="PORTAL_ENCRYPTION_KEYS"):
        crypto.encrypt_secret(SECRET)
    assert [w.id for w in encryption_keys_set(None)] == ["connection.W001"]


def test_a_malformed_key_is_named_by_position_and_fails_the_system_check(settings):
    settings.PORTAL_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), "not-a-key"]
    with pytest.raises(ImproperlyConfigured, match="entry 2 is not a Fernet key"):
        crypto.encryption_keys()
    assert [e.id for e in encryption_keys_valid(None)] == ["connection.E001"]


def test_the_stored_row_is_a_single_row(no_prime_environment, encryption_key):
    _store()
    _store()
    assert StoredConnection.objects.count() == 1
