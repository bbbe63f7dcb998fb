"""get_prime_client(): where credentials come from, which wins, caching, plain-words errors."""

from __future__ import annotations

import json

import pytest

from portal.connection import door
from portal.connection.services import connection_store
from primeapi.client import PrimeClient

pytestmark = pytest.mark.django_db


def test_it_calls_the_sandbox_with_the_environment_credentials(prime_settings):
    client = door.get_prime_client()
    assert isinstance(client, PrimeClient)
    assert client.base_url == prime_settings.url
    assert client.list_api_users() == ()


def test_the_environment_wins_over_the_stored_connection(
    prime_settings, no_prime_environment, admin, encryption_key
):
    connection_store(
        actor=admin, api_url="http://127.0.0.1:9", api_key="K" * 56, api_secret="c2VjcmV0"
    )
    no_prime_environment.PRIME_API_URL = prime_settings.url
    no_prime_environment.PRIME_API_KEY = prime_settings.admin_key
    no_prime_environment.PRIME_API_SECRET = prime_settings.admin_secret
    found = door.resolve_connection()
    assert found.source == door.ConnectionSource.ENVIRONMENT
    assert door.get_prime_client().base_url == prime_settings.url


def test_it_uses_the_stored_connection_when_the_environment_sets_none(
    fresh_sandbox, no_prime_environment, admin, encryption_key
):
    connection_store(
        actor=admin,
        api_url=fresh_sandbox.url,
        api_key=fresh_sandbox.admin_key,
        api_secret=fresh_sandbox.admin_secret,
    )
    found = door.resolve_connection()
    assert found.source == door.ConnectionSource.SETTINGS_PAGE
    assert found.api_secret == fresh_sandbox.admin_secret
    assert door.get_prime_client().list_api_users() == ()


def test_it_reads_the_sandbox_credentials_file(fresh_sandbox, no_prime_environment, tmp_path):
    path = tmp_path / "sandbox-credentials.json"
    path.write_text(json.dumps(fresh_sandbox.admin_credentials()))
    no_prime_environment.PRIME_CREDENTIALS_FILE = str(path)
    found = door.resolve_connection()
    assert found.source == door.ConnectionSource.CREDENTIALS_FILE
    assert door.get_prime_client().list_api_users() == ()


def test_it_says_plainly_when_nothing_is_configured(no_prime_environment):
    with pytest.raises(door.PrimeNotConfigured) as caught:
        door.get_prime_client()
    words = door.describe_error(caught.value)
    assert "no Prime connection" in words
    assert "Prime connection page" in words


def test_it_names_the_missing_variable_when_the_environment_is_half_set(no_prime_environment):
    no_prime_environment.PRIME_API_URL = "https://api.kraken.com"
    no_prime_environment.PRIME_API_KEY = "K" * 56
    with pytest.raises(door.PrimeNotConfigured, match="PRIME_API_SECRET"):
        door.get_prime_client()


def test_a_missing_credentials_file_is_explained(no_prime_environment, tmp_path):
    no_prime_environment.PRIME_CREDENTIALS_FILE = str(tmp_path / "nope.json")
    with pytest.raises(door.PrimeNotConfigured, match="does not exist"):
        door.get_prime_client()


def test_a_secret_that_is_not_base64_is_refused_without_showing_it(no_prime_environment):
    no_prime_environment.PRIME_API_URL = "https://api.kraken.com"
    no_prime_environment.PRIME_API_KEY = "K" * 56
    no_prime_environment.PRIME_API_SECRET = "not base64 at all!!"
    with pytest.raises(door.PrimeNotConfigured) as caught:
        door.get_prime_client()
    assert "not base64 at all" not in str(caught.value)
    assert "base64" in str(caught.value)


def test_it_reuses_the_client_until_the_credentials_change(prime_settings, settings):
    first = door.get_prime_client()
    assert door.get_prime_client() is first
    settings.PRIME_API_SECRET = "c2VjcmV0LXR3bw=="
    second = door.get_prime_client()
    assert second is not first
    settings.PRIME_API_SECRET = prime_settings.admin_secret
    assert door.get_prime_client() is first


def test_the_not_configured_error_is_a_prime_error_so_services_handle_it(no_prime_environment):
    from primeapi.errors import PrimeError

    assert issubclass(door.PrimeNotConfigured, PrimeError)
    assert not door.PrimeNotConfigured("x").outcome_unknown


def test_a_loopback_address_is_the_sandbox_and_anything_else_is_live():
    def kind(url: str) -> bool:
        return door.PrimeConnection(url=url, api_key="k", api_secret="s", source="x").is_sandbox

    assert kind("http://127.0.0.1:8765")
    assert kind("http://localhost:8765")
    assert kind("http://[::1]:8765")
    assert not kind("https://api.kraken.com")
    assert not kind("http://10.0.0.5:8765")


def test_the_connection_repr_never_shows_the_secret():
    found = door.PrimeConnection(
        url="https://api.kraken.com", api_key="K" * 56, api_secret="c2VjcmV0", source="x"
    )
    assert "c2VjcmV0" not in repr(found)


@pytest.mark.parametrize("url", ["ftp://x", "http://[::1", "http://h:99999", "api.kraken.com"])
def test_a_bad_address_in_the_environment_is_explained(no_prime_environment, url):
    no_prime_environment.PRIME_API_URL = url
    no_prime_environment.PRIME_API_KEY = "K" * 56
    no_prime_environment.PRIME_API_SECRET = "c2VjcmV0"
    with pytest.raises(door.PrimeNotConfigured, match="PRIME_API_URL must be an http"):
        door.get_prime_client()
