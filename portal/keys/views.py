"""A user's keys: issue (secret shown once), edit the allow-list in place, revoke.

Also the buttons of the user's panel that reach its keys: the role change (a role is the
permissions every key carries) and the resyncs, which reconcile users and keys.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from portal.approvals.models import ChangeKind, ChangeRequest, RequestState
from portal.keys import approvals, selectors, services
from portal.keys.allowlist import AllowlistDiff, ParsedAllowlist, diff_allowlist
from portal.keys.forms import AllowlistForm, IssueForm, LabelForm, RevokeForm, new_issue_token
from portal.keys.models import ApiKey
from portal.staff.access import require_perm
from portal.staff.roles import MANAGE_KEYS, MANAGE_PRIME_USERS, VIEW_PORTAL
from portal.users import selectors as user_selectors
from portal.users.approvals import ChangeRefused, Requested, execute_approved
from portal.users.forms import RoleForm
from portal.users.models import PrimeUser
from portal.users.views import (
    user_panel,
    user_panel_done,
    user_panel_failed,
    user_panel_refused,
    user_panel_sent,
)
from portal.web import StaffRequest, no_store, redirect_to, render_htmx, wants_fragment

LIST = "keys/list.html"
ISSUED = "keys/issued.html"
# What the person is told (the tests reuse these).
KEY_NO_LONGER_ACTIVE = "This key is no longer active."
ALLOWLIST_UNCHANGED = "That is the allow-list the key already has: nothing to save."
KEY_ISSUED = "Key {key} issued."
KEY_NOT_YET = "Not yet: this key can be issued once {reason}."
KEY_ISSUED_WITHOUT_ALLOWLIST = "Key {key} issued without its allow-list."
ALLOWLIST_SAVED = "Allow-list of key {key} saved."
ALLOWLIST_EMPTY_SAVED = "Key {key} has no allow-list: usable from any address."
LABEL_UNCHANGED = "Key {key} already had that label."
LABEL_SAVED = "Label of key {key} saved."
KEY_REVOKED = "Key {key} revoked."
KEY_RESYNCED_NO_DIFFERENCE = "Resynced: the portal already matched Kraken."
KEY_RESYNCED = "Resynced: {differences}"
USER_KEYS_RESYNCED = "Resynced with Kraken: {count} difference(s) found."
ROLE_CHANGED = "{name}'s role changed from {old} to {new}."
SYNCED_NO_DIFFERENCE = "Synced with Kraken: {users} user(s), {keys} key(s), no differences."
SYNCED_BASELINE = (
    "First sync: {users} user(s) and {keys} key(s) imported as the baseline; "
    "later differences will be flagged for review."
)
SYNCED = (
    "Synced with Kraken: {count} difference(s) recorded in the audit trail "
    "({users} user(s), {keys} key(s) checked)."
)


@dataclass
class KeyRow:
    """One key's row and what is open under it (an editor, a preview, an error)."""

    key: ApiKey
    mode: str = ""  # "", "allowlist", "preview", "revoke", "label"
    form: forms.Form | None = None
    parsed: ParsedAllowlist | None = None
    diff: AllowlistDiff | None = None
    error: str = ""
    unknown: bool = False
    notice: str = ""
    confirm_error: str = ""
    sent: ChangeRequest | None = None  # the change request that waits for an approver

    @property
    def new_text(self) -> str:
        """The previewed entries, one per line, for the confirmation form."""
        return "\n".join(self.parsed.entries) if self.parsed else ""

    @property
    def base_text(self) -> str:
        """The allow-list the preview was made against."""
        return "\n".join(self.key.whitelisted_ips)


def _get_user(prime_id: str) -> PrimeUser:
    user = user_selectors.prime_user_get(prime_id=prime_id)
    if user is None:
        raise Http404("No such Prime user in the portal.")
    return user


def _get_key(prime_key_id: str) -> ApiKey:
    key = selectors.key_get(prime_key_id=prime_key_id)
    if key is None:
        raise Http404("No such key in the portal.")
    return key


def _page_context(user: PrimeUser, **extra: Any) -> dict[str, Any]:
    context: dict[str, Any] = {
        "prime_user": user,
        "rows": [KeyRow(key) for key in selectors.key_list(user=user)],
        # Built only when the page draws it (for those who may issue; a signed token).
        "issue_form": partial(IssueForm, user=user),
    }
    context.update(extra)
    return context


