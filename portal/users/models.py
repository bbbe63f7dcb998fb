"""The local mirror of Kraken's Prime API users, plus what Kraken does not hold.

Kraken is the source of truth for name, role and status; the services that talk
to Kraken (and `prime_sync`) are the only writers of those fields. Owner, desk
and notes are portal-only labels.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from portal.db import KrakenMirror


class PrimeRole(models.TextChoices):
    VIEWER = "Viewer", "Viewer"
    TRADER = "Trader", "Trader"


class PrimeUserStatus(models.TextChoices):
    ENABLED = "Enabled", "Enabled"
    DISABLED = "Disabled", "Disabled"


class PrimeUser(KrakenMirror):
    """A Prime API user as Kraken last reported it."""

    prime_id = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=64)
    # Blank when Kraken reported a user without a role (never expected).
    role = models.CharField(max_length=16, choices=PrimeRole.choices, blank=True)
    status = models.CharField(
        max_length=16, choices=PrimeUserStatus.choices, default=PrimeUserStatus.ENABLED
    )
    owner_label = models.CharField(max_length=100, blank=True)
    desk_label = models.CharField(max_length=100, blank=True)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["name", "id"]
        indexes = [
            models.Index(fields=["name", "id"], name="users_name_id_idx"),
            models.Index(fields=["role", "status"], name="users_role_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prime_id})"

    @property
    def is_enabled(self) -> bool:
        """True while Kraken lets the user's keys sign requests."""
        return self.status == PrimeUserStatus.ENABLED

    def snapshot(self) -> dict[str, str]:
        """The fields Kraken holds, for audit before/after."""
        return {"id": self.prime_id, "name": self.name, "role": self.role, "status": self.status}

    def labels(self) -> dict[str, str]:
        """The portal-only fields, for audit before/after."""
        return {"owner": self.owner_label, "desk": self.desk_label, "notes": self.notes}
