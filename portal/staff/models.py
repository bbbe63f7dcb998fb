"""Portal accounts. Roles are Django groups (see roles.py); permissions live here."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.contrib.sessions.backends.base import SessionBase
from django.contrib.sessions.base_session import AbstractBaseSession
from django.db import models


class Staff(AbstractUser):
    """A person who signs in to the portal."""

    display_name = models.CharField(max_length=150, blank=True)
    # Not columns. The staff selectors set role_names (the roles held, in the roles'
    # order); django-otp's OTPMiddleware sets is_verified on the signed-in person.
    role_names: list[str]
    is_verified: Callable[[], bool]

    class Meta:
        verbose_name = "staff member"
        verbose_name_plural = "staff"
        permissions = [
            ("view_portal", "Read every page, including the audit trail"),
            ("manage_prime_users", "Create, rename, enable, disable and re-role Prime API users"),
            ("manage_keys", "Issue and revoke Prime API keys and edit their allow-lists"),
            ("request_settlement", "Create settlement batches and request settlement of legs"),
            ("approve_settlement", "Approve or reject settlement requests of others"),
            ("manage_staff", "Create staff, grant roles and require two-factor sign-in"),
            ("manage_connection", "Store and rotate the Prime connection credentials"),
        ]

    def __str__(self) -> str:
        return self.display_name or self.username


class PortalSecurity(models.Model):
    """The one row of portal-wide sign-in settings an Admin can change."""

    SINGLETON_ID = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_ID, editable=False)
    require_two_factor = models.BooleanField(default=False)
    changed_at = models.DateTimeField(null=True, blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        verbose_name = "portal security settings"
        verbose_name_plural = "portal security settings"

    def __str__(self) -> str:
        return f"two-factor {'required' if self.require_two_factor else 'optional'}"


class PortalSession(AbstractBaseSession):
    """Django's session row, plus the person it is signed in as and the two-factor device it
    was verified with, copied from the session's own data whenever it is saved
    (portal/staff/sessions.py). They let a request read its session and its person in one
    statement (portal/staff/principal.py), and an Admin's change find the sessions of the
    people it concerns without decoding every session. The data stays what counts: a
    request whose row disagrees with its data reads the person by the data."""

    staff_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    otp_device_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        db_table = "staff_session"
        verbose_name = "session"

    @classmethod
    def get_session_store_class(cls) -> type[SessionBase]:
        from portal.staff.sessions import SessionStore

        return SessionStore