def _row_response(request: HttpRequest, row: KeyRow, *, status: int = 200) -> HttpResponse:
    """The row in place (htmx), or the whole page with that row open."""
    if wants_fragment(request):
        return render_htmx(request, LIST, "key-row", {"row": row}, status=status)
    context = _page_context(_get_user(row.key.user.prime_id))
    context["rows"] = [row if r.key.pk == row.key.pk else r for r in context["rows"]]
    return render_htmx(request, LIST, "key-row", context, status=status)


def _row_done(request: HttpRequest, key: ApiKey) -> HttpResponse:
    """After a change: the key's fresh row in place (htmx), or back to the user's keys page."""
    if not wants_fragment(request):
        return redirect("keys:list", prime_id=key.user.prime_id)
    return _row_response(request, KeyRow(_get_key(key.prime_key_id)))


@require_GET
@require_perm(VIEW_PORTAL)
def key_list(request: StaffRequest, prime_id: str) -> HttpResponse:
    """The user's keys, and the form to issue one."""
    user = _get_user(prime_id)
    return render_htmx(request, LIST, "keys-page", _page_context(user))


@require_http_methods(["GET", "POST"])
@require_perm(MANAGE_KEYS)
@never_cache
@sensitive_post_parameters()
@sensitive_variables("result", "issued")
def key_issue(request: StaffRequest, prime_id: str) -> HttpResponse:
    """Issue a key and show its secret in this response only; a GET shows nothing secret."""
    user = _get_user(prime_id)
    if request.method == "GET":
        return no_store(render_htmx(request, ISSUED, "issued-panel", {"prime_user": user}))
    form = IssueForm(request.POST, user=user)
    if not form.is_valid():
        if "token" in form.errors:
            # A fresh token, so that submitting again works after reading the error.
            form.data = {**form.data, "token": new_issue_token(user)}
        return render_htmx(
            request, LIST, "issue-panel", _page_context(user, issue_form=form), status=422
        )
    try:
        result = approvals.key_request_issue(
            user=user,
            actor=request.user,
            label=form.cleaned_data["label"],
            whitelisted_ips=form.entries,
            issue_token=form.cleaned_data["token"],
        )
    except ChangeRefused as refused:
        context = _page_context(user, issue_error=refused.message)
        return render_htmx(request, LIST, "issue-panel", context)
    except services.KeyAlreadyIssued as already:
        context = {"prime_user": user, "key": already.key, "already_used": True}
        return no_store(render_htmx(request, ISSUED, "issued-panel", context))
    except services.PrimeActionFailed as failure:
        context = _page_context(
            user,
            issue_form=IssueForm(user=user, initial={"label": form.cleaned_data["label"]}),
            issue_error=failure.message,
            issue_unknown=failure.outcome_unknown,
        )
        return render_htmx(request, LIST, "issue-panel", context)
    if isinstance(result, Requested):
        if result.sent_for_approval:
            messages.info(request, result.message)
            context = _page_context(user, issue_sent=result.change)
            return render_htmx(request, LIST, "issue-panel", context)
        if not isinstance(result.value, services.IssuedKey):
            context = {"prime_user": user, "already_used": True}
            return no_store(render_htmx(request, ISSUED, "issued-panel", context))
        result = result.value
    return _issued(request, user, result)


@sensitive_variables("result", "issued")
def _issued(request: StaffRequest, user: PrimeUser, result: services.IssuedKey) -> HttpResponse:
    """The reveal-once page: the secret is in this response's body only (never stored)."""
    # The one message says nothing secret; the secret goes only into this response's body.
    if result.allowlist_error:
        messages.warning(request, KEY_ISSUED_WITHOUT_ALLOWLIST.format(key=result.key.prime_key_id))
    else:
        messages.success(request, KEY_ISSUED.format(key=result.key.prime_key_id))
    issued: dict[str, object] = {"prime_user": user, "issued": result, "key": result.key}
    return no_store(render_htmx(request, ISSUED, "issued-panel", issued))


