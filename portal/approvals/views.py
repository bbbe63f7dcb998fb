"""The approvals pages: the inbox, one request, votes, the policy, the evidence export."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages as django_messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from portal.approvals import messages, selectors, services
from portal.approvals.forms import ApproveSelectedForm, PolicyChangeForm, VoteForm
from portal.approvals.models import ChangeRequest, StepUpMethod, VoteDecision
from portal.approvals.policy import policy_rules
from portal.audit.export import CONTENT_TYPES, export_lines
from portal.audit.filters import AuditFilter
from portal.audit.models import AuditAction, TargetType
from portal.audit.services import audit_record
from portal.audit.verify import read_head
from portal.staff.access import require_perm
from portal.staff.models import Staff
from portal.staff.roles import MANAGE_STAFF, VIEW_PORTAL
from portal.web import no_store, redirect_to, render_htmx, wants_fragment


def _staff(request: HttpRequest) -> Staff:
    user = request.user
    if not isinstance(user, Staff):
        raise PermissionDenied
    return user


def _change(pk: int) -> ChangeRequest:
    try:
        return selectors.change_get(pk=pk)
    except ChangeRequest.DoesNotExist as exc:
        raise Http404 from exc


@require_GET
@require_perm(VIEW_PORTAL)
def inbox(request: HttpRequest) -> HttpResponse:
    """What waits for my vote, what I requested, what was decided recently."""
    staff = _staff(request)
    context = {
        "waiting": [
            (c, selectors.change_diff(change=c))
            for c in selectors.change_waiting_for(staff=staff).select_related("requested_by")[
                : selectors.INBOX_LIMIT
            ]
        ],
        "to_review": list(selectors.change_to_review(staff=staff)[: selectors.INBOX_LIMIT]),
        "mine": selectors.change_requested_by(staff=staff),
        "recent": selectors.change_decided_recently(),
        "now": timezone.now(),
    }
    return render_htmx(request, "approvals/inbox.html", "inbox", context)


@require_GET
@require_perm(VIEW_PORTAL)
def waiting_count(request: HttpRequest) -> HttpResponse:
    """The navigation's count of requests waiting for me (polled by htmx from our own DB)."""
    count = selectors.change_waiting_count(staff=_staff(request))
    return no_store(render(request, "approvals/_count.html", {"count": count}))


def _detail_context(request: HttpRequest, change: ChangeRequest, **extra: object) -> dict:
    staff = _staff(request)
    votes = selectors.change_votes(change=change)
    actions = selectors.change_actions(change=change, staff=staff, votes=votes)
    recent = services.step_up_is_recent(session=request.session)
    return {
        "change": change,
        "changes": selectors.change_diff(change=change),
        "votes": votes,
        "timeline": selectors.change_timeline(change=change),
        "actions": actions,
        "ask_code": change.step_up_every_time or not recent,
        "approve_form": VoteForm(initial={"decision": VoteDecision.APPROVE}),
        "reject_form": VoteForm(initial={"decision": VoteDecision.REJECT}),
        "now": timezone.now(),
        **extra,
    }


@require_GET
@require_perm(VIEW_PORTAL)
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    change = _change(pk)
    return render_htmx(
        request, "approvals/detail.html", "change-panel", _detail_context(request, change)
    )


def _after_action(
    request: HttpRequest, pk: int, run: Callable[[], services.ChangeOutcome]
) -> HttpResponse:
    """Run one service; refusals become a message (or a 403); re-render or redirect."""
    try:
        outcome = run()
    except services.ApprovalError as exc:
        if exc.forbidden:
            raise PermissionDenied(exc.message) from exc
        django_messages.error(request, exc.message)
    else:
        getattr(django_messages, outcome.level)(request, outcome.message)
    if wants_fragment(request):
        change = _change(pk)
        return render_htmx(
            request, "approvals/detail.html", "change-panel", _detail_context(request, change)
        )
    return redirect("approvals:detail", pk=pk)


