"""Settlement pages: thin views over selectors (reads) and services (writes).

No view calls Kraken except through a service a person triggered (create, a leg
request's approval, "check with Kraken"); the polled leg fragment reads only the database, and
no GET writes (the scheduled job expires stale requests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from portal.approvals import services as approvals
from portal.approvals.models import ChangeRequest, RequestState
from portal.audit.models import AuditAction
from portal.audit.services import audit_refusal
from portal.settlement import messages as say
from portal.settlement import selectors, services
from portal.settlement.forms import ApproveLegsForm, BatchCreateForm, BatchFilterForm, RejectForm
from portal.settlement.live_version import version_for
from portal.settlement.models import Batch, Leg
from portal.staff.access import require_perm
from portal.staff.models import Staff
from portal.staff.roles import APPROVE_SETTLEMENT, REQUEST_SETTLEMENT, VIEW_PORTAL
from portal.web import StaffRequest, redirect_to, render_htmx, wants_fragment

DETAIL = "settlement/batch_detail.html"


@dataclass(frozen=True)
class Notice:
    """What an action did to one leg, shown beside it until the next poll."""

    asset: str
    level: str
    message: str


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
        # Only those who may request a batch see its form: not built for anyone else.
        "create_form": BatchCreateForm() if request.user.has_perm(REQUEST_SETTLEMENT) else None,
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
        made = services.batch_create_request(
            asset_kind=form.cleaned_data["asset_kind"], actor=request.user
        )
    except services.ActiveBatchExistsError as exc:
        context = {"create_form": form, "error": str(exc), "existing_batch": exc.batch}
        return render_htmx(request, template, "create-form", context, status=409)
    except services.SettlementError as exc:
        context = {"create_form": form, "error": str(exc)}
        return render_htmx(request, template, "create-form", context, status=409)
    if not isinstance(made, Batch):  # the policy puts batch creation under approval
        getattr(messages, made.level)(request, made.message)
        return redirect_to(request, "approvals:detail", pk=made.change.pk)
    batch = made
    messages.success(
        request, say.BATCH_CREATED.format(batch_id=batch.prime_batch_id, trades=batch.trade_count)
    )
    return redirect_to(request, "settlement:batch-detail", prime_batch_id=batch.prime_batch_id)


def _live_or_404(prime_batch_id: str, viewer: Staff) -> selectors.LiveBatch:
    try:
        return selectors.live_batch(prime_batch_id=prime_batch_id, viewer=viewer)
    except Batch.DoesNotExist:
        raise Http404 from None


@require_GET
@require_perm(VIEW_PORTAL)
def batch_detail(request: StaffRequest, prime_batch_id: str) -> HttpResponse:
    """One batch: trades, legs with their requests, the net chart and the timeline."""
    live = _live_or_404(prime_batch_id, request.user)
    return render_htmx(request, DETAIL, "live", {"live": live})


@require_GET
@require_perm(VIEW_PORTAL)
def batch_live(request: StaffRequest, prime_batch_id: str) -> HttpResponse:
    """The polled fragment: batch state and leg rows, from the portal's database only.

    Nothing changed since the version the fragment carries (`?v=`): 204, which htmx leaves
    alone, after one statement and no template (portal/settlement/live_version.py); such a
    poll is usually answered before it gets here (portal/settlement/middleware.py).
    """
    if not wants_fragment(request):
        return redirect("settlement:batch-detail", prime_batch_id=prime_batch_id)
    version = version_for(request.user, prime_batch_id)
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
    if error and not wants_fragment(request):
        messages.error(request, error)
    if not wants_fragment(request):
        return redirect("settlement:batch-detail", prime_batch_id=prime_batch_id)
    live = _live_or_404(prime_batch_id, request.user)
    context = {"live": live, "action_error": error, "error_asset": error_asset}
    return render_htmx(request, DETAIL, "live", context, status=status)


@require_POST
@require_any_perm(REQUEST_SETTLEMENT, APPROVE_SETTLEMENT)
def batch_refresh(request: StaffRequest, prime_batch_id: str) -> HttpResponse:
    """Check with Kraken now (GetPrimeSettlementBatch); reconciles unknown outcomes."""
    batch = selectors.batch_by_id(prime_batch_id=prime_batch_id)
    if batch is None:
        raise Http404
    try:
        summary = services.batch_refresh(prime_batch_id=prime_batch_id, actor=request.user)
    except services.SettlementError as exc:
        return _after_action(request, prime_batch_id, error=str(exc), status=409)
    reconciled = services.legs_reconcile_unknown(actor=request.user, batch=batch)
    messages.info(request, say.CHECKED.format(changes=summary.changes, reconciled=reconciled))
    return _after_action(request, prime_batch_id)


def _get_leg(prime_batch_id: str, asset: str) -> Leg:
    try:
        return selectors.leg_by_asset(prime_batch_id=prime_batch_id, asset=asset)
    except Leg.DoesNotExist:
        raise Http404 from None


def _get_change(change_id: int) -> ChangeRequest:
    try:
        return selectors.change_for_action(change_id=change_id)
    except ChangeRequest.DoesNotExist:
        raise Http404 from None


def _notices(outcomes: list[services.LegOutcome]) -> list[Notice]:
    return [Notice(asset=o.asset, level=o.level, message=o.message) for o in outcomes]


def _after_notices(
    request: StaffRequest, prime_batch_id: str, notices: list[Notice], *, status: int = 200
) -> HttpResponse:
    """The live fragment with what the action did beside each leg (htmx), else the page.

    The words live in the fragment only: the next poll re-renders it from the live
    state, so a message never stays after its leg has moved on.
    """
    if not wants_fragment(request):
        for notice in notices:
            getattr(messages, notice.level)(request, f"{notice.asset}: {notice.message}")
        return redirect("settlement:batch-detail", prime_batch_id=prime_batch_id)
    live = _live_or_404(prime_batch_id, request.user)
    context = {"live": live, "notices": notices}
    return render_htmx(request, DETAIL, "live", context, status=status)


@require_POST
@require_perm(REQUEST_SETTLEMENT)
def leg_request(request: StaffRequest, prime_batch_id: str, asset: str) -> HttpResponse:
    """An Operator asks for a leg to be settled (an Approver must then approve)."""
    leg = _get_leg(prime_batch_id, asset)
    try:
        done = services.leg_request(leg=leg, actor=request.user)
    except services.NotAllowedError as exc:
        raise PermissionDenied(str(exc)) from exc
    except services.SettlementError as exc:
        return _after_action(request, prime_batch_id, error=str(exc), error_asset=asset, status=409)
    what = say.what_text(leg.direction, leg.amount, leg.asset)
    text = say.REQUESTED_FOR_APPROVAL.format(what=what)
    if done.change.state != RequestState.PENDING:
        text = done.message
    return _after_notices(
        request, prime_batch_id, [Notice(asset=asset, level=done.level, message=text)]
    )


@require_POST
@require_perm(REQUEST_SETTLEMENT)
def legs_request_all(request: StaffRequest, prime_batch_id: str) -> HttpResponse:
    """An Operator requests every settleable leg of the batch in one step."""
    batch = selectors.batch_by_id(prime_batch_id=prime_batch_id)
    if batch is None:
        raise Http404
    try:
        outcomes = services.legs_request_all(batch=batch, actor=request.user)
    except services.NotAllowedError as exc:
        raise PermissionDenied(str(exc)) from exc
    if not outcomes:
        return _after_action(request, prime_batch_id, error=say.NOTHING_TO_REQUEST, status=409)
    notices = [
        Notice(
            asset=o.asset,
            level=o.level,
            message=say.REQUESTED_ONE if o.level == "success" else o.message,
        )
        for o in outcomes
    ]
    return _after_notices(request, prime_batch_id, notices)


@require_POST
@require_perm(APPROVE_SETTLEMENT)
def legs_approve(request: StaffRequest, prime_batch_id: str) -> HttpResponse:
    """An Approver approves a selection of the batch's leg requests with one code."""
    batch = selectors.batch_by_id(prime_batch_id=prime_batch_id)
    if batch is None:
        raise Http404
    live = _live_or_404(prime_batch_id, request.user)
    choices = [row.change.pk for row in live.rows if row.change is not None]
    form = ApproveLegsForm(request.POST, choices=choices)
    if not form.is_valid():
        return _after_action(request, prime_batch_id, error=say.CHOOSE_LEGS, status=422)
    chosen = list(ChangeRequest.objects.filter(pk__in=form.cleaned_data["change"]))
    own = [change for change in chosen if change.requested_by_id == request.user.pk]
    if own:
        asset = own[0].target_id.rpartition(":")[2]
        raise PermissionDenied(
            str(
                services.refuse(
                    actor=request.user,
                    action=AuditAction.LEG_APPROVED,
                    message=say.OWN_INTENT.format(verb="approve"),
                    prime_batch_id=prime_batch_id,
                    asset=asset,
                )
            )
        )
    try:
        method = approvals.step_up_confirm(
            staff=request.user,
            session=request.session,
            code=form.cleaned_data["code"],
            every_time=any(change.step_up_every_time for change in chosen),
        )
    except approvals.ApprovalError as exc:
        return _after_action(request, prime_batch_id, error=exc.message, status=422)
    # One code confirms the whole selection: each vote records how it was confirmed.
    outcomes = services.legs_approve(
        change_ids=[change.pk for change in chosen], actor=request.user, step_up=method
    )
    return _after_notices(request, prime_batch_id, _notices(outcomes))


@require_POST
@require_perm(APPROVE_SETTLEMENT)
def leg_reject(request: StaffRequest, change_id: int) -> HttpResponse:
    """An Approver (not the requester) rejects a leg request, with a reason."""
    change = _get_change(change_id)
    batch_id, _, asset = change.target_id.rpartition(":")
    form = RejectForm(request.POST)
    if not form.is_valid():
        error = " ".join(str(e) for e in form.errors.get("reason") or [say.REASON_REQUIRED])
        return _after_action(request, batch_id, error=error, error_asset=asset, status=422)
    try:
        services.leg_reject(
            change_id=change_id, actor=request.user, reason=form.cleaned_data["reason"]
        )
    except services.NotAllowedError as exc:
        raise PermissionDenied(str(exc)) from exc
    except services.SettlementError as exc:
        return _after_action(request, batch_id, error=str(exc), error_asset=asset, status=409)
    notice = Notice(asset=asset, level="success", message=say.INTENT_REJECTED.format(asset=asset))
    return _after_notices(request, batch_id, [notice])