@require_http_methods(["GET", "POST"])
@require_perm(MANAGE_KEYS)
@never_cache
@sensitive_variables("done")
def key_issue_approved(request: StaffRequest, pk: int) -> HttpResponse:
    """The requester issues an approved Trader key: GET asks to confirm, POST issues it and
    shows the secret once, in this response only. Nobody else can carry it out."""
    change = ChangeRequest.objects.filter(
        pk=pk, kind=ChangeKind.KEY_ISSUE, requested_by=request.user
    ).first()
    if change is None:
        raise Http404("No such approved key issue of yours.")
    user = _get_user(change.target_id)
    waiting = ""
    if change.state == RequestState.APPROVED:
        waiting = approvals.KeyIssueKind().waits_for(
            payload=json.loads(change.payload), target_id=change.target_id
        )
    context: dict[str, object] = {"prime_user": user, "change": change, "waiting": waiting}
    if request.method == "GET" or waiting:
        if waiting and request.method == "POST":
            context["error"] = KEY_NOT_YET.format(reason=waiting)
        return no_store(render_htmx(request, ISSUED, "issued-panel", context))
    try:
        done = execute_approved(change_id=change.pk, actor=request.user)
    except services.PrimeActionFailed as failure:
        context.update(error=failure.message, unknown=failure.outcome_unknown)
        return no_store(render_htmx(request, ISSUED, "issued-panel", context))
    except ChangeRefused as refused:
        context.update(error=refused.message)
        return no_store(render_htmx(request, ISSUED, "issued-panel", context))
    if not isinstance(done.value, services.IssuedKey):
        context.update(already_used=True)
        return no_store(render_htmx(request, ISSUED, "issued-panel", context))
    return _issued(request, user, done.value)


@require_GET
@require_perm(VIEW_PORTAL)
def key_row(request: StaffRequest, prime_key_id: str) -> HttpResponse:
    """One key's row (closes any editor under it)."""
    key = _get_key(prime_key_id)
    if not wants_fragment(request):
        return redirect("keys:list", prime_id=key.user.prime_id)
    return _row_response(request, KeyRow(key))


def _allowlist_initial(key: ApiKey) -> dict[str, str]:
    text = "\n".join(key.whitelisted_ips)
    return {"entries": text, "base": text}


@require_http_methods(["GET", "POST"])
@require_perm(MANAGE_KEYS)
def key_allowlist(request: StaffRequest, prime_key_id: str) -> HttpResponse:
    """GET: the editor. POST: save the previewed allow-list (step two)."""
    key = _get_key(prime_key_id)
    if request.method == "GET" or not key.is_active:
        form = AllowlistForm(initial=_allowlist_initial(key))
        notice = "" if key.is_active else KEY_NO_LONGER_ACTIVE
        return _row_response(request, KeyRow(key, mode="allowlist", form=form, notice=notice))
    form = AllowlistForm(request.POST)
    if not form.is_valid():
        return _row_response(request, KeyRow(key, mode="allowlist", form=form), status=422)
    parsed = form.parsed()
    diff = diff_allowlist(key.whitelisted_ips, parsed.entries)
    try:
        done = approvals.key_request_allowlist(
            key=key,
            actor=request.user,
            entries=list(parsed.entries),
            previewed_against=form.base_entries(),
            confirm_anywhere=form.cleaned_data["confirm_anywhere"],
        )
    except ChangeRefused as refused:
        return _row_response(request, KeyRow(key, error=refused.message))
    except services.AllowlistChangedSincePreview as stale:
        return _preview(request, key, parsed, diff, notice=stale.message, status=409)
    except services.EmptyAllowlistNotConfirmed as unconfirmed:
        return _preview(request, key, parsed, diff, confirm_error=unconfirmed.message, status=422)
    except services.PrimeActionFailed as failure:
        row = KeyRow(
            key,
            mode="allowlist",
            form=AllowlistForm(
                initial={**_allowlist_initial(key), "entries": form.data["entries"]}
            ),
            error=failure.message,
            unknown=failure.outcome_unknown,
        )
        return _row_response(request, row)
    if done.sent_for_approval:
        messages.info(request, done.message)
        return _row_response(request, KeyRow(key, sent=done.change))
    key = _get_key(prime_key_id)
    if key.whitelisted_ips:
        messages.success(request, ALLOWLIST_SAVED.format(key=key.prime_key_id))
    else:
        messages.warning(request, ALLOWLIST_EMPTY_SAVED.format(key=key.prime_key_id))
    return _row_done(request, key)


