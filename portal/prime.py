"""The portal's one door to Kraken: get_prime_client() and plain-words error messages.

This is the only module that reads the PRIME_* settings. Where the credentials
come from (the first that is set wins):

1. the environment: PRIME_API_URL, PRIME_API_KEY and PRIME_API_SECRET (each also
   as a ``_FILE`` variant); all three or none;
2. PRIME_CREDENTIALS_FILE: a JSON file ``{"api_key", "api_secret", "url"}`` as the
   sandbox writes it (the README's run command uses this);
3. the connection an Admin stored on the Prime connection page (the secret
   encrypted at rest, see portal/connection/crypto.py).

The environment wins so that a deployment is reproducible from its configuration;
while it sets the connection, the settings page shows it read-only.

Every client shares, per API key, a nonce counter in the database and a gate held
from taking a nonce until Kraken's answer arrives, so web workers and the poller
never trip ``EAPI:Invalid nonce`` (portal/connection/nonce.py), and reports each
call's outcome to the connection's health row that feeds the status strip
(portal/connection/health.py). Clients are cached per process, keyed on a
fingerprint of the credentials, so changed credentials take effect at the next call.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.db import models

from primeapi import errors as prime_errors
from primeapi.client import PrimeClient, mask_key

__all__ = [
    "ConnectionSource",
    "PrimeConnection",
    "PrimeNotConfigured",
    "describe_error",
    "environment_connection",
    "forget_clients",
    "get_prime_client",
    "health_fingerprint",
    "resolve_connection",
]

USER_AGENT = "prime-ops-portal/0.1"
_MAX_CACHED_CLIENTS = 8


class ConnectionSource(models.TextChoices):
    ENVIRONMENT = "environment", "the environment (PRIME_API_URL, PRIME_API_KEY, PRIME_API_SECRET)"
    CREDENTIALS_FILE = "credentials_file", "the credentials file named by PRIME_CREDENTIALS_FILE"
    SETTINGS_PAGE = "settings_page", "the Prime connection page"


class PrimeNotConfigured(prime_errors.PrimeError):
    """The portal has no usable Prime connection; the message says what to set, in plain words."""

    def __init__(self, message: str) -> None:
        super().__init__(message, outcome_unknown=False)


def health_fingerprint(url: str, api_key: str, api_secret: str) -> str:
    """Names one connection's health row; a changed URL, key or secret starts a new one."""
    material = "\0".join(("prime-connection-health-v1", url, api_key, api_secret))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def is_loopback_host(host: str) -> bool:
    """True for localhost and loopback addresses, where only the local sandbox can listen."""
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(
        ".localhost"
    ):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class PrimeConnection:
    """Where the portal talks to Prime, with which key, and where that came from."""

    url: str
    api_key: str
    api_secret: str = field(repr=False)
    source: ConnectionSource

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or self.url

    @property
    def is_sandbox(self) -> bool:
        """A loopback endpoint can only be the local sandbox; anything else counts as live."""
        return is_loopback_host(self.host)

    @property
    def key_hint(self) -> str:
        return mask_key(self.api_key)

    @property
    def fingerprint(self) -> str:
        return health_fingerprint(self.url, self.api_key, self.api_secret)


def _check_url(url: str, where: str) -> str:
    url = url.strip().rstrip("/")
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        valid = False
    if not valid:
        raise PrimeNotConfigured(
            f"{where} must be an http(s) address such as https://api.kraken.com, not {url!r}."
        )
    return url


