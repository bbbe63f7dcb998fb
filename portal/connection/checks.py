"""System checks for the Prime connection's configuration."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured


@register(Tags.security)
def encryption_keys_valid(app_configs: object, **kwargs: object) -> list[CheckMessage]:
    """Every PORTAL_ENCRYPTION_KEYS entry must be a Fernet key."""
    from portal.connection.crypto import encryption_keys

    if not settings.PORTAL_ENCRYPTION_KEYS:
        return []
    try:
        encryption_keys()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="connection.E001")]
    return []


@register(Tags.security, deploy=True)
def encryption_keys_set(app_configs: object, **kwargs: object) -> list[CheckMessage]:
    """Production should set PORTAL_ENCRYPTION_KEYS, or the settings page cannot store a secret."""
    if getattr(settings, "PRODUCTION", False) and not settings.PORTAL_ENCRYPTION_KEYS:
        return [
            Warning(
                "PORTAL_ENCRYPTION_KEYS is not set, so an Admin cannot store Prime credentials "
                "on the Prime connection page (credentials from the environment still work).",
                hint="Set PORTAL_ENCRYPTION_KEYS to one or more Fernet keys, newest first.",
                id="connection.W001",
            )
        ]
    return []
