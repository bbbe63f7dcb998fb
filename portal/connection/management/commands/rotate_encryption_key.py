"""Re-encrypt every stored Prime secret with the newest key in PORTAL_ENCRYPTION_KEYS."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from portal.actors import SystemActor
from portal.connection import crypto
from portal.connection.services import stored_secrets_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored Prime secret with the first (newest) key of "
        "PORTAL_ENCRYPTION_KEYS. Put the new key first, keep the old ones after it, run this, "
        "then remove the old keys."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            newest = crypto.key_id(crypto.encryption_keys()[0])
            count = stored_secrets_rotate(actor=SystemActor.ROTATE_ENCRYPTION_KEY)
        except (crypto.SecretUndecryptable, ImproperlyConfigured) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Re-encrypted {count} stored secret(s) with key {newest}. "
            "Keys after the first in PORTAL_ENCRYPTION_KEYS can now be removed."
        )
