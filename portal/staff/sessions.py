"""Sessions in the database, read with their person in one statement, written only when
they change or their idle mark is stale.

Django's `SESSION_SAVE_EVERY_REQUEST` writes the session on every request (an UPDATE and a
COMMIT per page view) just to push the idle expiry forward. Here the expiry the session
was loaded with is kept, and an unchanged session is written only when that expiry is
more than `REFRESH_AFTER_SECONDS` older than a fresh one: the idle timeout still holds,
to within a minute, for one write a minute instead of one per request.

Every request reads its session and then its person: here both are one statement
(`principal.read_with_session`: the session's row, unexpired, joined to the person and the
two-factor device it names). The rows are `PortalSession`s, Django's columns plus the person
and device copied from the data on every save.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore as DBStore
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY

from portal.staff.models import PortalSession
from portal.staff.principal import Also, Principal, device_pk, read_with_session

REFRESH_AFTER_SECONDS = 60


class SessionStore(DBStore):
    """The portal's sessions (`PortalSession`): read with the signed-in person in one
    statement, remembering the expiry they were loaded with."""

    loaded_expire_date: datetime | None = None
    # The person the session names, read with it (portal/staff/principal.py), and the
    # extra scalar subquery a caller wants answered in the same statement.
    principal: Principal | None = None
    principal_also: Also | None = None

    @classmethod
    def get_model_class(cls) -> Any:
        return PortalSession

    def create_model_instance(self, data: dict[str, Any]) -> Any:
        """The row to save, with the person and device copied from the data."""
        row: PortalSession = super().create_model_instance(data)  # type: ignore[assignment]
        staff = data.get(SESSION_KEY)
        row.staff_id = (
            int(staff) if isinstance(staff, (int, str)) and str(staff).isdigit() else None
        )
        row.otp_device_id = device_pk(data.get(DEVICE_ID_SESSION_KEY))
        return row

    def _get_session_from_db(self) -> Any:
        found = None
        self.principal = None
        if self.session_key is not None:
            found, self.principal = read_with_session(self.session_key, also=self.principal_also)
            if found is None:
                self._session_key = None  # as Django's store: a new session is made
        self.loaded_expire_date = found.expire_date if found is not None else None
        return found


def _stale(session: Any) -> bool:
    loaded = getattr(session, "loaded_expire_date", None)
    if loaded is None or not session.accessed or session.modified or session.is_empty():
        return False
    fresh = timezone.now() + timedelta(seconds=session.get_expiry_age())
    return loaded < fresh - timedelta(seconds=REFRESH_AFTER_SECONDS)


class PortalSessionMiddleware(SessionMiddleware):
    """Django's SessionMiddleware; also saves an unchanged session whose idle mark is stale
    (use with SESSION_SAVE_EVERY_REQUEST = False)."""

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        session = getattr(request, "session", None)
        if session is not None and _stale(session):
            session.modified = True
        return super().process_response(request, response)
