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