def _preview(
    request: HttpRequest,
    key: ApiKey,
    parsed: ParsedAllowlist,
    diff: AllowlistDiff,
    *,
    notice: str = "",
    confirm_error: str = "",
    status: int = 200,
) -> HttpResponse:
    """The diff, and a confirmation form carrying the normalised entries and their base."""
    row = KeyRow(
        key,
        mode="preview",
        parsed=parsed,
        diff=diff,
        notice=notice,
        confirm_error=confirm_error,
    )
    return _row_response(request, row, status=status)


@require_POST
@require_perm(MANAGE_KEYS)
def key_allowlist_preview(request: StaffRequest, prime_key_id: str) -> HttpResponse:
    """Step one: normalise, check and show the difference; nothing is sent yet."""
    key = _get_key(prime_key_id)
    form = AllowlistForm(request.POST)
    if not key.is_active or not form.is_valid():
        return _row_response(request, KeyRow(key, mode="allowlist", form=form), status=422)
    parsed = form.parsed()
    diff = diff_allowlist(key.whitelisted_ips, parsed.entries)
    if not diff.changed:
        notice = ALLOWLIST_UNCHANGED
        return _row_response(request, KeyRow(key, mode="allowlist", form=form, notice=notice))
    return _preview(request, key, parsed, diff)


@require_http_methods(["GET", "POST"])
@require_perm(MANAGE_KEYS)
def key_label(request: StaffRequest, prime_key_id: str) -> HttpResponse:
    """GET: the label editor in the row. POST: save the portal-only label."""
    key = _get_key(prime_key_id)
    if request.method == "GET":
        form = LabelForm(initial={"label": key.label})
        return _row_response(request, KeyRow(key, mode="label", form=form))
    form = LabelForm(request.POST)
    if not form.is_valid():
        return _row_response(request, KeyRow(key, mode="label", form=form), status=422)
    before = key.label
    key = services.key_update_label(key=key, actor=request.user, label=form.cleaned_data["label"])
    if key.label == before:
        messages.info(request, LABEL_UNCHANGED.format(key=key.prime_key_id))
    else:
        messages.success(request, LABEL_SAVED.format(key=key.prime_key_id))
    return _row_done(request, key)


@require_http_methods(["GET", "POST"])
@require_perm(MANAGE_KEYS)
def key_revoke(request: StaffRequest, prime_key_id: str) -> HttpResponse:
    """GET: the confirmation form. POST: revoke after the public key was typed."""
    key = _get_key(prime_key_id)
    if request.method == "GET" or key.revoked_at is not None:
        return _row_response(request, KeyRow(key, mode="revoke", form=RevokeForm(key=key)))
    form = RevokeForm(request.POST, key=key)
    if not form.is_valid():
        return _row_response(request, KeyRow(key, mode="revoke", form=form), status=422)
    try:
        done = approvals.key_request_revoke(
            key=key, actor=request.user, reason=form.cleaned_data["reason"]
        )
    except services.PrimeActionFailed as failure:
        row = KeyRow(
            key, mode="revoke", form=form, error=failure.message, unknown=failure.outcome_unknown
        )
        return _row_response(request, row)
    except ChangeRefused as refused:
        return _row_response(request, KeyRow(key, mode="revoke", form=form, error=refused.message))
    if done.sent_for_approval:
        messages.info(request, done.message)
        return _row_response(request, KeyRow(key, sent=done.change))
    messages.success(request, KEY_REVOKED.format(key=key.prime_key_id))
    return _row_done(request, key)


@require_POST
@require_perm(MANAGE_KEYS)
def key_resync(request: StaffRequest, prime_key_id: str) -> HttpResponse:
    """After an unknown outcome: read the key's user and keys from Kraken."""
    key = _get_key(prime_key_id)
    try:
        report = services.prime_sync(actor=request.user, user=key.user)
    except services.PrimeActionFailed as failure:
        row = KeyRow(key, error=failure.message, unknown=failure.outcome_unknown)
        return _row_response(request, row)
    if report.differences:
        messages.info(request, KEY_RESYNCED.format(differences=" ".join(report.differences)))
    else:
        messages.success(request, KEY_RESYNCED_NO_DIFFERENCE)
    return _row_done(request, key)


