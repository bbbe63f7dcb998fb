"""Re-authentication at the moment of approval: the person's TOTP code, or a recent one.

A confirmed code is remembered in the session for `APPROVALS_STEP_UP_WINDOW_SECONDS`
(default 300); within that window the next approval records the method ``recent``
unless the policy asks for a code every time. A TOTP code works once per time step
(django-otp refuses a step it has accepted), so two approvals in one 30-second step
need the window or the next code.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal.approvals import messages
from portal.approvals.models import StepUpMethod
from portal.approvals.services.common import ApprovalError
from portal.staff.models import Staff

SESSION_KEY = "approvals_step_up_at"
DEFAULT_WINDOW_SECONDS = 300


def _window() -> int:
    return int(getattr(settings, "APPROVALS_STEP_UP_WINDOW_SECONDS", DEFAULT_WINDOW_SECONDS))


def step_up_is_recent(*, session: SessionBase, now: float | None = None) -> bool:
    """Whether the person confirmed their second factor within the window."""
    at = session.get(SESSION_KEY)
    if not isinstance(at, int | float):
        return False
    now = time.time() if now is None else now
    return 0 <= now - at <= _window()


def step_up_confirm(
    *, staff: Staff, session: SessionBase, code: str, every_time: bool
) -> StepUpMethod:
    """The method that confirms this approval, or ApprovalError (code missing or wrong)."""
    if not every_time and step_up_is_recent(session=session):
        return StepUpMethod.RECENT
    code = (code or "").strip().replace(" ", "")
    refusal = ""
    with transaction.atomic():
        device = (
            TOTPDevice.objects.select_for_update()
            .filter(user=staff, confirmed=True)
            .order_by("pk")
            .first()
        )
        if device is None:
            refusal = messages.STEP_UP_NO_DEVICE
        elif not code:
            refusal = messages.STEP_UP_NEEDED
        elif not device.verify_is_allowed()[0]:
            refusal = messages.STEP_UP_THROTTLED
        # verify_token() refuses a time step it already accepted and counts failures
        # (committed: the refusal is raised after the block).
        elif not (code.isdigit() and len(code) <= 10 and device.verify_token(code)):
            refusal = messages.STEP_UP_WRONG
    if refusal:
        raise ApprovalError(refusal)
    session[SESSION_KEY] = time.time()
    return StepUpMethod.TOTP
