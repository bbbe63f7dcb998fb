"""The batch page's live poll, answered early when nothing changed.

Every person watching a batch polls its live fragment every few seconds, carrying the
version the fragment was drawn from (`?v=`). When nothing changed, the answer is `204 No
Content` (htmx leaves the fragment alone). That answer needs only what the view itself
checks: a signed-in person past the two-factor gate, allowed to read the portal, and the
version. This middleware, right after the session middleware, gives that answer with the
same code the rest of the chain and the view use:

- the person, their two-factor device and the two-factor facts
  (`portal.staff.principal.user_for`, as `PortalAuthenticationMiddleware` reads them, and
  kept for it: a poll that goes on reads nothing twice), with the batch's number asked in
  the same statement (`live_version.number_statement`);
- the two-factor gate's own rule (`TwoFactorMiddleware.pending_step`);
- roles and permissions from the session (`session_access.apply`);
- the version made from the number as the view makes it (`live_version.version_of`),
  compared with `?v=`.

Anything else (signed out, half signed in, no permission, a changed or unknown batch, a
page without the header, any other URL) goes on through the whole chain unchanged, which
answers as it always did. So the early answer is only ever the 204 the view would give,
without the middleware that has nothing to do for it (CSRF, messages, htmx details, the
audit's request context) and without resolving the view's decorators. The session
middleware around it still saves a session that changed or whose idle mark is stale.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.urls import Resolver404, resolve
from django.utils.cache import patch_vary_headers

from portal.settlement import views
from portal.settlement.live_version import number_statement, version_of, viewer_of
from portal.staff import principal, session_access
from portal.staff.middleware import TwoFactorMiddleware
from portal.staff.roles import VIEW_PORTAL
from portal.web import HTMX_VARY

_SUFFIX = "/live/"


class LivePollMiddleware:
    """Answers an unchanged live poll with 204 before the rest of the chain."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if (
            request.method == "GET"
            and request.path_info.endswith(_SUFFIX)
            and request.headers.get("HX-Request") == "true"
            and request.headers.get("HX-History-Restore-Request") != "true"
            and "v" in request.GET
            and _unchanged(request)
        ):
            response = HttpResponse(status=204)
            patch_vary_headers(response, ("Cookie", *HTMX_VARY))
            # What XFrameOptionsMiddleware, skipped here, adds to every answer.
            response.headers.setdefault("X-Frame-Options", settings.X_FRAME_OPTIONS.upper())
            return response
        return self.get_response(request)


def _unchanged(request: HttpRequest) -> bool:
    try:
        match = resolve(request.path_info, getattr(request, "urlconf", None))
    except Resolver404:
        return False
    if match.func is not views.batch_live:
        return False
    prime_batch_id = match.kwargs["prime_batch_id"]
    # The session, the person and the batch's number in one statement; the person is kept
    # for the rest of the chain.
    number = (f"({number_statement(connection.vendor)})", [prime_batch_id])
    request.session.principal_also = number  # type: ignore[attr-defined]  # read with the session
    user = principal.user_for(request, also=number)
    request._cached_user = user  # type: ignore[attr-defined]
    if not user.is_authenticated:
        return False
    if not user.is_verified() and TwoFactorMiddleware.pending_step(user) is not None:
        return False
    session_access.apply(user, request.session)
    if not user.has_perm(VIEW_PORTAL):
        return False
    version = version_of(prime_batch_id, user.two_factor.also, viewer_of(user))
    return version is not None and request.GET["v"] == version
