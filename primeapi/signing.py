"""Kraken REST request signing (identical for Spot, Custody and Prime).

    API-Sign = base64(HMAC-SHA512(base64decode(secret), url_path + SHA256(nonce + body)))

``body`` is the exact byte string sent over the wire; it already contains the
nonce, so the nonce is hashed twice (once as the decimal prefix, once inside).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

__all__ = ["InvalidSecretError", "Signer", "decode_secret", "sign", "verify"]


class InvalidSecretError(ValueError):
    """The API secret is not valid base64; the message never contains the secret."""


def _as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def decode_secret(secret: str | bytes) -> bytes:
    """Decode a base64 API secret, raising InvalidSecretError (without the secret) on failure."""
    raw = _as_bytes(secret).strip()
    if not raw:
        raise InvalidSecretError("API secret is empty")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSecretError(
            f"API secret is not valid base64 ({len(raw)} characters); "
            "copy it again exactly as Kraken issued it"
        ) from None


def _digest(secret_bytes: bytes, url_path: str, nonce: int | str, body: bytes | str) -> bytes:
    inner = hashlib.sha256(str(nonce).encode("ascii") + _as_bytes(body)).digest()
    return hmac.new(secret_bytes, url_path.encode("utf-8") + inner, hashlib.sha512).digest()


def sign(*, secret: str | bytes, url_path: str, nonce: int | str, body: bytes | str) -> str:
    """Return the API-Sign header value for one request."""
    return base64.b64encode(_digest(decode_secret(secret), url_path, nonce, body)).decode("ascii")


def verify(
    *, secret: str | bytes, url_path: str, nonce: int | str, body: bytes | str, signature: str
) -> bool:
    """Constant-time check of an API-Sign value against the raw request bytes."""
    try:
        given = base64.b64decode(_as_bytes(signature), validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = _digest(decode_secret(secret), url_path, nonce, body)
    return hmac.compare_digest(given, expected)


class Signer:
    """sign() for one secret, decoding it once and reusing the keyed HMAC (hot path).

    The secret is decoded on first use, so a bad secret raises InvalidSecretError
    where sign() would. Nothing about the secret appears in repr().
    """

    __slots__ = ("_keyed", "_secret")

    def __init__(self, secret: str | bytes) -> None:
        self._secret = secret
        self._keyed: hmac.HMAC | None = None

    def sign(self, *, url_path: str, nonce: int | str, body: bytes | str) -> str:
        """Return the API-Sign header value; equal to sign(secret=..., ...)."""
        if self._keyed is None:
            self._keyed = hmac.new(decode_secret(self._secret), digestmod=hashlib.sha512)
        inner = hashlib.sha256(str(nonce).encode("ascii") + _as_bytes(body)).digest()
        # Copying a keyed HMAC skips the key schedule (two SHA-512 blocks) on every request.
        mac = self._keyed.copy()
        mac.update(url_path.encode("utf-8") + inner)
        return base64.b64encode(mac.digest()).decode("ascii")

    def __repr__(self) -> str:
        return "<Signer secret=<hidden>>"
