"""Prime API users: list (search as you type), create, and one user's panel of actions.

The role change and the resync buttons of the panel are served by the keys app
(`portal.keys.views`): they touch the user's keys too, and this app never imports keys.
They answer with this panel through `user_panel` / `user_panel_done`.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.safestring import SafeString
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from portal.fragments import cached_jinja
from portal.staff.access import require_perm
from portal.staff.roles import MANAGE_PRIME_USERS, VIEW_PORTAL
from portal.users import approvals, selectors, services
from portal.users.forms import (
    LabelsForm,
    PrimeUserCreateForm,
    RenameForm,
    ReviewForm,
    RoleForm,
    StatusForm,
    UserFilterForm,
)
from portal.users.models import PrimeUser, PrimeUserStatus
from portal.web import StaffRequest, redirect_to, render_htmx, row_url, wants_fragment

PANEL = ("users/detail.html", "user-panel")
ROWS = "users/_rows.jinja"
# Rows are keyed by what they show, so this only bounds how long an unused entry stays.
ROWS_CACHE_SECONDS = 300
# Every column of a row plus its key count: whatever the rows template shows of a user.
_ROW_STATE = attrgetter(*(f.attname for f in PrimeUser._meta.concrete_fields), "key_count")
# What the person is told (the tests reuse these).
STATUS_CHOICE_MISSING = "Choose Enabled or Disabled."
REVIEW_FORM_BROKEN = "Reload the page and review the differences it shows."
USER_CREATED = "Prime user {name} created ({role})."
USER_RENAMED = "Renamed {old} to {new}."
USER_STATUS_NOW = "{name} is now {state}."
USER_LABELS_SAVED = "Labels of {name} saved."
DIFFERENCES_REVIEWED = "Differences of {name} marked reviewed."
DIFFERENCES_ALREADY_REVIEWED = "Someone already reviewed the differences of {name}."


def _get_user(prime_id: str) -> PrimeUser:
    user = selectors.prime_user_get(prime_id=prime_id)
    if user is None:
        raise Http404("No such Prime user in the portal.")
    return user


@require_GET
@require_perm(VIEW_PORTAL)
def user_list(request: StaffRequest) -> HttpResponse:
    """The mirror of Prime API users, searchable and filtered as you type."""
    form = UserFilterForm(request.GET)
    filters = form.values()
    page = selectors.prime_user_list(
        search=filters.get("q", ""),
        role=filters.get("role", ""),
        status=filters.get("status", ""),
        after=filters.get("after") or None,
        before=filters.get("before") or None,
    )
    filtered = any(filters.get(k) for k in ("q", "role", "status"))
    context = {
        "filter_form": form,
        "page": page,
        "rows_html": _rows_html(request, page.rows, filtered=filtered),
        "links": page.links(request.GET),
        "filtered": filtered,
    }
    return render_htmx(request, "users/list.html", "user-results", context)


def _rows_html(request: StaffRequest, users: list[PrimeUser], *, filtered: bool) -> SafeString:
    """The list's rows, from the shared cache when the same rows were drawn for a viewer
    with the same rights (the key holds every value shown, the permission and the links'
    URL patterns)."""
    can_review = request.user.has_perm(MANAGE_PRIME_USERS)
    values = {"rows": users, "filtered": filtered, "can_review": can_review}
    links = [row_url(name) for name in ("users:detail", "users:review", "keys:list")]
    state = (filtered, can_review, links, [_ROW_STATE(user) for user in users])
    return cached_jinja(ROWS, values, request, depends_on=state, timeout=ROWS_CACHE_SECONDS)


@require_http_methods(["GET", "POST"])
@require_perm(MANAGE_PRIME_USERS)
def user_create(request: StaffRequest) -> HttpResponse:
    """Create a Prime API user (Viewer or Trader) with its portal labels."""
    form = PrimeUserCreateForm(request.POST or None)
    context: dict[str, Any] = {"form": form}
    if request.method == "POST":
        if not form.is_valid():
            return render_htmx(request, "users/create.html", "create-form", context, status=422)
        data = form.cleaned_data
        try:
            done = approvals.prime_user_request_create(
                actor=request.user,
                name=data["name"],
                role=data["role"],
                owner_label=data["owner_label"],
                desk_label=data["desk_label"],
                notes=data["notes"],
            )
        except services.PrimeActionFailed as failure:
            context.update(error=failure.message, unknown=failure.outcome_unknown)
            return render_htmx(request, "users/create.html", "create-form", context)
        except approvals.ChangeRefused as refused:
            context.update(error=refused.message)
            return render_htmx(request, "users/create.html", "create-form", context)
        if done.sent_for_approval or not isinstance(done.value, PrimeUser):
            messages.info(request, done.message)
            return redirect_to(request, "users:list")
        user = done.value
        messages.success(request, USER_CREATED.format(name=user.name, role=user.role))
        return redirect_to(request, "users:detail", prime_id=user.prime_id)
    return render_htmx(request, "users/create.html", "create-form", context)


def _panel_context(user: PrimeUser, **extra: Any) -> dict[str, Any]:
    context: dict[str, Any] = {
        "prime_user": user,
        "rename_form": RenameForm(initial={"name": user.name}),
        "role_form": RoleForm(initial={"role": user.role}),
        "labels_form": LabelsForm(
            initial={
                "owner_label": user.owner_label,
                "desk_label": user.desk_label,
                "notes": user.notes,
            }
        ),
        "enable_status": PrimeUserStatus.ENABLED,
        "disable_status": PrimeUserStatus.DISABLED,
    }
    context.update(extra)
    return context


def user_panel(
    request: HttpRequest, user: PrimeUser, *, status: int = 200, **extra: Any
) -> HttpResponse:
    """The user's panel (htmx) or page, with `extra` context (a bound form, an error...)."""
    return render_htmx(request, *PANEL, _panel_context(user, **extra), status=status)


