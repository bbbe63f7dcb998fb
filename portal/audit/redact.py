"""Keep secrets out of the audit trail: three lines of defence, applied by `audit_record`.

1. By name: any mapping key that names a secret (``api_secret``, ``password``,
   ``API-Sign``, ``token``, ``Authorization``, ``cookie``, ``otp_code`` ...) has its
   value replaced by ``[redacted]``, at any depth.
2. By value: the caller passes the secret values it holds (``secrets=[...]``);
   every occurrence of one of them, anywhere in the event (any string, any key,
   any depth, the message and the target id), is replaced by ``[redacted]``.
   This catches a secret that travels under an innocent key name.  A secret
   shorter than `MIN_SECRET_LENGTH` characters is refused (it would blank out
   ordinary words).
3. By shape: a string that looks like a long base64 blob (at least 64
   characters, mixed case and digits, nothing but base64 characters) is
   replaced -- Kraken API secrets are 88 such characters.  Hex digests
   (one case only) and ids are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 8

# Compared against the key with case folded and `-`, `_`, `.` and spaces removed.
_SECRET_NAME = re.compile(
    r"secret|passw|passphrase|^pwd$|signature|apisign|token(?!ized)|authorization|cookie|"
    r"privatekey|sessionid|csrf|^t?otp(code|token|value)?$|^pin$",
)
_SEPARATORS = re.compile(r"[-_.\s]")
_BASE64_BLOB = re.compile(r"^[A-Za-z0-9+/]{64,}={0,2}$|^[A-Za-z0-9_-]{64,}={0,2}$")


def is_secret_name(key: Any) -> bool:
    """Whether a mapping key names a secret."""
    return bool(_SECRET_NAME.search(_SEPARATORS.sub("", str(key).lower())))


def looks_like_secret_blob(text: str) -> bool:
    """A long base64 string with mixed case and digits (a key secret, a token)."""
    if len(text) < 64 or not _BASE64_BLOB.match(text):
        return False
    return (
        any(c.islower() for c in text)
        and any(c.isupper() for c in text)
        and any(c.isdigit() for c in text)
    )


def check_secrets(secrets: Iterable[str]) -> tuple[str, ...]:
    """The non-empty secret values, longest first; refuse ones too short to scrub safely."""
    values = []
    for secret in secrets:
        if not secret:
            continue
        secret = str(secret)
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"audit_record(secrets=...) needs values of at least {MIN_SECRET_LENGTH} characters"
            )
        values.append(secret)
    return tuple(sorted(set(values), key=len, reverse=True))


def scrub_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Replace every occurrence of a secret value in a string."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if looks_like_secret_blob(text):
        return REDACTED
    return text


def redact(value: Any, secrets: tuple[str, ...] = ()) -> Any:
    """A copy of plain JSON data with secrets replaced by a marker (by name, value and shape)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            clean_key = scrub_text(str(key), secrets) if secrets else str(key)
            out[clean_key] = REDACTED if is_secret_name(key) else redact(item, secrets)
        return out
    if isinstance(value, list | tuple):
        return [redact(item, secrets) for item in value]
    if isinstance(value, str):
        return scrub_text(value, secrets)
    return value


def leaks(text: str, secrets: tuple[str, ...]) -> bool:
    """Whether any secret value still appears in a serialised event."""
    return any(secret in text for secret in secrets)
