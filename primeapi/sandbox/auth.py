"""Kraken-style request authentication, in the order fixed by docs/prime-choices.md.

1. key (missing, unknown, deleted, or owned by a Disabled user) → ``EAPI:Invalid key``;
   a locked-out key → ``EGeneral:Temporary lockout``;
2. body unparseable → ``EGeneral:Invalid arguments``; nonce missing or not an unsigned
   64-bit integer (JSON integer or numeric string) → ``EAPI:Invalid nonce``;
3. HMAC over the raw received bytes → ``EAPI:Invalid signature``;
4. nonce not strictly greater than the key's last accepted one → ``EAPI:Invalid nonce``;
   past this point the nonce is consumed;
5. per-key rate limit → ``EAPI:Rate limit exceeded``;
6. allow-list, then role → ``EGeneral:Permission denied`` (done by the caller).
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from primeapi.sandbox.state import ApiKey, KrakenError, SandboxState, Settings, User
from primeapi.signing import verify

UINT64_MAX = 2**64 - 1

INVALID_KEY = "EAPI:Invalid key"
INVALID_NONCE = "EAPI:Invalid nonce"
INVALID_SIGNATURE = "EAPI:Invalid signature"
INVALID_ARGUMENTS = "EGeneral:Invalid arguments"
PERMISSION_DENIED = "EGeneral:Permission denied"
TEMPORARY_LOCKOUT = "EGeneral:Temporary lockout"
RATE_LIMIT_EXCEEDED = "EAPI:Rate limit exceeded"

# Spot REST tiers (REFERENCE §3): (maximum counter, decay per second).
RATE_TIERS: dict[str, tuple[float, float]] = {
    "starter": (15, 0.33),
    "intermediate": (20, 0.5),
    "pro": (20, 1.0),
}
RATE_LIMIT_CHOICES = ("off", *RATE_TIERS)


@dataclass
class Authenticated:
    """A request that passed steps 1-5."""

    key: ApiKey
    user: User | None
    nonce: int
    params: dict[str, Any]
    form: bool


@dataclass
class Guard:
    """Ephemeral per-key counters: auth failures, lockouts and the rate-limit counter."""

    failures: dict[str, deque[float]] = field(default_factory=dict)
    locked_until: dict[str, float] = field(default_factory=dict)
    counters: dict[str, tuple[float, float]] = field(default_factory=dict)

    def clear(self) -> None:
        """Forget all lockouts, failures and counters."""
        self.failures.clear()
        self.locked_until.clear()
        self.counters.clear()

    def is_locked(self, key_id: str, now: float) -> bool:
        """True while the key is locked out."""
        until = self.locked_until.get(key_id)
        if until is None:
            return False
        if now >= until:
            del self.locked_until[key_id]
            return False
        return True

    def record_failure(self, key_id: str, now: float, settings: Settings) -> None:
        """Count a bad signature/nonce; too many within the window lock the key."""
        window = self.failures.setdefault(key_id, deque())
        window.append(now)
        while window and window[0] <= now - settings.lockout_window:
            window.popleft()
        if len(window) >= settings.lockout_threshold:
            self.locked_until[key_id] = now + settings.lockout_duration
            window.clear()

    def take_call(self, key_id: str, now: float, settings: Settings) -> bool:
        """Add one call to the key's counter; False (counter untouched) if it would overflow."""
        tier = RATE_TIERS.get(settings.rate_limit)
        if tier is None:
            return True
        maximum, decay = tier
        value, last = self.counters.get(key_id, (0.0, now))
        value = max(0.0, value - decay * (now - last))
        if value + 1 > maximum:
            self.counters[key_id] = (value, now)
            return False
        self.counters[key_id] = (value + 1, now)
        return True


def parse_body(raw: bytes, content_type: str) -> tuple[dict[str, Any], bool]:
    """Parse a JSON or form body; returns (params, is_form) or raises Invalid arguments."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    is_form = media_type == "application/x-www-form-urlencoded" or (
        media_type != "application/json" and not raw.lstrip().startswith(b"{")
    )
    try:
        text = raw.decode("utf-8")
        if is_form:
            return parse_qs(text, keep_blank_values=True, strict_parsing=bool(text)), True
        params = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        raise KrakenError(INVALID_ARGUMENTS) from None
    if not isinstance(params, dict):
        raise KrakenError(INVALID_ARGUMENTS)
    return params, False


def extract_nonce(params: dict[str, Any], form: bool) -> tuple[int, str]:
    """Return (value, decimal text as sent) or raise Invalid nonce."""
    value = params.get("nonce")
    if form:
        value = value[0] if isinstance(value, list) and len(value) == 1 else None
    if isinstance(value, bool):
        raise KrakenError(INVALID_NONCE)
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        # python-kraken-sdk and Kraken's own snippets send the nonce as a string;
        # the signed prefix is exactly the text that was sent.
        text = value
    else:
        raise KrakenError(INVALID_NONCE)
    number = int(text)
    if not 0 <= number <= UINT64_MAX:
        raise KrakenError(INVALID_NONCE)
    return number, text


def authenticate(
    state: SandboxState,
    guard: Guard,
    settings: Settings,
    *,
    url_path: str,
    headers: Any,
    raw: bytes,
    now: float,
) -> Authenticated:
    """Run steps 1-5 (module docstring) at ``now`` (the sandbox clock, seconds).

    Consumes the nonce once 3 and 4 pass.
    """
    api_key = headers.get("API-Key")
    key = state.key_by_public(api_key.strip()) if api_key else None
    if key is None:
        raise KrakenError(INVALID_KEY)
    user = state.owner(key)
    if key.user_id is not None and (user is None or user.status != "Enabled"):
        raise KrakenError(INVALID_KEY)
    if guard.is_locked(key.id, now):
        raise KrakenError(TEMPORARY_LOCKOUT)

    params, form = parse_body(raw, headers.get("Content-Type", ""))
    try:
        nonce, nonce_text = extract_nonce(params, form)
    except KrakenError:
        guard.record_failure(key.id, now, settings)
        raise

    signature = headers.get("API-Sign", "")
    if not verify(
        secret=key.secret, url_path=url_path, nonce=nonce_text, body=raw, signature=signature
    ):
        guard.record_failure(key.id, now, settings)
        raise KrakenError(INVALID_SIGNATURE)

    if key.last_nonce is not None and nonce <= key.last_nonce:
        guard.record_failure(key.id, now, settings)
        raise KrakenError(INVALID_NONCE)
    key.last_nonce = nonce

    if not guard.take_call(key.id, now, settings):
        raise KrakenError(RATE_LIMIT_EXCEEDED)
    return Authenticated(key=key, user=user, nonce=nonce, params=params, form=form)
