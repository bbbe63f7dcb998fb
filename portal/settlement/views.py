"""Settlement pages: thin views over selectors (reads) and services (writes).

No view calls Kraken except through a service a person triggered (create, an intent's
approval, "check with Kraken"); the polled leg fragment reads only the database, and
no GET writes (the poller expires stale intents).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from portal.audit.services import audit_refusal
from portal.settlement import messages as say
from portal.settlement import selectors, services
from portal.settlement.forms import BatchCreateForm, BatchFilterForm, RejectForm
from portal.settlement.live_version import live_version
from portal.settlement.models import Batch, Leg, SettlementIntent
from portal.staff.access import require_perm
from portal.staff.models import Staff
from portal.staff.roles import APPROVE_SETTLEMENT, REQUEST_SETTLEMENT, VIEW_PORTAL
from portal.web import StaffRequest, redirect_to, render_htmx, wants_fragment

DETAIL = "settlement/batch_detail.html"

View = Callable[..., HttpResponse]


def require_any_perm(*perms: str) -> Callable[[View], View]:
    """Refuse with 403 (audited for writes) unless the person holds one of `perms`."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not any(request.user.has_perm(perm) for perm in perms):
                if request.method not in ("GET", "HEAD", "OPTIONS"):
                    staff = request.user if isinstance(request.user, Staff) else None
                    audit_refusal(actor=staff, permission=" or ".join(perms), path=request.path)
                raise PermissionDenied(say.NEED_OPERATOR_OR_APPROVER)
            return view(request, *args, **kwargs)

        wrapped.required_permission = perms  # type: ignore[attr-defined]
        return wrapped

    return decorator


@require_GET
@require_perm(VIEW_PORTAL)
def batch_list(request: StaffRequest) -> HttpResponse:
    """Mirrored batches, newest first, filtered by status and creation date."""
    form = BatchFilterForm(request.GET or None)
    page = selectors.batch_list(
        **(form.filters() if form.is_bound else {}),
        older=request.GET.get("older"),
        newer=request.GET.get("newer"),
    )
    context = {
        "filter_form": form,
        "page": page,
        "links": page.links(request.GET),
        "create_form": BatchCreateForm(),
    }
    return render_htmx(request, "settlement/batch_list.html", "batch-table", context)


@require_http_methods(["GET", "POST"])
@require_perm(REQUEST_SETTLEMENT)
def batch_create(request: StaffRequest) -> HttpResponse:
    """Ask Kraken for a new batch of one asset kind."""
    template = "settlement/batch_create.html"
    if request.method == "GET":
        return render_htmx(request, template, "create-form", {"create_form": BatchCreateForm()})
    form = BatchCreateForm(request.POST)
    if not form.is_valid():
        return render_htmx(request, template, "create-form", {"create_form": form}, status=422)
    try:
        batch = services.batch_create(
            asset_kind=form.cleaned_data["asset_kind"], actor=request.user
        )
    except services.ActiveBatchExistsError as exc:
        context = {"create_form": form, "error": str(exc), "existing_batch": exc.batch}
        return render_htmx(request, template, "create-form", context, status=409)
    except services.SettlementError as exc:
        context = {"create_form": form, "error": str(exc)}
        return render_htmx(request, template, "create-form", context, status=409)
    messages.success(
        request, say.BATCH_CREATED.format(batch_id=batch.prime_batch_id, trades=batch.trade_count)
    )
    return redirect_to(request, "settlement:batch-detail", prime_batch_id=batch.prime_batch_id)


def _page_or_404(prime_batch_id: str, viewer: Staff) -> selectors.BatchPage:
    try:
        return selectors.batch_page(prime_batch_id=prime_batch_id, viewer=viewer)
    except Batch.DoesNotExist:
        raise Http404 from None


def _live_or_404(prime_batch_id: str, viewer: Staff) -> selectors.LiveBatch:
    try:
        return selectors.live_batch(prime_batch_id=prime_batch_id, viewer=viewer)
    except Batch.DoesNotExist:
        raise Http404 from None


@require_GET
@require_perm(VIEW_PORTAL)
def batch_detail(request: StaffRequest, prime_batch_id: str) -> HttpResponse:
    """One batch: trades, legs with their intents, the net chart and the timeline."""
    page = _page_or_404(prime_batch_id, request.user)
    context = {"live": page.live, "chart": page.chart, "timeline": page.timeline}
    return render_htmx(request, DETAIL, "live", context)


