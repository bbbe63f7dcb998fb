"""The Prime connection page (Admins): store credentials, test the connection, remove them."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.views.decorators.http import require_GET, require_POST

from portal.connection import door
from portal.connection.forms import ConnectionForm
from portal.connection.selectors import connection_status, stored_connection_get
from portal.connection.services import (
    ConnectionRefused,
    connection_clear,
    connection_store,
    connection_test,
)
from portal.staff.access import require_perm
from portal.staff.roles import MANAGE_CONNECTION
from portal.web import StaffRequest, render_htmx

TEMPLATE = "connection/settings.html"


def _page_context(form: ConnectionForm | None = None, **extra: object) -> dict[str, object]:
    stored = stored_connection_get()
    try:
        environment = door.environment_connection()
        environment_problem = ""
    except door.PrimeNotConfigured as exc:
        environment, environment_problem = None, str(exc)
    if form is None:
        initial = {"api_url": stored.api_url, "api_key": stored.api_key} if stored else None
        form = ConnectionForm(initial=initial, stored=stored)
    read_only = environment is not None or bool(environment_problem)
    if read_only:
        for field in form.fields.values():
            field.disabled = True
    return {
        "form": form,
        "stored": stored,
        "environment": environment,
        "environment_problem": environment_problem,
        "read_only": read_only,
        "status": connection_status(),
        **extra,
    }


@require_GET
@require_perm(MANAGE_CONNECTION)
def settings_page(request: StaffRequest) -> HttpResponse:
    """Where the connection comes from, the stored one (never its secret), and the forms."""
    return render_htmx(request, TEMPLATE, "connection-form", _page_context())


@require_POST
@require_perm(MANAGE_CONNECTION)
def save(request: StaffRequest) -> HttpResponse:
    """Store the URL, key and (write-only) secret."""
    form = ConnectionForm(request.POST, stored=stored_connection_get())
    if not form.is_valid():
        return render_htmx(request, TEMPLATE, "connection-form", _page_context(form), status=422)
    try:
        connection_store(
            actor=request.user,
            api_url=form.cleaned_data["api_url"],
            api_key=form.cleaned_data["api_key"],
            api_secret=form.cleaned_data["api_secret"] or None,
        )
    except ConnectionRefused as exc:
        messages.error(request, str(exc))
        return render_htmx(request, TEMPLATE, "connection-form", _page_context(form), status=409)
    messages.success(request, "Prime connection stored. Use “Test connection” to check it.")
    return render_htmx(request, TEMPLATE, "connection-form", _page_context())


@require_POST
@require_perm(MANAGE_CONNECTION)
def test(request: StaffRequest) -> HttpResponse:
    """Call ListPrimeApiUsers with the connection in force and show the answer."""
    result = connection_test()
    return render_htmx(request, TEMPLATE, "connection-test", _page_context(test_result=result))


@require_POST
@require_perm(MANAGE_CONNECTION)
def clear(request: StaffRequest) -> HttpResponse:
    """Forget the stored connection."""
    try:
        removed = connection_clear(actor=request.user)
    except ConnectionRefused as exc:
        messages.error(request, str(exc))
        return render_htmx(request, TEMPLATE, "connection-form", _page_context(), status=409)
    if removed:
        messages.success(request, "The stored Prime connection was removed.")
    else:
        messages.info(request, "There was no stored Prime connection to remove.")
    return render_htmx(request, TEMPLATE, "connection-form", _page_context())
