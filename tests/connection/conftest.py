"""Fixtures for the Prime connection tests."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet


@pytest.fixture(autouse=True)
def _fresh_prime_process_state():
    """Per-process caches (clients, last health write) start empty in every test."""
    from portal.connection import door, health, nonce

    door.forget_clients()
    health.forget_written()
    nonce.forget_process_state()
    yield
    door.forget_clients()
    health.forget_written()
    nonce.forget_process_state()


@pytest.fixture
def no_prime_environment(settings):
    """Nothing in the environment: the stored connection (if any) is in force."""
    settings.PRIME_API_URL = ""
    settings.PRIME_API_KEY = ""
    settings.PRIME_API_SECRET = ""
    settings.PRIME_CREDENTIALS_FILE = ""
    return settings


@pytest.fixture
def encryption_key(settings):
    """One configured Fernet key."""
    key = Fernet.generate_key().decode()
    settings.PORTAL_ENCRYPTION_KEYS = [key]
    return key