@require_GET
@require_perm(VIEW_PORTAL)
def batch_live(request: StaffRequest, prime_batch_id: str) -> HttpResponse:
    """The polled fragment: batch state and leg rows, from the portal's database only.

    Nothing changed since the version the fragment carries (`?v=`): 204, which htmx leaves
    alone, after one statement and no template (portal/settlement/live_version.py).
    """
    if not wants_fragment(request):
        return redirect("settlement:batch-detail", prime_batch_id=prime_batch_id)
    user = request.user
    viewer = (user.pk, user.has_perm(REQUEST_SETTLEMENT), user.has_perm(APPROVE_SETTLEMENT))
    version = live_version(prime_batch_id=prime_batch_id, viewer_key=viewer)
    if version is not None and request.GET.get("v") == version:
        return HttpResponse(status=204)
    live = _live_or_404(prime_batch_id, request.user)
    # A final batch changes no more: htmx stops polling on this answer.
    context = {"live": live, "live_version": version or ""}
    return render_htmx(request, DETAIL, "live", context, stop_polling=live.batch.is_final)


def _after_action(
    request: StaffRequest,
    prime_batch_id: str,
    *,
    error: str = "",
    error_asset: str = "",
    status: int = 200,
) -> HttpResponse:
    """Re-render the live fragment the action came from (or go back to the page)."""
    if not wants_fragment(request):
        return redirect("settlement:batch-detail", prime_batch_id=prime_batch_id)
    live = _live_or_404(prime_batch_id, request.user)
    context = {"live": live, "action_error": error, "error_asset": error_asset}
    return render_htmx(request, DETAIL, "live", context, status=status)


@require_POST
@require_any_perm(REQUEST_SETTLEMENT, APPROVE_SETTLEMENT)
def batch_refresh(request: StaffRequest, prime_batch_id: str) -> HttpResponse:
    """Check with Kraken now (GetPrimeSettlementBatch); reconciles unknown outcomes."""
    if selectors.batch_by_id(prime_batch_id=prime_batch_id) is None:
        raise Http404
    try:
        summary = services.batch_refresh(prime_batch_id=prime_batch_id, actor=request.user)
    except services.SettlementError as exc:
        messages.error(request, str(exc))
        return _after_action(request, prime_batch_id, error=str(exc), status=409)
    messages.info(
        request, say.CHECKED.format(changes=summary.changes, reconciled=summary.reconciled)
    )
    return _after_action(request, prime_batch_id)


def _get_leg(prime_batch_id: str, asset: str) -> Leg:
    try:
        return selectors.leg_by_asset(prime_batch_id=prime_batch_id, asset=asset)
    except Leg.DoesNotExist:
        raise Http404 from None


def _get_intent(intent_id: int) -> SettlementIntent:
    try:
        return selectors.intent_for_action(intent_id=intent_id)
    except SettlementIntent.DoesNotExist:
        raise Http404 from None


@require_POST
@require_perm(REQUEST_SETTLEMENT)
def leg_request(request: StaffRequest, prime_batch_id: str, asset: str) -> HttpResponse:
    """An Operator asks for a leg to be settled (an Approver must then approve)."""
    leg = _get_leg(prime_batch_id, asset)
    try:
        intent = services.intent_request(leg=leg, actor=request.user)
    except services.SettlementError as exc:
        messages.error(request, str(exc))
        return _after_action(request, prime_batch_id, error=str(exc), error_asset=asset, status=409)
    messages.success(
        request,
        say.REQUESTED_FOR_APPROVAL.format(
            direction=intent.direction, amount=say.amount_text(intent.amount), asset=asset
        ),
    )
    return _after_action(request, prime_batch_id)


@require_POST
@require_perm(APPROVE_SETTLEMENT)
def intent_approve(request: StaffRequest, intent_id: int) -> HttpResponse:
    """An Approver (not the requester) approves; the leg is sent to Kraken once."""
    intent = _get_intent(intent_id)
    batch_id = intent.batch.prime_batch_id
    try:
        result = services.intent_approve(intent_id=intent_id, actor=request.user)
    except services.NotAllowedError as exc:
        raise PermissionDenied(str(exc)) from exc
    except services.SettlementError as exc:
        messages.error(request, str(exc))
        return _after_action(
            request, batch_id, error=str(exc), error_asset=intent.asset, status=409
        )
    getattr(messages, result.level)(request, result.message)
    return _after_action(request, batch_id)


@require_POST
@require_perm(APPROVE_SETTLEMENT)
def intent_reject(request: StaffRequest, intent_id: int) -> HttpResponse:
    """An Approver (not the requester) rejects an intent, with a reason."""
    intent = _get_intent(intent_id)
    batch_id = intent.batch.prime_batch_id
    form = RejectForm(request.POST)
    if not form.is_valid():
        error = " ".join(str(e) for e in form.errors.get("reason") or [say.REASON_REQUIRED])
        return _after_action(request, batch_id, error=error, error_asset=intent.asset, status=422)
    try:
        services.intent_reject(
            intent_id=intent_id, actor=request.user, reason=form.cleaned_data["reason"]
        )
    except services.NotAllowedError as exc:
        raise PermissionDenied(str(exc)) from exc
    except services.SettlementError as exc:
        messages.error(request, str(exc))
        return _after_action(
            request, batch_id, error=str(exc), error_asset=intent.asset, status=409
        )
    messages.success(request, say.INTENT_REJECTED.format(asset=intent.asset))
    return _after_action(request, batch_id)