@require_POST
@require_perm(VIEW_PORTAL)
def vote(request: HttpRequest, pk: int) -> HttpResponse:
    """Approve (with the step-up code) or reject."""
    staff = _staff(request)
    change = _change(pk)
    form = VoteForm(request.POST)
    if not form.is_valid():
        django_messages.error(request, "Choose approve or reject.")
        return _after_action(request, pk, lambda: services.ChangeOutcome(change, "info", ""))
    decision = VoteDecision(form.cleaned_data["decision"])

    def run() -> services.ChangeOutcome:
        if change.requested_by_id == staff.pk:
            raise services.ApprovalError(messages.OWN_REQUEST, forbidden=True)
        method = StepUpMethod.NONE
        if decision == VoteDecision.APPROVE:
            # Refuse a person who may not approve before asking them for a code.
            if change.kind not in selectors.approvable_kinds(staff=staff):
                raise services.ApprovalError(messages.NOT_ALLOWED_TO_APPROVE, forbidden=True)
            method = services.step_up_confirm(
                staff=staff,
                session=request.session,
                code=form.cleaned_data["code"],
                every_time=change.step_up_every_time,
            )
        return services.change_vote(
            change_id=pk,
            actor=staff,
            decision=decision,
            step_up=method,
            comment=form.cleaned_data["comment"],
        )

    return _after_action(request, pk, run)


@require_POST
@require_perm(VIEW_PORTAL)
def approve_selected(request: HttpRequest) -> HttpResponse:
    """Approve a selection of the requests waiting for me with one step-up code.

    Each request keeps its own vote (recording the one confirmation) and its own
    exactly-once execution; a refusal of one does not stop the others.
    """
    staff = _staff(request)
    form = ApproveSelectedForm(request.POST)
    waiting = {c.pk: c for c in selectors.change_waiting_for(staff=staff)}
    chosen = [waiting[pk] for pk in form.chosen() if pk in waiting] if form.is_valid() else []
    if not chosen:
        django_messages.error(request, messages.CHOOSE_REQUESTS)
        return redirect_to(request, "approvals:inbox")
    try:
        method = services.step_up_confirm(
            staff=staff,
            session=request.session,
            code=form.cleaned_data["code"],
            every_time=any(c.step_up_every_time for c in chosen),
        )
    except services.ApprovalError as exc:
        django_messages.error(request, exc.message)
        return redirect_to(request, "approvals:inbox")
    for change in chosen:
        try:
            done = services.change_vote(
                change_id=change.pk, actor=staff, decision=VoteDecision.APPROVE, step_up=method
            )
        except services.ApprovalError as exc:
            django_messages.error(request, f"#{change.pk}: {exc.message}")
        else:
            getattr(django_messages, done.level)(request, f"#{change.pk}: {done.message}")
    return redirect_to(request, "approvals:inbox")


@require_POST
@require_perm(VIEW_PORTAL)
def withdraw(request: HttpRequest, pk: int) -> HttpResponse:
    staff = _staff(request)
    _change(pk)
    return _after_action(request, pk, lambda: services.change_withdraw(change_id=pk, actor=staff))


@require_POST
@require_perm(VIEW_PORTAL)
def execute(request: HttpRequest, pk: int) -> HttpResponse:
    """The requester carries out an approved change (kinds whose app has no own page)."""
    staff = _staff(request)
    change = _change(pk)
    if change.requested_by_id != staff.pk:
        raise PermissionDenied(messages.ONLY_REQUESTER)

    def run() -> services.ChangeOutcome:
        if not change.requester_executes:
            raise services.ApprovalError(messages.NOT_EXECUTED_BY_REQUESTER)
        return services.change_execute(change_id=pk, actor=staff)

    return _after_action(request, pk, run)


