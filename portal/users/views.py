"""Prime API users: list (search as you type), create, and one user's panel of actions."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from portal.staff.access import require_perm
from portal.staff.roles import MANAGE_PRIME_USERS, VIEW_PORTAL
from portal.users import selectors, services
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
from portal.web import StaffRequest, redirect_to, render_htmx, wants_fragment

PANEL = ("users/detail.html", "user-panel")


def _get_user(prime_id: str) -> PrimeUser:
    user = selectors.prime_user_get(prime_id=prime_id)
    if user is None:
        raise Http404("No such Prime user in the portal.")
    return user


def _sync_summary(report: services.SyncReport) -> str:
    if not report.differences:
        return (
            f"Synced with Kraken: {report.users_seen} user(s), {report.keys_seen} key(s), "
            "no differences."
        )
    return (
        f"Synced with Kraken: {len(report.differences)} difference(s) recorded in the audit "
        f"trail ({report.users_seen} user(s), {report.keys_seen} key(s) checked)."
    )


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
    context = {
        "filter_form": form,
        "page": page,
        "links": page.links(request.GET),
        "filtered": any(filters.get(k) for k in ("q", "role", "status")),
    }
    return render_htmx(request, "users/list.html", "user-results", context)


@require_http_methods(["GET", "POST"])
@require_perm(MANAGE_PRIME_USERS)
def user_create(request: HttpRequest) -> HttpResponse:
    """Create a Prime API user (Viewer or Trader) with its portal labels."""
    form = PrimeUserCreateForm(request.POST or None)
    context: dict[str, Any] = {"form": form}
    if request.method == "POST":
        if not form.is_valid():
            return render_htmx(request, "users/create.html", "create-form", context, status=422)
        data = form.cleaned_data
        try:
            user = services.prime_user_create(
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
        messages.success(request, f"Prime user {user.name} created ({user.role}).")
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


def _panel(
    request: HttpRequest, user: PrimeUser, *, status: int = 200, **extra: Any
) -> HttpResponse:
    return render_htmx(request, *PANEL, _panel_context(user, **extra), status=status)


def _done(request: HttpRequest, user: PrimeUser, message: str) -> HttpResponse:
    """After a change: the panel in place (htmx) or back to the page (POST/redirect/GET)."""
    messages.success(request, message)
    if wants_fragment(request):
        return _panel(request, _get_user(user.prime_id))
    return redirect("users:detail", prime_id=user.prime_id)


def _failed(
    request: HttpRequest, user: PrimeUser, failure: services.PrimeActionFailed, **extra: Any
) -> HttpResponse:
    return _panel(
        request,
        _get_user(user.prime_id),
        error=failure.message,
        unknown=failure.outcome_unknown,
        **extra,
    )


@require_GET
@require_perm(VIEW_PORTAL)
def user_detail(request: HttpRequest, prime_id: str) -> HttpResponse:
    """One user: what Kraken holds, the portal's labels, and the actions."""
    return _panel(request, _get_user(prime_id))


@require_POST
@require_perm(MANAGE_PRIME_USERS)
def user_rename(request: HttpRequest, prime_id: str) -> HttpResponse:
    user = _get_user(prime_id)
    form = RenameForm(request.POST)
    if not form.is_valid():
        return _panel(request, user, rename_form=form, status=422)
    old = user.name
    try:
        services.prime_user_rename(user=user, actor=request.user, name=form.cleaned_data["name"])
    except services.PrimeActionFailed as failure:
        return _failed(request, user, failure, rename_form=form)
    return _done(request, user, f"Renamed {old} to {user.name}.")


@require_POST
@require_perm(MANAGE_PRIME_USERS)
def user_status(request: HttpRequest, prime_id: str) -> HttpResponse:
    user = _get_user(prime_id)
    form = StatusForm(request.POST)
    if not form.is_valid():
        return _panel(request, user, status_error="Choose Enabled or Disabled.", status=422)
    try:
        services.prime_user_set_status(
            user=user, actor=request.user, status=form.cleaned_data["status"]
        )
    except services.PrimeActionFailed as failure:
        return _failed(request, user, failure)
    verb = "enabled" if user.is_enabled else "disabled"
    return _done(request, user, f"{user.name} is now {verb}.")


