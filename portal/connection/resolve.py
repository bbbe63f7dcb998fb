"""Which Prime connection is in force: resolved from the environment or the stored one.

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

Part of the door to Kraken (portal/connection/door.py is its front).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.db import models

from portal.connection.crypto import SecretUndecryptable, decrypt_secret
from portal.connection.models import StoredConnection
from primeapi import errors as prime_errors
from primeapi.client import mask_key

__all__ = [
    "ConnectionSource",
    "PrimeConnection",
    "PrimeNotConfigured",
    "environment_connection",
    "health_fingerprint",
    "is_loopback_host",
    "resolve_connection",
    "stored_credentials",
]


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


def stored_credentials() -> tuple[str, str, str] | None:
    """(url, api_key, secret) of the connection an Admin stored, decrypted; None when none."""
    stored = StoredConnection.objects.filter(pk=StoredConnection.SINGLETON_ID).first()
    if stored is None:
        return None
    return stored.api_url, stored.api_key, decrypt_secret(stored.secret_encrypted)


def resolve_connection() -> PrimeConnection:
    """The connection in force (environment first, then the stored one); raises if none."""
    found = environment_connection()
    if found is not None:
        return found
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
