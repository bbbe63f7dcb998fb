"""Sessions in the database, written only when they change or their idle mark is stale.

Django's `SESSION_SAVE_EVERY_REQUEST` writes the session on every request (an UPDATE and a
COMMIT per page view) just to push the idle expiry forward. Here the expiry the session
was loaded with is kept, and an unchanged session is written only when that expiry is
more than `REFRESH_AFTER_SECONDS` older than a fresh one: the idle timeout still holds,
to within a minute, for one write a minute instead of one per request.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib.sessions.backends.db import SessionStore as DBStore
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

REFRESH_AFTER_SECONDS = 60


class SessionStore(DBStore):
    """The database session store, remembering the expiry it read."""

    loaded_expire_date: datetime | None = None

    def _get_session_from_db(self) -> Any:
        found = super()._get_session_from_db()  # type: ignore[misc]
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