def user_panel_done(request: HttpRequest, user: PrimeUser, message: str) -> HttpResponse:
    """After a change: the panel in place (htmx) or back to the page (POST/redirect/GET)."""
    messages.success(request, message)
    if wants_fragment(request):
        return user_panel(request, _get_user(user.prime_id))
    return redirect("users:detail", prime_id=user.prime_id)


def user_panel_sent(
    request: HttpRequest, user: PrimeUser, requested: approvals.Requested
) -> HttpResponse:
    """A change that waits for an approver: say so, linking to the request."""
    messages.info(request, requested.message)
    if wants_fragment(request):
        return user_panel(request, _get_user(user.prime_id), sent=requested.change)
    return redirect("users:detail", prime_id=user.prime_id)


def user_panel_refused(
    request: HttpRequest, user: PrimeUser, refused: approvals.ChangeRefused
) -> HttpResponse:
    """The engine refused the change (target unreadable or changed): the panel says why."""
    return user_panel(request, _get_user(user.prime_id), error=refused.message)


def user_panel_failed(
    request: HttpRequest, user: PrimeUser, failure: services.PrimeActionFailed, **extra: Any
) -> HttpResponse:
    """The fresh panel saying why Kraken did not do it (and offering a resync if unknown)."""
    return user_panel(
        request,
        _get_user(user.prime_id),
        error=failure.message,
        unknown=failure.outcome_unknown,
        **extra,
    )


@require_GET
@require_perm(VIEW_PORTAL)
def user_detail(request: StaffRequest, prime_id: str) -> HttpResponse:
    """One user: what Kraken holds, the portal's labels, and the actions."""
    return user_panel(request, _get_user(prime_id))


@require_POST
@require_perm(MANAGE_PRIME_USERS)
def user_rename(request: StaffRequest, prime_id: str) -> HttpResponse:
    user = _get_user(prime_id)
    form = RenameForm(request.POST)
    if not form.is_valid():
        return user_panel(request, user, rename_form=form, status=422)
    old = user.name
    try:
        services.prime_user_rename(user=user, actor=request.user, name=form.cleaned_data["name"])
    except services.PrimeActionFailed as failure:
        return user_panel_failed(request, user, failure, rename_form=form)
    return user_panel_done(request, user, USER_RENAMED.format(old=old, new=user.name))


@require_POST
@require_perm(MANAGE_PRIME_USERS)
def user_status(request: StaffRequest, prime_id: str) -> HttpResponse:
    user = _get_user(prime_id)
    form = StatusForm(request.POST)
    if not form.is_valid():
        return user_panel(request, user, status_error=STATUS_CHOICE_MISSING, status=422)
    try:
        done = approvals.prime_user_request_status(
            user=user, actor=request.user, status=form.cleaned_data["status"]
        )
    except services.PrimeActionFailed as failure:
        return user_panel_failed(request, user, failure)
    except approvals.ChangeRefused as refused:
        return user_panel_refused(request, user, refused)
    if done.sent_for_approval:
        return user_panel_sent(request, user, done)
    user = _get_user(prime_id)
    verb = "enabled" if user.is_enabled else "disabled"
    return user_panel_done(request, user, USER_STATUS_NOW.format(name=user.name, state=verb))


@require_POST
@require_perm(MANAGE_PRIME_USERS)
def user_labels(request: StaffRequest, prime_id: str) -> HttpResponse:
    user = _get_user(prime_id)
    form = LabelsForm(request.POST)
    if not form.is_valid():
        return user_panel(request, user, labels_form=form, status=422)
    services.prime_user_update_labels(user=user, actor=request.user, **form.cleaned_data)
    return user_panel_done(request, user, USER_LABELS_SAVED.format(name=user.name))


@require_POST
@require_perm(MANAGE_PRIME_USERS)
def user_review(request: StaffRequest, prime_id: str) -> HttpResponse:
    """ "Reviewed": clear the changed-outside-the-portal badge; answers with the row or panel."""
    user = _get_user(prime_id)
    form = ReviewForm(request.POST)
    in_row = form.is_valid() and form.cleaned_data["where"] == "row"
    error, status = "", 200
    if not form.is_valid():
        error, status = REVIEW_FORM_BROKEN, 422
    else:
        had_badge = user.changed_outside_at is not None
        try:
            services.prime_user_review_differences(
                user=user, actor=request.user, seen=form.cleaned_data["seen"]
            )
        except services.DifferencesChanged as exc:
            error, status = exc.message, 409
        else:
            if had_badge:
                messages.success(request, DIFFERENCES_REVIEWED.format(name=user.name))
            else:
                messages.info(request, DIFFERENCES_ALREADY_REVIEWED.format(name=user.name))
    user = _get_user(prime_id)
    if not wants_fragment(request):
        if error:
            messages.error(request, error)
        if in_row:
            return redirect("users:list")
        return redirect("users:detail", prime_id=prime_id)
    if in_row:
        context = {"u": user, "row_error": error}
        return render_htmx(request, "users/list.html", "user-row", context, status=status)
    return user_panel(request, user, review_error=error, status=status)
