"""The local mirror of Prime API keys. There is deliberately no column for a secret."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.conf import settings
from django.db import models

from portal.users.models import CHANGED_OUTSIDE_KEPT


class ApiKey(models.Model):
    """A Prime API user's key as Kraken last reported it, with who issued and revoked it."""

    prime_key_id = models.CharField(max_length=32, unique=True)
    user = models.ForeignKey("users.PrimeUser", on_delete=models.PROTECT, related_name="keys")
    public_key = models.CharField(max_length=128)
    label = models.CharField(max_length=100, blank=True)
    permissions = models.JSONField(default=list, blank=True)
    whitelisted_ips = models.JSONField(default=list, blank=True)
    # The key was issued with an allow-list, but setting it failed: usable from anywhere.
    no_allowlist_warning = models.BooleanField(default=False)
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField(null=True, blank=True)  # Kraken's updated_at
    last_synced_at = models.DateTimeField(null=True, blank=True)
    changed_outside_at = models.DateTimeField(null=True, blank=True)
    changed_outside = models.JSONField(default=list, blank=True)
    missing_upstream_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    revoke_reason = models.TextField(blank=True)

    class Meta:
        verbose_name = "API key"
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["user", "revoked_at"], name="keys_user_revoked_idx")]

    def __str__(self) -> str:
        return self.prime_key_id

    @property
    def is_active(self) -> bool:
        """Not revoked through the portal and still listed by Kraken."""
        return self.revoked_at is None and self.missing_upstream_at is None

    @property
    def usable_from_anywhere(self) -> bool:
        """An empty allow-list puts no restriction on where the key is used from."""
        return not self.whitelisted_ips

    def snapshot(self) -> dict[str, object]:
        """What Kraken holds about the key (never a secret), for audit before/after."""
        return {
            "id": self.prime_key_id,
            "user": self.user.prime_id if self.user_id else None,
            "public_key": self.public_key,
            "permissions": list(self.permissions),
            "whitelisted_ips": list(self.whitelisted_ips),
        }

    def flag_changed_outside(self, now: datetime, what: Sequence[str]) -> None:
        """Show the "changed outside the portal" badge, newest descriptions first (not saved)."""
        self.changed_outside_at = now
        self.changed_outside = [*what, *(self.changed_outside or [])][:CHANGED_OUTSIDE_KEPT]

    def mark_missing(self, now: datetime) -> None:
        """Kraken no longer lists the key (not saved)."""
        self.missing_upstream_at = now
        self.last_synced_at = now
        self.flag_changed_outside(now, ["no longer listed by Kraken"])


class KeyIssueRequest(models.Model):
    """One use of one issue form, reserved before Kraken is called: a form issues at most one key.

    A resubmitted form (reload after POST, double click, back and submit) finds its
    reservation and issues nothing. Holds no secret.
    """

    token = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey("users.PrimeUser", on_delete=models.CASCADE, related_name="+")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField()
    key = models.OneToOneField(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="issue_request"
    )

    def __str__(self) -> str:
        return f"issue request for {self.user_id} ({self.key_id or 'no key yet'})"


class SyncBaseline(models.Model):
    """The first full sync of an installation: what Kraken held then is the baseline.

    Users and keys it imports are not "changed outside the portal"; only differences
    found by later syncs need review. One row (the first full sync) is enough.
    """

    taken_at = models.DateTimeField()
    users = models.PositiveIntegerField(default=0)
    keys = models.PositiveIntegerField(default=0)
    actor_label = models.CharField(max_length=150, blank=True)

    def __str__(self) -> str:
        return f"baseline {self.taken_at:%Y-%m-%d %H:%M} ({self.users} users, {self.keys} keys)"