def _from_credentials_file(path_text: str) -> PrimeConnection:
    path = Path(path_text)
    if not path.is_file():
        raise PrimeNotConfigured(
            f"PRIME_CREDENTIALS_FILE names {path}, which does not exist (yet). If it is the "
            "sandbox's credentials file, start the sandbox (the README's run command does)."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        url, api_key, api_secret = data["url"], data["api_key"], data["api_secret"]
    except (OSError, ValueError, KeyError, TypeError):
        raise PrimeNotConfigured(
            f"The Prime credentials file {path} is not JSON with url, api_key and api_secret."
        ) from None
    if not all(isinstance(v, str) and v.strip() for v in (url, api_key, api_secret)):
        raise PrimeNotConfigured(
            f"The Prime credentials file {path} has an empty url, api_key or api_secret."
        )
    return PrimeConnection(
        url=_check_url(url, f"The url in {path}"),
        api_key=api_key.strip(),
        api_secret=api_secret.strip(),
        source=ConnectionSource.CREDENTIALS_FILE,
    )


def environment_connection() -> PrimeConnection | None:
    """The connection the environment sets, or None; raises PrimeNotConfigured if half set."""
    values = {
        "PRIME_API_URL": (settings.PRIME_API_URL or "").strip(),
        "PRIME_API_KEY": (settings.PRIME_API_KEY or "").strip(),
        "PRIME_API_SECRET": (settings.PRIME_API_SECRET or "").strip(),
    }
    if any(values.values()):
        missing = [name for name, value in values.items() if not value]
        if missing:
            raise PrimeNotConfigured(
                f"The environment sets only part of the Prime connection: set {', '.join(missing)} "
                "as well (or the _FILE variant), or unset the others to use the stored connection."
            )
        return PrimeConnection(
            url=_check_url(values["PRIME_API_URL"], "PRIME_API_URL"),
            api_key=values["PRIME_API_KEY"],
            api_secret=values["PRIME_API_SECRET"],
            source=ConnectionSource.ENVIRONMENT,
        )
    if (settings.PRIME_CREDENTIALS_FILE or "").strip():
        return _from_credentials_file(settings.PRIME_CREDENTIALS_FILE.strip())
    return None


def resolve_connection() -> PrimeConnection:
    """The connection in force (environment first, then the stored one); raises if none."""
    found = environment_connection()
    if found is not None:
        return found
    from portal.connection.crypto import SecretUndecryptable
    from portal.connection.selectors import stored_credentials

    try:
        stored = stored_credentials()
    except SecretUndecryptable as exc:
        raise PrimeNotConfigured(str(exc)) from None
    if stored is None:
        raise PrimeNotConfigured(
            "The portal has no Prime connection yet. An Admin can store one on the Prime "
            "connection page, or set PRIME_API_URL, PRIME_API_KEY and PRIME_API_SECRET."
        )
    url, api_key, api_secret = stored
    return PrimeConnection(
        url=url, api_key=api_key, api_secret=api_secret, source=ConnectionSource.SETTINGS_PAGE
    )


# --- clients, cached per process --------------------------------------------------------

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
    from portal.connection.health import HealthObserver
    from portal.connection.nonce import GatedSession, SharedNonce

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


def describe_error(exc: Exception) -> str:
    """Say in plain words what went wrong with a Prime call and what the person can do next."""
    if isinstance(exc, PrimeNotConfigured):
        return f"Nothing was sent to Kraken: {exc}"
    if isinstance(exc, prime_errors.OutcomeUnknownError) or getattr(exc, "outcome_unknown", False):
        return (
            "Kraken did not answer in time, so the outcome is unknown. Nothing will be sent "
            "again automatically: resync to see what Kraken recorded before trying again."
        )
    if isinstance(exc, prime_errors.RateLimitedError):
        wait = getattr(exc, "retry_after", None)
        after = f" Try again in about {int(wait) + 1} seconds." if wait else " Try again shortly."
        return "Kraken is rate-limiting the portal's key." + after
    if isinstance(exc, prime_errors.InvalidArgumentsError):
        detail = getattr(exc, "detail", "") or ""
        return (
            f"Kraken refused the request as invalid{': ' + detail if detail else ''}. "
            "Nothing was changed; check the values and try again."
        )
    if isinstance(exc, prime_errors.PermissionDeniedError):
        return (
            "Kraken refused: the portal's Prime key lacks the permission for this. "
            "Nothing was changed; ask an Admin to check the Prime connection."
        )
    if isinstance(exc, prime_errors.InvalidKeyError | prime_errors.InvalidSignatureError):
        return (
            "Kraken did not accept the portal's credentials. Nothing was changed; "
            "ask an Admin to check the Prime connection."
        )
    if isinstance(exc, prime_errors.TemporaryLockoutError):
        return (
            "Kraken has temporarily locked the portal's key after repeated failures. "
            "Wait about 15 minutes, then try again."
        )
    if isinstance(exc, prime_errors.ServiceUnavailableError):
        return "Kraken is unavailable or busy right now. Nothing was changed; try again shortly."
    if isinstance(exc, prime_errors.TransportError):
        return (
            "The portal could not reach Kraken. Nothing was changed; check the status strip "
            "and try again shortly."
        )
    if isinstance(exc, prime_errors.PrimeError):
        shown = ", ".join(getattr(exc, "errors", ()) or ()) or "an unexpected error"
        return f"Kraken answered with {shown}. Nothing was changed."
    return "Something unexpected went wrong talking to Kraken. Nothing was changed."
