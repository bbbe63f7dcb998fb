"""Encryption at rest for the stored Prime secret: MultiFernet over PORTAL_ENCRYPTION_KEYS.

`PORTAL_ENCRYPTION_KEYS` is a comma-separated list of Fernet keys, newest first.
New tokens are made with the first key; every key in the list can decrypt, so a
key is rotated by putting a new one in front, running
`manage.py rotate_encryption_key`, and then dropping the old one.

In development, when no key is configured, one key is derived from SECRET_KEY so
the embedded default works out of the box. Production refuses to run without
PORTAL_ENCRYPTION_KEYS (a stored secret should not depend on the session key).
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

__all__ = [
    "SecretUndecryptable",
    "decrypt_secret",
    "encrypt_secret",
    "encryption_keys",
    "key_id",
    "multi_fernet",
    "rotate_token",
]


class SecretUndecryptable(Exception):
    """No configured encryption key can decrypt a stored token."""


def _derived_development_key() -> bytes:
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"prime-ops-portal",
        info=b"stored prime secret v1",
    )
    return base64.urlsafe_b64encode(hkdf.derive(str(settings.SECRET_KEY).encode("utf-8")))


def encryption_keys() -> list[bytes]:
    """The configured Fernet keys, newest first (raises if misconfigured)."""
    configured = [k.strip() for k in settings.PORTAL_ENCRYPTION_KEYS if k.strip()]
    if not configured:
        if getattr(settings, "PRODUCTION", False):
            raise ImproperlyConfigured(
                "Set PORTAL_ENCRYPTION_KEYS (one or more Fernet keys, newest first) to store "
                "a Prime secret in production."
            )
        return [_derived_development_key()]
    keys = []
    for position, key in enumerate(configured, start=1):
        try:
            Fernet(key.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise ImproperlyConfigured(
                f"PORTAL_ENCRYPTION_KEYS entry {position} is not a Fernet key "
                "(32 url-safe base64-encoded bytes; make one with "
                "`python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'`)."
            ) from None
        keys.append(key.encode("ascii"))
    return keys


def key_id(key: bytes) -> str:
    """A short, non-secret name for a key (for audit events and messages)."""
    return hashlib.sha256(b"fernet-key-id:" + key).hexdigest()[:12]


def multi_fernet() -> MultiFernet:
    """MultiFernet over the configured keys; the first one encrypts."""
    return MultiFernet([Fernet(key) for key in encryption_keys()])


def encrypt_secret(plaintext: str) -> str:
    """Encrypt a secret with the newest key; returns the Fernet token as text."""
    return multi_fernet().encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt_secret(token: str) -> str:
    """Decrypt a stored token with whichever configured key made it."""
    try:
        return multi_fernet().decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise SecretUndecryptable(
            "The stored Prime secret cannot be decrypted with any key in "
            "PORTAL_ENCRYPTION_KEYS. Put back the key it was stored with, or store the "
            "secret again on the Prime connection page."
        ) from None


def rotate_token(token: str) -> str:
    """Re-encrypt a token with the newest key (raises SecretUndecryptable)."""
    try:
        return multi_fernet().rotate(token.encode("ascii")).decode("ascii")
    except InvalidToken:
        raise SecretUndecryptable(
            "A stored Prime secret cannot be decrypted with any key in PORTAL_ENCRYPTION_KEYS; "
            "nothing was re-encrypted."
        ) from None