@require_POST
@require_perm(MANAGE_KEYS)
def user_keys_resync(request: StaffRequest, prime_id: str) -> HttpResponse:
    """After an issue whose outcome is unknown: read the user's keys from Kraken."""
    user = _get_user(prime_id)
    try:
        report = services.prime_sync(actor=request.user, user=user)
    except services.PrimeActionFailed as failure:
        messages.error(request, failure.message)
    else:
        found = len(report.differences)
        messages.info(
            request,
            USER_KEYS_RESYNCED.format(count=found)
            + (" " + " ".join(report.differences) if found else ""),
        )
    if wants_fragment(request):
        return render_htmx(request, LIST, "keys-page", _page_context(_get_user(prime_id)))
    return redirect("keys:list", prime_id=prime_id)


# --- the user's panel: role change and resync (they reach the user's keys) ----------------


def sync_summary(report: services.SyncReport) -> str:
    """What a sync found, in one line for the person."""
    if report.baseline and not report.differences:
        return SYNCED_BASELINE.format(users=report.users_seen, keys=report.keys_seen)
    if not report.differences:
        return SYNCED_NO_DIFFERENCE.format(users=report.users_seen, keys=report.keys_seen)
    return SYNCED.format(
        count=len(report.differences), users=report.users_seen, keys=report.keys_seen
    )


def _role_form(request: StaffRequest, user: PrimeUser) -> RoleForm:
    """The bound role form; a role change the service would refuse is a field error."""
    form = RoleForm(request.POST)
    if form.is_valid():
        try:
            services.role_change_check(user=user, role=form.cleaned_data["role"])
        except services.RoleAlreadyHeld as refused:
            form.add_error("role", refused.message)
    return form


@require_POST
@require_perm(MANAGE_PRIME_USERS)
def user_role_preview(request: StaffRequest, prime_id: str) -> HttpResponse:
    """Step one of a role change: what it would do to the keys, before anything is sent."""
    user = _get_user(prime_id)
    form = _role_form(request, user)
    if not form.is_valid():
        return user_panel(request, user, role_form=form, status=422)
    preview = selectors.role_change_preview(user=user, new_role=form.cleaned_data["role"])
    return user_panel(request, user, role_form=form, role_preview=preview)


@require_POST
@require_perm(MANAGE_PRIME_USERS)
def user_role(request: StaffRequest, prime_id: str) -> HttpResponse:
    """Step two: send UpdatePrimeApiUserRoles for the role that was previewed."""
    user = _get_user(prime_id)
    form = _role_form(request, user)
    if not form.is_valid():
        return user_panel(request, user, role_form=form, status=422)
    new_role, old = form.cleaned_data["role"], user.role
    try:
        done = approvals.prime_user_request_role(
            user=user,
            actor=request.user,
            role=new_role,
            expected_role=form.cleaned_data["expected_role"],
        )
    except ChangeRefused as refused:
        return user_panel_refused(request, user, refused)
    except services.RoleChangedSincePreview as stale:
        preview = selectors.role_change_preview(user=user, new_role=new_role)
        return user_panel(
            request,
            user,
            role_form=form,
            role_preview=preview,
            role_notice=stale.message,
            status=409,
        )
    except services.PrimeActionFailed as failure:
        return user_panel_failed(request, user, failure)
    if done.sent_for_approval:
        return user_panel_sent(request, user, done)
    user = _get_user(prime_id)
    return user_panel_done(
        request, user, ROLE_CHANGED.format(name=user.name, old=old, new=user.role)
    )


@require_POST
@require_perm(MANAGE_PRIME_USERS)
def user_detail_resync(request: StaffRequest, prime_id: str) -> HttpResponse:
    """Read this user and its keys from Kraken and reconcile the mirror; answer with the panel."""
    user = _get_user(prime_id)
    try:
        report = services.prime_sync(actor=request.user, user=user)
    except services.PrimeActionFailed as failure:
        return user_panel_failed(request, user, failure)
    return user_panel_done(request, user, sync_summary(report))


@require_POST
@require_perm(MANAGE_PRIME_USERS)
def sync_all(request: StaffRequest) -> HttpResponse:
    """Reconcile the whole mirror of users and keys with Kraken."""
    try:
        report = services.prime_sync(actor=request.user)
    except services.PrimeActionFailed as failure:
        messages.error(request, failure.message)
    else:
        messages.success(request, sync_summary(report))
    return redirect_to(request, "users:list")
