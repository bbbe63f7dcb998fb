"""Writes for Prime API keys, and for what spans a user and its keys.

    keys.py    issue (secret returned once, in memory), allow-lists, labels, revoke
    roles.py   a user's role: the permissions every one of its keys carries
    sync.py    prime_sync: reconcile the users' and the keys' mirrors with Kraken

The keys app depends on the users app, never the other way round.
"""

from portal.keys.services.keys import (
    ALLOWLIST_CHANGED_SINCE_PREVIEW,
    EMPTY_ALLOWLIST_NOT_CONFIRMED,
    AllowlistChangedSincePreview,
    AllowlistRefused,
    EmptyAllowlistNotConfirmed,
    IssuedKey,
    KeyAlreadyIssued,
    PrimeActionFailed,
    allowlist_check,
    key_issue,
    key_revoke,
    key_save_allowlist,
    key_update_allowlist,
    key_update_label,
)
from portal.keys.services.roles import (
    ROLE_ALREADY_HELD,
    ROLE_CHANGED_SINCE_PREVIEW,
    RoleAlreadyHeld,
    RoleChangedSincePreview,
    RoleChangeRefused,
    prime_user_change_role,
    role_change_check,
    role_mirror_store,
)
from portal.keys.services.sync import ProgressCallback, SyncReport, prime_sync

__all__ = [
    "ALLOWLIST_CHANGED_SINCE_PREVIEW",
    "EMPTY_ALLOWLIST_NOT_CONFIRMED",
    "ROLE_ALREADY_HELD",
    "ROLE_CHANGED_SINCE_PREVIEW",
    "AllowlistChangedSincePreview",
    "AllowlistRefused",
    "EmptyAllowlistNotConfirmed",
    "IssuedKey",
    "KeyAlreadyIssued",
    "PrimeActionFailed",
    "ProgressCallback",
    "RoleAlreadyHeld",
    "RoleChangeRefused",
    "RoleChangedSincePreview",
    "SyncReport",
    "allowlist_check",
    "key_issue",
    "key_revoke",
    "key_save_allowlist",
    "key_update_allowlist",
    "key_update_label",
    "prime_sync",
    "prime_user_change_role",
    "role_change_check",
    "role_mirror_store",
]
