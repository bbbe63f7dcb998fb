"""Sign-in gates: every page needs a session, and two-factor where it applies."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

from asgiref.sync import sync_to_async
from django.contrib.auth.middleware import AuthenticationMiddleware, LoginRequiredMiddleware
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, resolve_url
from django.urls import reverse
from django.utils.deprecation import MiddlewareMixin
from django.utils.functional import SimpleLazyObject
from django_htmx.http import HttpResponseClientRedirect

from portal.staff import principal, selectors, session_access
from portal.staff.models import Staff
from portal.web import is_htmx

View = TypeVar("View", bound=Callable[..., HttpResponseBase])


def two_factor_exempt(view: View) -> View:
    """Mark a view a half-signed-in person may open (sign-out, the two-factor pages)."""
    view.two_factor_exempt = True  # type: ignore[attr-defined]
    return view


def _htmx_page_path(request: HttpRequest) -> str:
    """The page an htmx request came from (its own path when the header is missing)."""
    current = request.headers.get("HX-Current-URL", "")
    parts = urlsplit(current)
    if current and parts.path:
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return request.get_full_path()


def cached_user(request: HttpRequest) -> Any:
    """The request's person (read once per request, see PortalAuthenticationMiddleware)."""
    if not hasattr(request, "_cached_user"):
        request._cached_user = principal.user_for(request)  # type: ignore[attr-defined]
    return request._cached_user  # type: ignore[attr-defined]


class PortalAuthenticationMiddleware(AuthenticationMiddleware):
    """Django's AuthenticationMiddleware and django-otp's OTPMiddleware in one: the
    signed-in person, their verified two-factor device and the two-factor facts the gate
    below needs, read in one statement (portal/staff/principal.py) on first use."""

    def process_request(self, request: HttpRequest) -> None:
        super().process_request(request)  # Django's own check that sessions come first
        request.user = SimpleLazyObject(partial(cached_user, request))  # type: ignore[assignment]
        request.auser = partial(sync_to_async(cached_user), request)


class PortalLoginRequiredMiddleware(LoginRequiredMiddleware):
    """Django's LoginRequiredMiddleware; an htmx request is sent to sign in with a full page."""

    # Django's stub promises an HttpResponseRedirect; an htmx request gets django-htmx's
    # client redirect (HX-Redirect) instead, a sibling class.
    def handle_no_permission(  # type: ignore[override]
        self, request: HttpRequest, view_func: Callable[..., HttpResponseBase]
    ) -> HttpResponseBase:
        if not is_htmx(request):
            return super().handle_no_permission(request, view_func)
        login = resolve_url(self.get_login_url(view_func))
        target = f"{login}?{urlencode({'next': _htmx_page_path(request)})}"
        # 401, not a 302 that XHR would follow and swap the sign-in page into a widget.
        return HttpResponseClientRedirect(
            target,
            content="Your session has ended. Sign in again.",
            status=401,
            content_type="text/plain",
        )


class TwoFactorMiddleware(MiddlewareMixin):
    """After the password, a person with an authenticator app (or when an Admin requires
    one for everyone) sees nothing but the two-factor pages until the code is verified.

    Runs after PortalAuthenticationMiddleware, which gives `request.user.is_verified()`.
    """

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., HttpResponse],
        view_args: tuple[object, ...],
        view_kwargs: dict[str, object],
    ) -> HttpResponse | None:
        user = request.user
        if not isinstance(user, Staff) or not user.is_authenticated or user.is_verified():
            return None
        step = self.pending_step(user)
        # The frame hides navigation and the status strip while a step is pending.
        request.two_factor_pending = step is not None  # type: ignore[attr-defined]
        if step is None or getattr(view_func, "two_factor_exempt", False):
            return None
        if not getattr(view_func, "login_required", True):
            return None
        return self._send_to(request, reverse(step))

    @staticmethod
    def pending_step(user: Staff) -> str | None:
        """The two-factor page this person must go through first, or None."""
        # Read with the person (PortalAuthenticationMiddleware); asked here otherwise.
        facts: principal.Principal | None = getattr(user, "two_factor", None)
        if facts is not None:
            has_device, required = facts.has_confirmed_device, facts.two_factor_required
        else:
            has_device = selectors.otp_has_confirmed_device(staff=user)
            required = not has_device and selectors.two_factor_required()
        if has_device:
            return "staff:two-factor"
        if required:
            return "staff:two-factor-setup"
        return None

    @staticmethod
    def _send_to(request: HttpRequest, url: str) -> HttpResponse:
        if is_htmx(request):
            return HttpResponseClientRedirect(
                f"{url}?{urlencode({'next': _htmx_page_path(request)})}"
            )
        if request.method == "GET":
            return redirect(f"{url}?{urlencode({'next': request.get_full_path()})}")
        return redirect(url)


class SessionAccessMiddleware:
    """Gives the signed-in person their roles and permissions from the session (read from
    the database once per session; see portal/staff/session_access.py).

    After AuthenticationMiddleware; before anything that checks a permission.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        user = request.user
        if not user.is_authenticated:
            return self.get_response(request)
        # request.user is a lazy proxy: attributes set on it land on the Staff it wraps.
        staff: Staff = user
        session_access.apply(staff, request.session)
        token = session_access.bind(staff.pk, request.session)
        try:
            return self.get_response(request)
        finally:
            session_access.unbind(token)