def _role_form(request: HttpRequest, user: PrimeUser) -> RoleForm:
    """The bound role form; asking for the role the user already has is an error too."""
    form = RoleForm(request.POST)
    if form.is_valid() and form.cleaned_data["role"] == user.role:
        form.add_error("role", f"{user.name} already has the {user.role} role.")
    return form


@require_POST
@require_perm(MANAGE_PRIME_USERS)
def user_role_preview(request: HttpRequest, prime_id: str) -> HttpResponse:
    """Step one of a role change: what it would do, before anything is sent."""
    user = _get_user(prime_id)
    form = _role_form(request, user)
    if not form.is_valid():
        return _panel(request, user, role_form=form, status=422)
    new_role = form.cleaned_data["role"]
    preview = selectors.role_change_preview(user=user, new_role=new_role)
    return _panel(request, user, role_form=form, role_preview=preview)


@require_POST
@require_perm(MANAGE_PRIME_USERS)
def user_role(request: HttpRequest, prime_id: str) -> HttpResponse:
    """Step two: send UpdatePrimeApiUserRoles for the role that was previewed."""
    user = _get_user(prime_id)
    form = _role_form(request, user)
    if not form.is_valid():
        return _panel(request, user, role_form=form, status=422)
    new_role = form.cleaned_data["role"]
    if form.cleaned_data["expected_role"] != user.role:
        # Someone changed the role since the preview: show the preview again.
        preview = selectors.role_change_preview(user=user, new_role=new_role)
        return _panel(
            request,
            user,
            role_form=form,
            role_preview=preview,
            role_notice="The role changed since your preview; check the new preview.",
            status=409,
        )
    old = user.role
    try:
        services.prime_user_change_role(user=user, actor=request.user, role=new_role)
    except services.PrimeActionFailed as failure:
        return _failed(request, user, failure)
    return _done(request, user, f"{user.name}'s role changed from {old} to {user.role}.")


@require_POST
@require_perm(MANAGE_PRIME_USERS)
def user_labels(request: HttpRequest, prime_id: str) -> HttpResponse:
    user = _get_user(prime_id)
    form = LabelsForm(request.POST)
    if not form.is_valid():
        return _panel(request, user, labels_form=form, status=422)
    services.prime_user_update_labels(user=user, actor=request.user, **form.cleaned_data)
    return _done(request, user, f"Labels of {user.name} saved.")


@require_POST
@require_perm(MANAGE_PRIME_USERS)
def user_review(request: HttpRequest, prime_id: str) -> HttpResponse:
    """ "Reviewed": clear the changed-outside-the-portal badge; answers with the row or panel."""
    user = _get_user(prime_id)
    form = ReviewForm(request.POST)
    in_row = form.is_valid() and form.cleaned_data["where"] == "row"
    error, status = "", 200
    if not form.is_valid():
        error, status = "Reload the page and review the differences it shows.", 422
    else:
        had_badge = user.changed_outside_at is not None
        try:
            services.prime_user_review_differences(
                user=user, actor=request.user, seen=form.cleaned_data["seen"]
            )
        except services.DifferencesChanged as exc:
            error, status = str(exc), 409
        else:
            if had_badge:
                messages.success(request, f"Differences of {user.name} marked reviewed.")
            else:
                messages.info(request, f"Someone already reviewed the differences of {user.name}.")
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
    return _panel(request, user, review_error=error, status=status)


@require_POST
@require_perm(MANAGE_PRIME_USERS)
def user_resync(request: HttpRequest, prime_id: str) -> HttpResponse:
    """Read this user and its keys from Kraken and reconcile the mirror."""
    user = _get_user(prime_id)
    try:
        report = services.prime_sync(actor=request.user, user=user)
    except services.PrimeActionFailed as failure:
        return _failed(request, user, failure)
    return _done(request, user, _sync_summary(report))


@require_POST
@require_perm(MANAGE_PRIME_USERS)
def sync_all(request: HttpRequest) -> HttpResponse:
    """Reconcile the whole mirror with Kraken."""
    try:
        report = services.prime_sync(actor=request.user)
    except services.PrimeActionFailed as failure:
        messages.error(request, failure.message)
    else:
        messages.success(request, _sync_summary(report))
    return redirect_to(request, "users:list")
