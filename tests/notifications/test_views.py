"""The inbox, the preferences page and the Admin's webhooks (secrets never shown)."""

from __future__ import annotations

from django.urls import reverse

from portal.notifications.models import EventType, Preference, WebhookEndpoint
from portal.notifications.services import notify


def test_the_inbox_shows_my_notifications_only(client, operator, viewer):
    notify(
        event_type=EventType.LEG_FAILED,
        event_key="leg_failed:1",
        recipients=[operator],
        title="Leg settlement failed: BTC",
        body="",
        path="/settlement/B/",
    )
    client.force_login(operator)
    page = client.get(reverse("notifications:inbox"))
    assert b"Leg settlement failed: BTC" in page.content and b"1 unread" in page.content
    client.post(reverse("notifications:read"))
    assert b"unread" not in client.get(reverse("notifications:inbox")).content
    client.force_login(viewer)
    assert b"Leg settlement failed" not in client.get(reverse("notifications:inbox")).content


def test_preferences_are_saved_per_event(client, operator):
    hook = WebhookEndpoint.objects.create(name="ops", url="https://hooks.example.test/x")
    client.force_login(operator)
    assert client.get(reverse("notifications:preferences")).status_code == 200
    data = {f"email_{v}": "" for v in EventType.values}
    data["email_leg_failed"] = "on"
    data["webhook_leg_settled"] = str(hook.pk)
    answer = client.post(reverse("notifications:preferences"), data)
    assert answer.status_code == 302
    assert Preference.objects.get(staff=operator, event_type="leg_failed").email is True
    assert Preference.objects.get(staff=operator, event_type="change_waiting").email is False
    assert Preference.objects.get(staff=operator, event_type="leg_settled").webhook == hook
    bad = client.post(reverse("notifications:preferences"), {"webhook_leg_settled": "nope"})
    assert bad.status_code == 400


def test_an_admin_stores_a_webhook_secret_encrypted_and_never_sees_it_again(client, admin):
    client.force_login(admin)
    secret = "whsec-0123456789-abcdef"
    answer = client.post(
        reverse("notifications:webhooks"),
        {"name": "ops", "url": "https://hooks.example.test/x", "enabled": "on", "secret": secret},
    )
    assert answer.status_code == 302
    endpoint = WebhookEndpoint.objects.get()
    assert secret not in endpoint.secret_token
    from portal.connection.crypto import decrypt_secret

    assert decrypt_secret(endpoint.secret_token) == secret
    page = client.get(reverse("notifications:webhooks"))
    assert secret.encode() not in page.content
    assert "no-store" in page["Cache-Control"]
    edit = client.post(
        reverse("notifications:webhook-edit", args=[endpoint.pk]),
        {"name": "ops", "url": "https://hooks.example.test/y", "enabled": "on", "secret": ""},
    )
    assert edit.status_code == 302
    endpoint.refresh_from_db()
    assert decrypt_secret(endpoint.secret_token) == secret  # blank keeps the stored one
    refused = client.post(
        reverse("notifications:webhooks"), {"name": "x", "url": "ftp://a", "secret": ""}
    )
    assert refused.status_code == 400


def test_webhook_changes_are_audited_without_the_secret_or_the_address_path(client, admin):
    from portal.audit.models import AuditAction, AuditEvent

    client.force_login(admin)
    secret = "whsec-0123456789-abcdef"
    token_url = "https://hooks.example.test/services/T000/B000/tokentokentoken"
    client.post(
        reverse("notifications:webhooks"),
        {"name": "ops", "url": token_url, "enabled": "on", "secret": secret},
    )
    endpoint = WebhookEndpoint.objects.get()
    client.post(
        reverse("notifications:webhook-edit", args=[endpoint.pk]),
        {"name": "ops", "url": "https://other.example.test/x", "secret": ""},
    )
    client.post(reverse("notifications:webhook-delete", args=[endpoint.pk]))
    client.post(reverse("notifications:webhook-delete", args=[endpoint.pk]))  # gone: no event

    events = list(
        AuditEvent.objects.filter(target_type="webhook")
        .order_by("seq")
        .values("action", "actor_id", "target_id", "before", "after")
    )
    assert [e["action"] for e in events] == [
        AuditAction.WEBHOOK_SAVED,
        AuditAction.WEBHOOK_SAVED,
        AuditAction.WEBHOOK_REMOVED,
    ]
    assert {e["actor_id"] for e in events} == {admin.pk}
    assert {e["target_id"] for e in events} == {str(endpoint.pk)}
    created, changed, removed = events
    assert created["before"] is None
    assert created["after"] == {
        "name": "ops",
        "destination": "https://hooks.example.test",
        "enabled": True,
        "signing_key": "set",
    }
    assert changed["before"]["destination"] == "https://hooks.example.test"
    assert changed["after"]["destination"] == "https://other.example.test"
    assert changed["after"]["enabled"] is False and changed["after"]["signing_key"] == "kept"
    assert removed["before"]["name"] == "ops"
    stored = str(events)
    assert secret not in stored and "tokentokentoken" not in stored
    assert not WebhookEndpoint.objects.exists()
