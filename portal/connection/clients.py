"""Prime clients for the connection in force, cached per process.

Every client shares, per API key, a nonce counter in the database and a gate held
from taking a nonce until Kraken's answer arrives, so web workers and the poller
never trip ``EAPI:Invalid nonce`` (portal/connection/nonce.py), and reports each
call's outcome to the connection's health row that feeds the status strip
(portal/connection/health.py). Clients are cached per process, keyed on a
fingerprint of the credentials, so changed credentials take effect at the next call.

Part of the door to Kraken: services call Prime through portal/connection/door.py.
"""

from __future__ import annotations

import hashlib
import os
import threading

from django.conf import settings

from portal.connection.health import HealthObserver
from portal.connection.nonce import GatedSession, SharedNonce
from portal.connection.resolve import PrimeConnection, PrimeNotConfigured, resolve_connection
from primeapi.client import PrimeClient

__all__ = ["forget_clients", "get_prime_client"]

USER_AGENT = "prime-ops-portal/0.1"
_MAX_CACHED_CLIENTS = 8

_clients_lock = threading.Lock()
_clients: dict[str, PrimeClient] = {}


def forget_clients() -> None:
    """Drop every cached client (after a fork, and in tests)."""
    global _clients_lock
    _clients_lock = threading.Lock()
    _clients.clear()


if hasattr(os, "register_at_fork"):
    # A child must not share the parent's HTTP connections.
    os.register_at_fork(after_in_child=forget_clients)


def _build_client(connection: PrimeConnection, timeout: float) -> PrimeClient:
    nonce = SharedNonce(gate_timeout=timeout + 5)
    observer = HealthObserver(
        fingerprint=connection.fingerprint, api_url=connection.url, release=nonce.release
    )
    try:
        return PrimeClient(
            connection.url,
            connection.api_key,
            connection.api_secret,
            session=GatedSession(nonce),
            timeout=(min(3.05, timeout), timeout),
            nonce=nonce,
            observer=observer,
            user_agent=USER_AGENT,
        )
    except ValueError:
        raise PrimeNotConfigured(
            f"The Prime API secret from {connection.source.label} is not a valid Kraken "
            "secret (base64). Check it was copied whole."
        ) from None


def get_prime_client() -> PrimeClient:
    """The PrimeClient for the connection in force; raises PrimeNotConfigured if there is none."""
    connection = resolve_connection()
    timeout = float(settings.PRIME_TIMEOUT_SECONDS)
    if timeout <= 0:
        raise PrimeNotConfigured("PRIME_TIMEOUT_SECONDS must be a positive number of seconds.")
    material = "\0".join((connection.url, connection.api_key, connection.api_secret, repr(timeout)))
    cache_key = hashlib.sha256(material.encode("utf-8")).hexdigest()
    with _clients_lock:
        client = _clients.get(cache_key)
        if client is None:
            client = _build_client(connection, timeout)
            while len(_clients) >= _MAX_CACHED_CLIENTS:
                _clients.pop(next(iter(_clients)))
            _clients[cache_key] = client
    return client
