"""Sign-in, two-factor, and the Admin's staff page."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import django_otp
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render, resolve_url
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from portal.staff import selectors, services
from portal.staff.access import require_perm
from portal.staff.forms import (
    OtpResetForm,
    OtpTokenForm,
    PasswordChangeForm,
    RoleChangeForm,
    StaffCreateForm,
    TwoFactorRequirementForm,
)
from portal.staff.middleware import two_factor_exempt
from portal.staff.models import Staff
from portal.staff.roles import MANAGE_STAFF, Role
from portal.staff.two_factor import qr_svg, secret_base32
from portal.web import StaffRequest, no_store, redirect_to, render_htmx, wants_fragment

PAGE = "staff/list.html"
PASSWORD_PAGE = "staff/password.html"


def _next_url(request: HttpRequest) -> str:
    """A safe place to go after a sign-in step (the start page unless told otherwise)."""
    wanted = request.POST.get("next") or request.GET.get("next") or ""
    if wanted and url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return wanted
    return resolve_url("home")


def _with_next(url_name: str, next_url: str) -> str:
    return f"{reverse(url_name)}?{urlencode({'next': next_url})}"


# Sign-in ------------------------------------------------------------------------------------


class StaffLoginView(auth_views.LoginView):
    """The password step; the two-factor step follows when it applies."""

    template_name = "staff/login.html"
    redirect_authenticated_user = True

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        response = super().form_valid(form)
        user = form.get_user()
        if selectors.otp_has_confirmed_device(staff=user):
            return redirect(_with_next("staff:two-factor", self.get_success_url()))
        if selectors.two_factor_required():
            return redirect(_with_next("staff:two-factor-setup", self.get_success_url()))
        return response


login_view = StaffLoginView.as_view()
logout_view = two_factor_exempt(auth_views.LogoutView.as_view())


def _otp_refusal(check: services.OtpCheck) -> str:
    if check.retry_at:
        wait = max(1, int((check.retry_at - timezone.now()).total_seconds()) + 1)
        return f"Too many wrong codes. Wait {wait} seconds, then enter the current code."
    return "That code is not right. Enter the code your app shows now."


@two_factor_exempt
@require_http_methods(["GET", "POST"])
def two_factor_verify(request: StaffRequest) -> HttpResponse:
    """The second sign-in step: a code from the person's authenticator app."""
    user = request.user
    next_url = _next_url(request)
    if user.is_verified():
        return redirect(next_url)
    if not selectors.otp_has_confirmed_device(staff=user):
        if selectors.two_factor_required():
            return redirect(_with_next("staff:two-factor-setup", next_url))
        return redirect(next_url)
    form = OtpTokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        check = services.otp_verify(staff=user, token=form.cleaned_data["token"])
        if check.ok:
            request.session.cycle_key()
            django_otp.login(request, check.device)
            return redirect(next_url)
        form.add_error("token", _otp_refusal(check))
    status = 422 if request.method == "POST" else 200
    return render(request, "staff/two_factor.html", {"form": form, "next": next_url}, status=status)


@two_factor_exempt
@require_http_methods(["GET", "POST"])
def two_factor_setup(request: StaffRequest) -> HttpResponse:
    """Enrol an authenticator app: scan the QR code (or type the secret), confirm a code."""
    user = request.user
    next_url = _next_url(request)
    context: dict[str, Any] = {"next": next_url, "required": selectors.two_factor_required()}
    if selectors.otp_has_confirmed_device(staff=user):
        context["already"] = True
        return render(request, "staff/two_factor_setup.html", context)
    device = services.otp_device_pending(staff=user)
    form = OtpTokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        check = services.otp_device_confirm(
            staff=user, device=device, token=form.cleaned_data["token"]
        )
        if check.ok:
            request.session.cycle_key()
            django_otp.login(request, check.device)
            messages.success(request, "Two-factor sign-in is on for your account.")
            return redirect(next_url)
        form.add_error("token", _otp_refusal(check))
    context.update(form=form, qr_svg=qr_svg(device), secret=secret_base32(device))
    status = 422 if request.method == "POST" else 200
    response = render(request, "staff/two_factor_setup.html", context, status=status)
    no_store(response)
    return response


# The Admin's staff page ----------------------------------------------------------------------


def _page_context(**extra: Any) -> dict[str, Any]:
    return {
        "people": selectors.staff_rows(),
        "roles": Role.values,
        "security": selectors.security_settings_get(),
        "create_form": StaffCreateForm(),
        **extra,
    }


def _row_response(
    request: HttpRequest,
    pk: int,
    *,
    error: str = "",
    status: int = 200,
    confirm_reset: bool = False,
) -> HttpResponse:
    if not wants_fragment(request):
        if error:
            messages.error(request, error)
        if confirm_reset:
            return render(request, PAGE, _page_context(confirm_reset_pk=pk), status=status)
        return redirect("staff:list")
    # With htmx the refusal shows in the row itself, next to what the person clicked.
    context = {
        "person": selectors.staff_row(pk=pk),
        "roles": Role.values,
        "row_error": error,
        "confirm_reset_pk": pk if confirm_reset else None,
        "security": selectors.security_settings_get() if confirm_reset else None,
    }
    return render_htmx(request, PAGE, "staff-row", context, status=status)


@require_GET
@require_perm(MANAGE_STAFF)
def staff_list(request: HttpRequest) -> HttpResponse:
    """Everyone who can sign in, their roles and two-factor state."""
    return render_htmx(request, PAGE, "staff-table", _page_context())


