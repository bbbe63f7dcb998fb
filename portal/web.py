"""Small web helpers shared by every app: page-or-fragment, redirects, no-store, error pages.

htmx is answered one way everywhere: `wants_fragment()` decides page or fragment (a history
restore gets the whole page), `render_htmx()` renders it and varies on the htmx headers,
`redirect_to()` redirects an htmx request with HX-Redirect and a plain POST with a 302, and
`no_store()` keeps a response out of every cache.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from django.conf import settings
from django.contrib import messages
from django.forms.renderers import TemplatesSetting
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, resolve_url
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, get_script_prefix, reverse
from django.utils.cache import patch_cache_control, patch_vary_headers
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling, reswap

if TYPE_CHECKING:
    from django_htmx.middleware import HtmxDetails

    from portal.staff.models import Staff

R = TypeVar("R", bound=HttpResponseBase)

# The request headers a page-or-fragment answer depends on.
HTMX_VARY = ("HX-Request", "HX-History-Restore-Request")


class HtmxHttpRequest(HttpRequest):
    """A request that went through django-htmx's HtmxMiddleware (as every portal request does)."""

    htmx: HtmxDetails


class StaffRequest(HtmxHttpRequest):
    """A request from a signed-in staff member (the login middleware guarantees it)."""

    user: Staff


def is_htmx(request: HttpRequest) -> bool:
    """Whether htmx sent this request (HX-Request), whatever it wants back."""
    return bool(getattr(request, "htmx", False))


def wants_fragment(request: HttpRequest) -> bool:
    """An htmx request that wants a fragment (a history restore needs the whole page)."""
    htmx: HtmxDetails | None = getattr(request, "htmx", None)
    return htmx is not None and bool(htmx) and not htmx.history_restore_request


def vary_on_htmx(response: R) -> R:
    """Tell caches the answer depends on whether htmx asked."""
    patch_vary_headers(response, HTMX_VARY)
    return response


def render_htmx(
    request: HttpRequest,
    template: str,
    partial: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    stop_polling: bool = False,
) -> HttpResponse:
    """Render the whole page, or only its named partial when htmx asked for it.

    `stop_polling` answers with htmx's "stop polling" status (the content still swaps).
    """
    name = f"{template}#{partial}" if wants_fragment(request) else template
    content = render_to_string(name, context or {}, request=request)
    if stop_polling:
        response: HttpResponse = HttpResponseStopPolling(content)
    else:
        response = HttpResponse(content, status=status)
    vary_on_htmx(response)
    return response


def redirect_to(request: HttpRequest, to: Any, *args: Any, **kwargs: Any) -> HttpResponse:
    """After a POST: HX-Redirect for htmx (a 302 would be swapped into the widget), else a 302.

    `to` is what `django.shortcuts.redirect` takes: a URL, a view name with its arguments,
    or a model with `get_absolute_url()`.
    """
    url = resolve_url(to, *args, **kwargs)
    if is_htmx(request):
        response: HttpResponse = HttpResponseClientRedirect(url)
    else:
        response = redirect(url)
    vary_on_htmx(response)
    return response


# What reverse() leaves unquoted in an argument (django/urls/resolvers.py).
_URL_SAFE = "!$&'()*+,;=/~:@"
_PLACEHOLDERS = ("zqxplaceholderzqx", "987654321987")


@dataclass(frozen=True)
class RowUrl:
    """A URL pattern with one argument, reversed once: `RowUrl(...)(value)` is what
    `reverse(name, args=[value])` gives, without walking the URL resolver per row."""

    before: str
    after: str

    def __call__(self, value: object) -> str:
        return f"{self.before}{quote(str(value), safe=_URL_SAFE)}{self.after}"


def row_url(name: str) -> RowUrl:
    """The URL named `name` (one argument) as a RowUrl, reversed once per process."""
    return _row_url(name, get_script_prefix(), str(settings.ROOT_URLCONF))


@lru_cache(maxsize=256)
def _row_url(name: str, prefix: str, urlconf: str) -> RowUrl:
    for placeholder in _PLACEHOLDERS:
        try:
            url = reverse(name, args=[placeholder])
        except NoReverseMatch:
            continue
        if url.count(placeholder) == 1:
            before, after = url.split(placeholder)
            return RowUrl(before, after)
    raise NoReverseMatch(f"{name} does not take one argument")


def no_store(response: R) -> R:
    """Keep this response out of every cache (a secret, a one-time code, an export)."""
    patch_cache_control(response, no_store=True)
    return response


class FormRenderer(TemplatesSetting):
    """Forms render with the portal's templates: `{{ form }}` and `{{ form.x.as_field_group }}`."""

    form_template_name = "forms/form.html"
    field_template_name = "forms/field.html"


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

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not is_htmx(request):
            return response
        # A client redirect or a full refresh will show the messages on the next page.
        if "HX-Redirect" in response.headers or "HX-Refresh" in response.headers:
            return response
        if 300 <= response.status_code < 400 or response.status_code == 204:
            return response  # 204: htmx swaps nothing, so messages would be lost
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


def _error_page(request: HttpRequest, status: int, title: str, text: str) -> HttpResponse:
    if wants_fragment(request):
        # Leave the widget as it was and say why in the message area (out of band). Pending
        # messages go along, since a second out-of-band #messages would replace this one.
        pending = [*messages.get_messages(request), {"tags": "error", "message": text}]
        fragment = render_to_string(
            "_messages.html", {"messages": pending, "oob": True}, request=request
        )
        response = reswap(HttpResponse(fragment, status=status), "none")
        vary_on_htmx(response)
        return response
    page = render_to_string(
        "error.html", {"status": status, "title": title, "text": text}, request=request
    )
    response = HttpResponse(page, status=status)
    vary_on_htmx(response)
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
