"""Sign-in events into the audit trail (Django's auth signals and django-axes' lockout)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model

from portal.audit.models import AuditAction, Outcome, TargetType
from portal.audit.services import audit_record

UNKNOWN_ACCOUNT = "(unknown)"


def _known_username(username: Any) -> str:
    """The typed username if it names an account; never record what might be a password."""
    if not isinstance(username, str) or not username:
        return UNKNOWN_ACCOUNT
    exists = get_user_model().objects.filter(username=username).exists()
    return username if exists else UNKNOWN_ACCOUNT


def on_logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    from portal.staff.selectors import otp_has_confirmed_device

    pending = otp_has_confirmed_device(staff=user)
    audit_record(
        actor=user,
        action=AuditAction.LOGIN_SUCCEEDED,
        target_type=TargetType.STAFF,
        target_id=user.get_username(),
        message="password accepted; two-factor code pending" if pending else "password accepted",
    )


def on_login_failed(sender: Any, credentials: dict, request: Any = None, **kwargs: Any) -> None:
    username = _known_username(credentials.get("username"))
    audit_record(
        actor=None,
        action=AuditAction.LOGIN_FAILED,
        target_type=TargetType.STAFF,
        target_id=username,
        outcome=Outcome.FAILED,
        message="wrong password" if username != UNKNOWN_ACCOUNT else "unknown username",
    )


def on_logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is None:
        return
    audit_record(
        actor=user,
        action=AuditAction.LOGOUT,
        target_type=TargetType.STAFF,
        target_id=user.get_username(),
    )


def on_locked_out(
    sender: Any, request: Any = None, username: Any = None, ip_address: Any = None, **kwargs: Any
) -> None:
    audit_record(
        actor=None,
        action=AuditAction.LOGIN_LOCKED_OUT,
        target_type=TargetType.STAFF,
        target_id=_known_username(username),
        outcome=Outcome.REFUSED,
        message=(
            f"locked out after {settings.AXES_FAILURE_LIMIT} failed sign-ins "
            f"(username and address {ip_address or 'unknown'})"
        ),
    )