@require_POST
@require_perm(MANAGE_STAFF)
def staff_create(request: StaffRequest) -> HttpResponse:
    """Create an account; a generated password is shown once, in this response only."""
    form = StaffCreateForm(request.POST)
    if not form.is_valid():
        context = _page_context(create_form=form)
        return render_htmx(request, PAGE, "create-panel", context, status=422)
    try:
        created = services.staff_create(
            actor=request.user,
            username=form.cleaned_data["username"],
            display_name=form.cleaned_data["display_name"],
            roles=form.cleaned_data["roles"],
            password=form.cleaned_data["password"] or None,
        )
    except services.StaffRefused as exc:
        form.add_error(None, str(exc))
        context = _page_context(create_form=form)
        return render_htmx(request, PAGE, "create-panel", context, status=422)
    messages.success(request, f"Created {created.staff.username}.")
    context = _page_context(created=created, rows_oob=wants_fragment(request))
    response = render_htmx(request, PAGE, "create-panel", context)
    no_store(response)
    return response


@require_POST
@require_perm(MANAGE_STAFF)
def staff_roles(request: StaffRequest, pk: int) -> HttpResponse:
    """Grant or revoke one role; answers with the person's row."""
    person = get_object_or_404(Staff, pk=pk)
    form = RoleChangeForm(request.POST)
    if not form.is_valid():
        return _row_response(request, pk, error="Choose a role to grant or revoke.", status=422)
    role = form.cleaned_data["role"]
    try:
        services.staff_role_set(actor=request.user, staff=person, role=role, granted=form.granted)
    except services.StaffRefused as exc:
        return _row_response(request, pk, error=str(exc), status=422)
    done = "Granted" if form.granted else "Revoked"
    messages.success(request, f"{done} {role} {'to' if form.granted else 'from'} {person}.")
    return _row_response(request, pk)


@require_POST
@require_perm(MANAGE_STAFF)
def staff_deactivate(request: StaffRequest, pk: int) -> HttpResponse:
    """Stop a person signing in; answers with their row."""
    person = get_object_or_404(Staff, pk=pk)
    try:
        services.staff_deactivate(actor=request.user, staff=person)
    except services.StaffRefused as exc:
        return _row_response(request, pk, error=str(exc), status=422)
    messages.success(request, f"Deactivated {person}; they can no longer sign in.")
    return _row_response(request, pk)


@require_POST
@require_perm(MANAGE_STAFF)
def two_factor_requirement(request: StaffRequest) -> HttpResponse:
    """Require (or stop requiring) two-factor sign-in for everyone."""
    form = TwoFactorRequirementForm(request.POST)
    form.is_valid()  # a lone checkbox: absent means off
    required = bool(form.cleaned_data.get("require"))
    try:
        security = services.two_factor_requirement_set(actor=request.user, required=required)
    except services.StaffRefused as exc:
        if not wants_fragment(request):
            messages.error(request, str(exc))
            return redirect("staff:list")
        context = {"security": selectors.security_settings_get(), "panel_error": str(exc)}
        return render_htmx(request, PAGE, "security-panel", context, status=422)
    if required:
        messages.success(
            request, "Two-factor sign-in is now required: everyone without it sets it up next."
        )
    else:
        messages.success(request, "Two-factor sign-in is now optional.")
    if not wants_fragment(request):
        return redirect("staff:list")
    return render_htmx(request, PAGE, "security-panel", {"security": security})


@require_http_methods(["GET", "POST"])
@require_perm(MANAGE_STAFF)
def two_factor_reset(request: StaffRequest, pk: int) -> HttpResponse:
    """GET: confirm removing a person's authenticator app. POST (confirmed): remove it."""
    person = get_object_or_404(Staff, pk=pk)
    if request.method == "GET":
        return _row_response(request, pk, confirm_reset=True)
    form = OtpResetForm(request.POST)
    if not form.is_valid():
        error = "Confirm the reset to remove their authenticator app."
        return _row_response(request, pk, error=error, status=422, confirm_reset=True)
    try:
        removed = services.otp_device_reset(actor=request.user, staff=person)
    except services.StaffRefused as exc:
        return _row_response(request, pk, error=str(exc), status=422)
    if removed:
        messages.success(
            request,
            f"Two-factor sign-in of {person} reset; they set up a new authenticator app "
            "when two-factor is required, or may do so themselves.",
        )
    else:
        messages.info(request, f"{person} had no authenticator app: nothing to reset.")
    return _row_response(request, pk)


# Your own password ---------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@sensitive_post_parameters("current_password", "new_password1", "new_password2")
def password_change(request: StaffRequest) -> HttpResponse:
    """Change your own password; this session stays signed in, others end."""
    form = PasswordChangeForm(request.POST or None, user=request.user)
    if request.method == "GET":
        return render_htmx(request, PASSWORD_PAGE, "password-form", {"form": form})
    if not form.is_valid():
        return render_htmx(request, PASSWORD_PAGE, "password-form", {"form": form}, status=422)
    try:
        services.staff_password_change(
            staff=request.user,
            current_password=form.cleaned_data["current_password"],
            new_password=form.cleaned_data["new_password1"],
        )
    except services.StaffRefused as exc:
        form.add_error("current_password", str(exc))
        return render_htmx(request, PASSWORD_PAGE, "password-form", {"form": form}, status=422)
    update_session_auth_hash(request, request.user)
    messages.success(request, "Your password is changed. Other sessions of yours are signed out.")
    return redirect_to(request, "staff:password")
