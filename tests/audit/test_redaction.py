"""Secrets never reach an event: by key name, by value passed in `secrets`, by shape."""

from __future__ import annotations

import base64
import json

import pytest
from django.db import connection

from portal.actors import SystemActor
from portal.audit.models import AuditAction, TargetType
from portal.audit.redact import REDACTED, is_secret_name, redact
from portal.audit.services import SecretInAuditEvent, audit_record

API_SECRET = base64.b64encode(bytes(range(7, 71))).decode()  # 88 chars, like Kraken's
PASSWORD = "hunter2-correct-horse"
SIGNATURE = "kbL8dRvq0xXxk2sFAuK5nVdPXwzQzJQeqsS2ZX7Z0+g="
INNOCENT_SECRET = "c2VjcmV0LXRoYXQtbG9va3MtbGlrZS1ub3RoaW5n"  # base64, 40 chars, under key "note"


def _all_stored_text() -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT actor_label, target_id, message, before, after, prime_response, user_agent "
            "FROM audit_auditevent"
        )
        return json.dumps(cursor.fetchall())


def test_no_secret_value_is_stored_anywhere(db, operator):
    audit_record(
        actor=operator,
        action=AuditAction.KEY_ISSUED,
        target_type=TargetType.KEY,
        target_id="KEY1",
        before={"password": PASSWORD, "profile": {"Password1": PASSWORD}},
        after={
            "api_key": "PUBLICKEY",
            "api_secret": API_SECRET,
            "nested": [{"deep": {"secret": API_SECRET}}],
            "note": f"copy of {INNOCENT_SECRET} for later",
            INNOCENT_SECRET: "used as a key name",
        },
        prime_response={
            "headers": {"API-Key": "PUBLICKEY", "API-Sign": SIGNATURE},
            "result": {"opaque": API_SECRET},
            "error": [f"EAPI:Invalid signature {SIGNATURE}"],
        },
        message=f"issued; secret was {INNOCENT_SECRET}",
        secrets=[INNOCENT_SECRET, SIGNATURE],
    )
    stored = _all_stored_text()
    for value in (API_SECRET, PASSWORD, SIGNATURE, INNOCENT_SECRET):
        assert value not in stored
        assert json.dumps(value)[1:-1] not in stored
    assert "PUBLICKEY" in stored  # the public key id stays: it says which key
    assert REDACTED in stored


def test_secret_names_are_recognised_whatever_their_spelling():
    for name in (
        "api_secret",
        "API-Sign",
        "password",
        "Authorization",
        "otp",
        "otp_code",
        "access_token",
        "Cookie",
        "private_key",
        "passphrase",
    ):
        assert is_secret_name(name), name
    for name in ("api_key", "otp_required", "asset_kind", "tokenized_equity", "status", "name"):
        assert not is_secret_name(name), name


def test_long_base64_blobs_are_redacted_but_hex_digests_are_kept():
    digest = "ab" * 32
    assert redact({"x": API_SECRET, "h": digest}) == {"x": REDACTED, "h": digest}


def test_a_too_short_secret_value_is_refused(db):
    with pytest.raises(ValueError, match="at least"):
        audit_record(
            actor=SystemActor.COMMAND_LINE,
            action=AuditAction.KEY_ISSUED,
            target_type=TargetType.KEY,
            secrets=["abc"],
        )


def test_an_event_is_refused_rather_than_stored_if_a_secret_survives(db, monkeypatch):
    monkeypatch.setattr("portal.audit.services.scrub_text", lambda text, secrets: text)
    with pytest.raises(SecretInAuditEvent):
        audit_record(
            actor=SystemActor.COMMAND_LINE,
            action=AuditAction.KEY_ISSUED,
            target_type=TargetType.KEY,
            message=f"oops {INNOCENT_SECRET}",
            secrets=[INNOCENT_SECRET],
        )
    assert INNOCENT_SECRET not in _all_stored_text()
