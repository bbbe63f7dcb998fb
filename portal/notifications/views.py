"""The inbox, each person's preferences, and the Admin's webhooks."""

from __future__ import annotations

from collections.abc import Mapping

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from portal.notifications import services
from portal.notifications.forms import PreferencesForm, WebhookForm
from portal.notifications.models import EventType, WebhookEndpoint
from portal.staff.access import require_perm
from portal.staff.models import Staff
from portal.staff.roles import MANAGE_STAFF, VIEW_PORTAL
from portal.web import no_store, redirect_to


def _staff(request: HttpRequest) -> Staff:
    user = request.user
    if not isinstance(user, Staff):
        raise PermissionDenied
    return user


@require_GET
@require_perm(VIEW_PORTAL)
def inbox(request: HttpRequest) -> HttpResponse:
    """My recent notifications, newest first (unread ones marked)."""
    staff = _staff(request)
    context = {
        "notifications": services.inbox_for(staff),
        "unread": services.unread_count(staff),
    }
    return render(request, "notifications/inbox.html", context)


@require_POST
@require_perm(VIEW_PORTAL)
def mark_read(request: HttpRequest) -> HttpResponse:
    services.mark_all_read(_staff(request))
    return redirect_to(request, "notifications:inbox")


@require_http_methods(["GET", "POST"])
@require_perm(VIEW_PORTAL)
def preferences(request: HttpRequest) -> HttpResponse:
    """Which events reach me by email and by which webhook (the inbox always has them)."""
    staff = _staff(request)
    current = {value: services.preference_of(staff, value) for value in EventType.values}
    form = PreferencesForm(request.POST or None, current=current)
    if request.method == "POST" and form.is_valid():
        services.preferences_save(
            staff,
            {
                value: (form.cleaned_data[f"email_{value}"], form.cleaned_data[f"webhook_{value}"])
                for value in EventType.values
            },
        )
        messages.success(request, "Your notification settings are saved.")
        return redirect_to(request, "notifications:preferences")
    return render(
        request,
        "notifications/preferences.html",
        {"form": form, "has_email": bool(staff.email)},
        status=400 if request.method == "POST" else 200,
    )


def _webhook_form(
    request: HttpRequest, form: WebhookForm, template: str, context: Mapping[str, object]
) -> HttpResponse:
    """Save a valid posted webhook form (back to the list), else show it (never cached)."""
    if request.method == "POST" and form.is_valid():
        endpoint: WebhookEndpoint = form.save(commit=False)
        secret = form.cleaned_data.get("secret") or ""
        services.webhook_save(endpoint, secret=secret, actor=_staff(request))
        messages.success(request, "The webhook is saved.")
        return redirect_to(request, "notifications:webhooks")
    status = 400 if request.method == "POST" else 200
    return no_store(render(request, template, {"form": form, **context}, status=status))


@require_http_methods(["GET", "POST"])
@require_perm(MANAGE_STAFF)
def webhooks(request: HttpRequest) -> HttpResponse:
    """The webhook receivers people may choose (Admin). Secrets are write-only."""
    form = WebhookForm(request.POST or None)
    context = {"endpoints": WebhookEndpoint.objects.all()}
    return _webhook_form(request, form, "notifications/webhooks.html", context)


@require_http_methods(["GET", "POST"])
@require_perm(MANAGE_STAFF)
def webhook_edit(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = WebhookEndpoint.objects.filter(pk=pk).first()
    if endpoint is None:
        raise Http404
    form = WebhookForm(request.POST or None, instance=endpoint)
    context = {"endpoint": endpoint}
    return _webhook_form(request, form, "notifications/webhook_edit.html", context)


@require_POST
@require_perm(MANAGE_STAFF)
def webhook_delete(request: HttpRequest, pk: int) -> HttpResponse:
    if services.webhook_remove(pk, actor=_staff(request)):
        messages.success(request, "The webhook is removed.")
    return redirect_to(request, "notifications:webhooks")
