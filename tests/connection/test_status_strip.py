"""The status strip on every signed-in page, and the health the client records for it."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.connection import door, health
from portal.connection.models import ConnectionHealth, HealthStatus
from portal.connection.selectors import connection_status
from portal.connection.services import connection_store
from primeapi.errors import (
    ConnectFailedError,
    InvalidArgumentsError,
    InvalidSignatureError,
    OutcomeUnknownError,
    ResponseTimeoutError,
    ServiceUnavailableError,
)

pytestmark = pytest.mark.django_db


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _home(client, user) -> str:
    client.force_login(user)
    response = client.get(reverse("home"))
    assert response.status_code == 200
    return response.content.decode()


def test_it_shows_the_endpoint_sandbox_and_last_successful_call(client, viewer, prime_settings):
    door.get_prime_client().list_api_users()
    page = _home(client, viewer)
    assert 'id="prime-status"' in page
    assert "<strong>127.0.0.1</strong>" in page
    assert ">sandbox<" in page
    assert "Last successful call" in page
    assert "unreachable" not in page


def test_a_live_address_is_labelled_live(client, viewer, settings):
    settings.PRIME_API_URL = "https://api.kraken.com"
    settings.PRIME_API_KEY = "K" * 56
    settings.PRIME_API_SECRET = "c2VjcmV0"
    page = _home(client, viewer)
    assert "<strong>api.kraken.com</strong>" in page
    assert ">live<" in page
    assert "No successful call yet" in page


def test_a_red_banner_says_kraken_is_unreachable_after_a_transport_failure(
    client, viewer, prime_settings, settings
):
    door.get_prime_client().list_api_users()
    settings.PRIME_API_URL = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(ConnectFailedError):
        door.get_prime_client().list_api_users()
    page = _home(client, viewer)
    assert 'class="banner bad" role="alert"' in page
    assert "Kraken is unreachable since" in page
    assert "pages show the last known data" in page


def test_the_banner_goes_away_once_a_call_succeeds(client, viewer, prime_settings):
    prime_settings.control.inject_fault("http_500", "ListPrimeApiUsers", count=4)
    with pytest.raises(ServiceUnavailableError):
        door.get_prime_client().list_api_users()
    assert "Kraken is unreachable since" in _home(client, viewer)
    door.get_prime_client().list_api_users()
    assert "Kraken is unreachable since" not in _home(client, viewer)


def test_refused_credentials_get_their_own_banner(client, viewer, prime_settings, settings):
    settings.PRIME_API_SECRET = "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA=="
    with pytest.raises(InvalidSignatureError):
        door.get_prime_client().list_api_users()
    page = _home(client, viewer)
    assert "Kraken has refused the portal's credentials since" in page


def test_anonymous_pages_have_no_strip_and_cost_no_strip_query(
    client, prime_settings, django_assert_num_queries
):
    response = client.get(reverse("staff:login"))
    assert b'id="prime-status"' not in response.content


def test_the_strip_costs_one_query_with_the_environment(prime_settings, django_assert_num_queries):
    door.get_prime_client().list_api_users()
    with django_assert_num_queries(1):
        status = connection_status()
    assert status.last_success_at is not None


def test_the_strip_costs_one_query_with_a_stored_connection(
    fresh_sandbox, no_prime_environment, admin, encryption_key, django_assert_num_queries
):
    connection_store(
        actor=admin,
        api_url=fresh_sandbox.url,
        api_key=fresh_sandbox.admin_key,
        api_secret=fresh_sandbox.admin_secret,
    )
    door.get_prime_client().list_api_users()
    with django_assert_num_queries(1):
        status = connection_status()
    assert status.source == door.ConnectionSource.SETTINGS_PAGE
    assert status.last_success_at is not None
    assert status.host == "127.0.0.1"


def test_an_unconfigured_portal_says_so_and_points_admins_to_the_page(
    client, admin, no_prime_environment
):
    page = _home(client, admin)
    assert "Prime: not connected." in page
    assert reverse("connection:settings") in page


def test_unchanged_health_is_written_at_most_once_per_interval():
    args = {"fingerprint": "f" * 64, "api_url": "http://127.0.0.1:1", "error": None}
    assert health.record_call(ok=True, **args)
    assert not health.record_call(ok=True, **args)
    failure = ConnectFailedError("down")
    assert health.record_call(ok=False, **{**args, "error": failure})
    assert not health.record_call(ok=False, **{**args, "error": failure})
    assert health.record_call(ok=True, **args)


# Rows written by the test itself must be committed: on PostgreSQL the health
# upsert runs on its own connection while the test's transaction is open.
@pytest.mark.django_db(transaction=True)
def test_a_failure_older_than_a_recorded_success_does_not_raise_the_banner():
    fingerprint = "e" * 64
    ConnectionHealth.objects.create(
        fingerprint=fingerprint,
        api_url="http://127.0.0.1:1",
        status=HealthStatus.OK,
        last_success_at=timezone.now(),
        updated_at=timezone.now(),
    )
    # This failing call started 30 s ago, before the success above was recorded.
    health.record_call(
        fingerprint=fingerprint,
        api_url="http://127.0.0.1:1",
        ok=False,
        error=ResponseTimeoutError("slow"),
        duration_s=30,
    )
    assert ConnectionHealth.objects.get(pk=fingerprint).status == HealthStatus.OK


# Rows written by the test itself must be committed: on PostgreSQL the health
# upsert runs on its own connection while the test's transaction is open.
@pytest.mark.django_db(transaction=True)
def test_failing_since_stays_at_the_first_failure_of_a_streak():
    fingerprint = "d" * 64
    args = {"fingerprint": fingerprint, "api_url": "http://127.0.0.1:1", "ok": False}
    health.record_call(error=ConnectFailedError("down"), **args)
    first = ConnectionHealth.objects.get(pk=fingerprint).failing_since
    ConnectionHealth.objects.filter(pk=fingerprint).update(
        failing_since=first - timedelta(minutes=5)
    )
    health.forget_written()
    health.record_call(error=ConnectFailedError("down"), **args)
    row = ConnectionHealth.objects.get(pk=fingerprint)
    assert row.failing_since == first - timedelta(minutes=5)
    assert row.status == HealthStatus.UNREACHABLE


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (None, HealthStatus.OK),
        (ConnectFailedError("x"), HealthStatus.UNREACHABLE),
        (ServiceUnavailableError(errors=["EService:Unavailable"]), HealthStatus.UNREACHABLE),
        (OutcomeUnknownError(ResponseTimeoutError("x")), HealthStatus.UNREACHABLE),
        (InvalidSignatureError(errors=["EAPI:Invalid signature"]), HealthStatus.REFUSED),
        (InvalidArgumentsError(errors=["EGeneral:Invalid arguments"]), health.CONTACT),
    ],
)
def test_each_outcome_is_classified(error, expected):
    assert health.classify(error is None, error) == expected