@require_POST
@require_perm(VIEW_PORTAL)
def reconcile(request: HttpRequest, pk: int) -> HttpResponse:
    """Ask Kraken what became of an unknown outcome (and send once more only if nothing did)."""
    staff = _staff(request)
    change = _change(pk)
    if change.kind not in selectors.approvable_kinds(staff=staff):
        raise PermissionDenied(messages.NOT_ALLOWED_TO_APPROVE)
    return _after_action(request, pk, lambda: services.change_reconcile(change_id=pk, actor=staff))


@require_POST
@require_perm(VIEW_PORTAL)
def reviewed(request: HttpRequest, pk: int) -> HttpResponse:
    """An approver marks a change that ran at once as reviewed (audited)."""
    staff = _staff(request)
    _change(pk)
    if request.POST.get("next") == "inbox":
        try:
            outcome = services.change_mark_reviewed(change_id=pk, actor=staff)
        except services.ApprovalError as exc:
            if exc.forbidden:
                raise PermissionDenied(exc.message) from exc
            django_messages.error(request, exc.message)
        else:
            getattr(django_messages, outcome.level)(request, outcome.message)
        return redirect_to(request, "approvals:inbox")
    return _after_action(
        request, pk, lambda: services.change_mark_reviewed(change_id=pk, actor=staff)
    )


@require_GET
@require_perm(VIEW_PORTAL)
def evidence(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    """The request's audit events with their chain hashes, provable by `verify_audit --export`."""
    change = _change(pk)
    filters = AuditFilter(target_type=TargetType.CHANGE_REQUEST, target_id=str(change.pk))
    head = read_head()
    audit_record(
        actor=_staff(request),
        action=AuditAction.AUDIT_EXPORTED,
        target_type=TargetType.AUDIT,
        after={
            "format": "jsonl",
            "filter": filters.as_params(),
            "head_seq": head[0] if head else 0,
        },
        message=f"evidence of change request #{change.pk}",
    )
    response = StreamingHttpResponse(
        export_lines(filters=filters, fmt="jsonl", exported_by=request.user.get_username()),
        content_type=CONTENT_TYPES["jsonl"],
    )
    name = f"change-request-{change.pk}-evidence.jsonl"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return no_store(response)


def _policy_context(form: PolicyChangeForm | None = None) -> dict:
    rules = policy_rules()
    return {
        "rules": [
            (
                rule,
                PolicyChangeForm(
                    initial={
                        "kind": rule.kind,
                        "needs_approval": rule.needs_approval,
                        "approvers": rule.approvers,
                        "require_step_up_every_time": rule.require_step_up_every_time,
                    },
                    auto_id=f"id_{rule.kind}_%s",
                ),
            )
            for rule in rules
        ],
        "pending": ChangeRequest.objects.filter(
            kind="policy_change", state="pending"
        ).select_related("requested_by"),
        "bound": form,
    }


@require_GET
@require_perm(MANAGE_STAFF)
def policy(request: HttpRequest) -> HttpResponse:
    """Per kind of change: whether it needs approval, how many approvers, code every time."""
    return render_htmx(request, "approvals/policy.html", "policy", _policy_context())


@require_POST
@require_perm(MANAGE_STAFF)
def policy_request(request: HttpRequest) -> HttpResponse:
    """Ask for a policy change; another Admin approves it on the request's page."""
    staff = _staff(request)
    form = PolicyChangeForm(request.POST)
    if not form.is_valid():
        django_messages.error(request, "Check the policy values: " + form.errors.as_text())
        return render_htmx(
            request, "approvals/policy.html", "policy", _policy_context(form), status=422
        )
    data = form.cleaned_data
    try:
        outcome = services.policy_change_request(
            kind=data["kind"],
            needs_approval=data["needs_approval"],
            approvers=data["approvers"],
            require_step_up_every_time=data["require_step_up_every_time"],
            actor=staff,
            reason=data["reason"],
        )
    except services.ApprovalError as exc:
        django_messages.error(request, exc.message)
        return render_htmx(
            request, "approvals/policy.html", "policy", _policy_context(form), status=422
        )
    django_messages.success(request, outcome.message)
    return redirect_to(request, "approvals:detail", pk=outcome.change.pk)
