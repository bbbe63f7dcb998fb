"""The stored Prime connection, the shared nonce counter and the connection's health."""

from __future__ import annotations

from django.db import models


class StoredConnection(models.Model):
    """The Prime connection an Admin stored on the settings page (a single row, pk 1).

    The secret is kept only as a Fernet token (see crypto.py); the plaintext is
    never written to the database. `fingerprint` names the connection's health
    row without revealing anything about the secret.
    """

    SINGLETON_ID = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_ID)
    api_url = models.CharField(max_length=300)
    api_key = models.CharField(max_length=200)
    secret_encrypted = models.TextField()
    fingerprint = models.CharField(max_length=64)
    secret_set_at = models.DateTimeField()
    secret_set_by = models.CharField(max_length=150)
    updated_at = models.DateTimeField()
    updated_by = models.CharField(max_length=150)

    class Meta:
        verbose_name = "stored Prime connection"

    def __str__(self) -> str:
        return f"Prime connection to {self.api_url}"


class NonceCounter(models.Model):
    """The last nonce handed out for one API key, shared by every portal process.

    Keyed by the SHA-256 of the public API key, never the key itself.
    """

    key_fingerprint = models.CharField(max_length=64, primary_key=True)
    value = models.BigIntegerField()

    def __str__(self) -> str:
        return f"nonce {self.value} for key {self.key_fingerprint[:12]}…"


class HealthStatus(models.TextChoices):
    OK = "ok", "Connected"
    UNREACHABLE = "unreachable", "Unreachable"
    REFUSED = "refused", "Credentials refused"


class ConnectionHealth(models.Model):
    """What the portal's last calls to Kraken showed, per connection (url, key, secret)."""

    fingerprint = models.CharField(max_length=64, primary_key=True)
    api_url = models.CharField(max_length=300)
    status = models.CharField(max_length=16, choices=HealthStatus.choices)
    last_success_at = models.DateTimeField(null=True, blank=True)
    failing_since = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "connection health"

    def __str__(self) -> str:
        return f"{self.api_url}: {self.status}"
