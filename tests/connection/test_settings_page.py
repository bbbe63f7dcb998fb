"""The Prime connection page: Admin-only, secret write-only, test button, audited changes."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.urls import reverse

from portal.actors import SystemActor
from portal.audit.models import AuditAction, AuditEvent, Outcome
from portal.connection.models import StoredConnection
from portal.connection.services import connection_store

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def _store(client, **data):
    return client.post(reverse("connection:save"), data=data, headers=HTMX)


def _events(action=AuditAction.CONNECTION_CHANGED):
    return list(AuditEvent.objects.filter(action=action).order_by("seq"))


def _event_text(event: AuditEvent) -> str:
    return json.dumps([event.before, event.after, event.prime_response, event.message], default=str)


@pytest.fixture
def signed_in_admin(client, admin):
    client.force_login(admin)
    return client


def test_an_admin_sees_the_page_and_that_the_environment_sets_the_connection(
    signed_in_admin, prime_settings
):
    response = signed_in_admin.get(reverse("connection:settings"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "the environment (PRIME_API_URL" in page
    assert "this page is read-only" in page
    assert 'name="api_key"' in page and "disabled" in page
    assert prime_settings.admin_secret not in page


def test_storing_keeps_only_an_encrypted_secret_and_never_shows_it(
    signed_in_admin, fresh_sandbox, no_prime_environment, encryption_key
):
    secret = fresh_sandbox.admin_secret
    response = _store(
        signed_in_admin,
        api_url=fresh_sandbox.url,
        api_key=fresh_sandbox.admin_key,
        api_secret=secret,
    )
    assert response.status_code == 200
    fragment = response.content.decode()
    assert "<html" not in fragment
    assert 'id="connection-form"' in fragment
    assert "A secret is stored, set on" in fragment
    assert "by ada.admin" in fragment
    assert secret not in fragment

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT secret_encrypted, fingerprint, api_key FROM connection_storedconnection"
        )
        row = cursor.fetchone()
    assert all(secret not in str(column) for column in row)

    page = signed_in_admin.get(reverse("connection:settings")).content.decode()
    assert secret not in page
    assert 'type="password" name="api_secret"' in page
    assert 'value="' + secret not in page


def test_every_change_is_audited_without_the_secret(
    signed_in_admin, fresh_sandbox, no_prime_environment, encryption_key
):
    secret = fresh_sandbox.admin_secret
    _store(
        signed_in_admin,
        api_url=fresh_sandbox.url,
        api_key=fresh_sandbox.admin_key,
        api_secret=secret,
    )
    _store(signed_in_admin, api_url=fresh_sandbox.url + "/", api_key=fresh_sandbox.admin_key)
    signed_in_admin.post(reverse("connection:clear"), headers=HTMX)
    events = _events()
    assert [e.outcome for e in events] == [Outcome.SUCCEEDED] * 3
    assert events[0].before is None and events[0].after["credential_stored"] is True
    assert "secret" in events[0].message
    assert events[2].after is None and events[2].message == "stored Prime connection removed"
    for event in events:
        assert secret not in _event_text(event)
        assert fresh_sandbox.admin_key not in _event_text(event)


def test_a_blank_secret_keeps_the_stored_one_for_the_same_key(
    signed_in_admin, fresh_sandbox, no_prime_environment, encryption_key
):
    _store(
        signed_in_admin,
        api_url="http://127.0.0.1:9",
        api_key=fresh_sandbox.admin_key,
        api_secret=fresh_sandbox.admin_secret,
    )
    set_at = StoredConnection.objects.get().secret_set_at
    response = _store(signed_in_admin, api_url=fresh_sandbox.url, api_key=fresh_sandbox.admin_key)
    assert response.status_code == 200
    stored = StoredConnection.objects.get()
    assert stored.api_url == fresh_sandbox.url
    assert stored.secret_set_at == set_at
    result = signed_in_admin.post(reverse("connection:test"), headers=HTMX).content.decode()
    assert "Connected: 127.0.0.1 (sandbox) answered ListPrimeApiUsers with 0 API users" in result


def test_a_new_key_needs_its_secret(signed_in_admin, no_prime_environment, encryption_key):
    connection_store(
        actor=SystemActor.COMMAND_LINE,
        api_url="http://127.0.0.1:9",
        api_key="A" * 56,
        api_secret="c2VjcmV0",
    )
    response = _store(signed_in_admin, api_url="http://127.0.0.1:9", api_key="B" * 56)
    assert response.status_code == 422
    assert "Enter the API secret that belongs to this key." in response.content.decode()
    assert StoredConnection.objects.get().api_key == "A" * 56


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"api_url": "ftp://x", "api_key": "K" * 56, "api_secret": "c2VjcmV0"}, "http(s) address"),
        ({"api_url": "http://", "api_key": "K" * 56, "api_secret": "c2VjcmV0"}, "http(s) address"),
        ({"api_url": "http://[::1", "api_key": "K" * 56, "api_secret": "c2VjcmV0"}, "http(s)"),
        ({"api_url": "http://a.b:99999", "api_key": "K" * 56, "api_secret": "c2VjcmV0"}, "http(s)"),
        ({"api_url": "https://a.b", "api_key": "K K", "api_secret": "c2VjcmV0"}, "public API key"),
        ({"api_url": "https://a.b", "api_key": "K" * 56, "api_secret": "no!"}, "not a Kraken API"),
        (
            {"api_url": "https://a.b", "api_key": "K" * 56, "api_secret": "é" * 8},
            "not a Kraken API",
        ),
        ({}, "This field is required."),
    ],
)
def test_bad_input_is_a_form_error_never_a_crash(
    signed_in_admin, no_prime_environment, encryption_key, data, words
):
    response = _store(signed_in_admin, **data)
    assert response.status_code == 422
    assert words in response.content.decode()
    assert not StoredConnection.objects.exists()


def test_the_test_button_says_plainly_when_nothing_is_configured(
    signed_in_admin, no_prime_environment
):
    response = signed_in_admin.post(reverse("connection:test"), headers=HTMX)
    assert response.status_code == 200
    fragment = response.content.decode()
    assert "<html" not in fragment
    assert 'id="connection-test"' in fragment
    assert "no Prime connection yet" in fragment


def test_the_test_button_reports_refused_credentials_in_plain_words(
    signed_in_admin, prime_settings, settings
):
    settings.PRIME_API_SECRET = "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA=="
    response = signed_in_admin.post(reverse("connection:test"), headers=HTMX)
    assert "did not accept the test call" in response.content.decode()
    assert "did not accept the portal&#x27;s credentials" in response.content.decode()


def test_the_test_button_works_without_javascript(signed_in_admin, prime_settings):
    response = signed_in_admin.post(reverse("connection:test"))
    page = response.content.decode()
    assert "<html" in page
    assert "Connected: 127.0.0.1 (sandbox)" in page


def test_changes_are_refused_and_audited_while_the_environment_sets_the_connection(
    signed_in_admin, prime_settings, encryption_key
):
    response = _store(
        signed_in_admin, api_url="http://127.0.0.1:9", api_key="K" * 56, api_secret="c2VjcmV0"
    )
    assert response.status_code == 409
    assert not StoredConnection.objects.exists()
    (event,) = _events()
    assert event.outcome == Outcome.REFUSED
    assert "takes precedence" in event.message


def test_a_half_set_environment_makes_the_page_read_only_not_broken(
    signed_in_admin, no_prime_environment, encryption_key
):
    no_prime_environment.PRIME_API_URL = "https://api.kraken.com"
    page = signed_in_admin.get(reverse("connection:settings")).content.decode()
    assert "set PRIME_API_KEY, PRIME_API_SECRET" in page
    response = _store(
        signed_in_admin, api_url="http://127.0.0.1:9", api_key="K" * 56, api_secret="c2VjcmV0"
    )
    assert response.status_code == 409


def test_removing_when_nothing_is_stored_says_so(signed_in_admin, no_prime_environment):
    response = signed_in_admin.post(reverse("connection:clear"), headers=HTMX)
    assert response.status_code == 200
    assert "There was no stored Prime connection to remove." in response.content.decode()
    assert _events() == []


def test_people_without_the_admin_role_are_refused(client, operator, no_prime_environment):
    client.force_login(operator)
    assert client.get(reverse("connection:settings")).status_code == 403
    response = client.post(
        reverse("connection:save"),
        data={"api_url": "http://127.0.0.1:9", "api_key": "K" * 56, "api_secret": "c2VjcmV0"},
    )
    assert response.status_code == 403
    assert not StoredConnection.objects.exists()
    assert AuditEvent.objects.filter(action=AuditAction.PERMISSION_REFUSED).count() == 1


def test_the_admin_navigation_links_to_the_page(client, admin, prime_settings):
    client.force_login(admin)
    page = client.get(reverse("home")).content.decode()
    assert f'href="{reverse("connection:settings")}"' in page
