"""Writes about the Prime connection: store or remove credentials, test, rotate encryption."""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from portal.actors import Actor, actor_label
from portal.audit.models import AuditAction, Outcome, TargetType
from portal.audit.services import audit_record
from portal.connection import crypto, door, resolve
from portal.connection.models import StoredConnection
from primeapi.client import mask_key

__all__ = [
    "ConnectionRefused",
    "ConnectionTestResult",
    "connection_clear",
    "connection_store",
    "connection_test",
    "stored_secrets_rotate",
]

TARGET_ID = "stored"


class ConnectionRefused(Exception):
    """A change to the stored connection the portal refuses; the message says why."""


def _snapshot(stored: StoredConnection | None) -> dict[str, object] | None:
    # Never the secret, nor anything derived from it: only whether one is stored and when.
    if stored is None:
        return None
    return {
        "api_url": stored.api_url,
        "api_key": mask_key(stored.api_key),
        "credential_stored": bool(stored.secret_encrypted),
        "credential_set_at": stored.secret_set_at.isoformat(),
        "credential_set_by": stored.secret_set_by,
    }


def _refuse_if_environment(*, actor: Actor, doing: str) -> None:
    try:
        found = door.environment_connection()
    except door.PrimeNotConfigured as exc:
        words = f"{exc} While the environment sets part of the connection, the page is read-only."
    else:
        if found is None:
            return
        words = (
            f"The Prime connection is set by {found.source.label}, which takes precedence, "
            f"so the portal does not {doing} the stored one. Change it where it is set."
        )
    audit_record(
        actor=actor,
        action=AuditAction.CONNECTION_CHANGED,
        target_type=TargetType.CONNECTION,
        target_id=TARGET_ID,
        outcome=Outcome.REFUSED,
        message=words,
    )
    raise ConnectionRefused(words)


def connection_store(
    *, actor: Actor, api_url: str, api_key: str, api_secret: str | None
) -> StoredConnection:
    """Store the Prime connection; a blank secret keeps the stored one (same key only)."""
    _refuse_if_environment(actor=actor, doing="change")
    api_url = api_url.strip().rstrip("/")
    api_key = api_key.strip()
    api_secret = (api_secret or "").strip() or None
    try:
        token = crypto.encrypt_secret(api_secret) if api_secret else None
    except ImproperlyConfigured as exc:
        raise ConnectionRefused(str(exc)) from None
    now = timezone.now()
    who = actor_label(actor)
    with transaction.atomic():
        stored = (
            StoredConnection.objects.select_for_update()
            .filter(pk=StoredConnection.SINGLETON_ID)
            .first()
        )
        before = _snapshot(stored)
        if api_secret is None:
            if stored is None or stored.api_key != api_key:
                raise ConnectionRefused(
                    "Enter the API secret: it belongs to the key, so a new key needs its secret."
                )
            try:
                api_secret = crypto.decrypt_secret(stored.secret_encrypted)
            except (crypto.SecretUndecryptable, ImproperlyConfigured) as exc:
                raise ConnectionRefused(str(exc)) from None
        if stored is None:
            stored = StoredConnection(pk=StoredConnection.SINGLETON_ID)
        stored.api_url = api_url
        stored.api_key = api_key
        stored.fingerprint = resolve.health_fingerprint(api_url, api_key, api_secret)
        if token is not None:
            stored.secret_encrypted = token
            stored.secret_set_at = now
            stored.secret_set_by = who
        stored.updated_at = now
        stored.updated_by = who
        stored.save()
        changed = [
            name
            for name, old, new in (
                ("address", before and before["api_url"], api_url),
                ("key", before and before["api_key"], mask_key(api_key)),
            )
            if old != new
        ] + (["secret"] if token is not None else [])
        audit_record(
            actor=actor,
            action=AuditAction.CONNECTION_CHANGED,
            target_type=TargetType.CONNECTION,
            target_id=TARGET_ID,
            before=before,
            after=_snapshot(stored),
            message=(
                f"stored Prime connection: changed {', '.join(changed)}"
                if changed
                else "stored Prime connection saved unchanged"
            ),
        )
    return stored


def connection_clear(*, actor: Actor) -> bool:
    """Forget the stored connection; False when there was none."""
    _refuse_if_environment(actor=actor, doing="remove")
    with transaction.atomic():
        stored = (
            StoredConnection.objects.select_for_update()
            .filter(pk=StoredConnection.SINGLETON_ID)
            .first()
        )
        if stored is None:
            return False
        before = _snapshot(stored)
        stored.delete()
        audit_record(
            actor=actor,
            action=AuditAction.CONNECTION_CHANGED,
            target_type=TargetType.CONNECTION,
            target_id=TARGET_ID,
            before=before,
            after=None,
            message="stored Prime connection removed",
        )
    return True


@dataclass(frozen=True)
class ConnectionTestResult:
    """The answer to "test connection", in plain words."""

    ok: bool
    message: str
    host: str = ""
    duration_ms: int = 0


def connection_test() -> ConnectionTestResult:
    """Call ListPrimeApiUsers with the connection in force and say what happened."""
    try:
        connection = door.resolve_connection()
    except door.PrimeNotConfigured as exc:
        return ConnectionTestResult(ok=False, message=door.describe_error(exc))
    started = time.monotonic()
    attempt = door.attempt_prime(lambda client: client.list_api_users())
    took = round((time.monotonic() - started) * 1000)
    if not attempt.done:
        return ConnectionTestResult(
            ok=False,
            message=f"{connection.host} did not accept the test call: {attempt.message}",
            host=connection.host,
            duration_ms=took,
        )
    count = len(attempt.result())
    return ConnectionTestResult(
        ok=True,
        message=(
            f"Connected: {connection.host} ({'sandbox' if connection.is_sandbox else 'live'}) "
            f"answered ListPrimeApiUsers with {count} API user{'' if count == 1 else 's'} "
            f"in {took} ms, using key {connection.key_hint} from {connection.source.label}."
        ),
        host=connection.host,
        duration_ms=took,
    )


def stored_secrets_rotate(*, actor: Actor) -> int:
    """Re-encrypt every stored secret with the newest key; returns how many were rotated."""
    newest = crypto.key_id(crypto.encryption_keys()[0])
    with transaction.atomic():
        rows = list(StoredConnection.objects.select_for_update().order_by("pk"))
        for row in rows:
            row.secret_encrypted = crypto.rotate_token(row.secret_encrypted)
            row.save(update_fields=["secret_encrypted"])
        audit_record(
            actor=actor,
            action=AuditAction.ENCRYPTION_ROTATED,
            target_type=TargetType.CONNECTION,
            target_id=TARGET_ID,
            after={"rotated": len(rows), "encryption_key_id": newest},
            message=f"re-encrypted {len(rows)} stored secret(s) with key {newest}",
        )
    return len(rows)
