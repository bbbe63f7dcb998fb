"""Small web helpers shared by every app: page-or-fragment, htmx messages, error pages."""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string


def wants_fragment(request: HttpRequest) -> bool:
    """An htmx request that wants a fragment (a history restore needs the whole page)."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.history_restore_request


def render_htmx(
    request: HttpRequest,
    template: str,
    partial: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
) -> HttpResponse:
    """Render the whole page, or only its named partial when htmx asked for it."""
    name = f"{template}#{partial}" if wants_fragment(request) else template
    response = render(request, name, context or {}, status=status)
    response.headers["Vary"] = "HX-Request"
    return response


def client_ip(request: HttpRequest) -> str | None:
    """The client's address, counting PORTAL_TRUSTED_PROXY_COUNT proxies from the right."""
    hops = settings.PORTAL_TRUSTED_PROXY_COUNT
    candidate = request.META.get("REMOTE_ADDR") or ""
    if hops > 0:
        forwarded = [p.strip() for p in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [p for p in forwarded if p]
        if len(forwarded) >= hops:
            candidate = forwarded[-hops]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


def axes_client_ip(request: HttpRequest) -> str | None:
    """django-axes hook: the same client address the audit trail records."""
    return client_ip(request)


class HtmxMessagesMiddleware:
    """Deliver pending Django messages out of band on htmx responses."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not getattr(request, "htmx", False):
            return response
        # A client redirect or a full refresh will show the messages on the next page.
        if "HX-Redirect" in response.headers or "HX-Refresh" in response.headers:
            return response
        if 300 <= response.status_code < 400:
            return response
        if not response.get("Content-Type", "").startswith("text/html"):
            return response
        pending = list(messages.get_messages(request))
        if not pending:
            return response
        fragment = render_to_string(
            "_messages.html", {"messages": pending, "oob": True}, request=request
        )
        response.content = response.content + fragment.encode("utf-8")
        return response


def portal_context(request: HttpRequest) -> dict[str, Any]:
    """Template context every page needs: navigation by role and the person's roles."""
    from portal.staff.roles import Role, navigation_for

    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_items": [], "user_roles": [], "portal_env": settings.PORTAL_ENV}
    if getattr(request, "two_factor_pending", False):
        # Half signed in (password only): nothing to navigate to until the code is in.
        return {
            "nav_items": [],
            "user_roles": [],
            "portal_env": settings.PORTAL_ENV,
            "two_factor_pending": True,
        }
    nav = navigation_for(user)
    path = request.path
    for item in nav:
        item["active"] = path == item["url"] or path.startswith(item["url"].rstrip("/") + "/")
    # One query; groups that are not portal roles are left out.
    held = {name for name in user.groups.values_list("name", flat=True)}
    roles = [role.value for role in Role if role.value in held]
    return {"nav_items": nav, "user_roles": roles, "portal_env": settings.PORTAL_ENV}


def _error_page(request: HttpRequest, status: int, title: str, text: str) -> HttpResponse:
    if getattr(request, "htmx", False):
        # Leave the widget as it was and say why in the message area (out of band). Pending
        # messages go along, since a second out-of-band #messages would replace this one.
        pending = [*messages.get_messages(request), {"tags": "error", "message": text}]
        fragment = render_to_string(
            "_messages.html", {"messages": pending, "oob": True}, request=request
        )
        response = HttpResponse(fragment, status=status)
        response.headers["HX-Reswap"] = "none"
        response.headers["Vary"] = "HX-Request"
        return response
    response = render(
        request, "error.html", {"status": status, "title": title, "text": text}, status=status
    )
    response.headers["Vary"] = "HX-Request"
    return response


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """403: say plainly what is missing."""
    text = (
        str(exception)
        if exception and str(exception)
        else ("Your portal role does not allow this. Ask an Admin if you need it.")
    )
    return _error_page(request, 403, "Not allowed", text)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """404 in the portal's frame."""
    return _error_page(request, 404, "Not found", "There is nothing at this address.")


def server_error(request: HttpRequest) -> HttpResponse:
    """500 without a stack trace."""
    return _error_page(
        request,
        500,
        "Something went wrong",
        "The portal hit an unexpected error. Reload the page to see the current state "
        "before trying again, and tell the team if it keeps happening.",
    )
