"""A user's keys: issue (secret shown once), edit the allow-list in place, revoke."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from portal.keys import selectors, services
from portal.keys.allowlist import AllowlistDiff, ParsedAllowlist, diff_allowlist
from portal.keys.forms import AllowlistForm, IssueForm, LabelForm, RevokeForm, new_issue_token
from portal.keys.models import ApiKey
from portal.staff.access import require_perm
from portal.staff.roles import MANAGE_KEYS, VIEW_PORTAL
from portal.users import selectors as user_selectors
from portal.users.models import PrimeUser
from portal.users.services import prime_sync
from portal.web import no_store, render_htmx, wants_fragment

LIST = "keys/list.html"
ISSUED = "keys/issued.html"


@dataclass
class KeyRow:
    """One key's row and what is open under it (an editor, a preview, an error)."""

    key: ApiKey
    mode: str = ""  # "", "allowlist", "preview", "revoke", "label"
    form: Any = None
    parsed: ParsedAllowlist | None = None
    diff: AllowlistDiff | None = None
    error: str = ""
    unknown: bool = False
    notice: str = ""
    confirm_error: str = ""

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
        "issue_form": IssueForm(user=user),
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
def key_list(request: HttpRequest, prime_id: str) -> HttpResponse:
    """The user's keys, and the form to issue one."""
    user = _get_user(prime_id)
    return render_htmx(request, LIST, "keys-page", _page_context(user))


@require_http_methods(["GET", "POST"])
@require_perm(MANAGE_KEYS)
@never_cache
@sensitive_post_parameters()
@sensitive_variables("result")
def key_issue(request: HttpRequest, prime_id: str) -> HttpResponse:
    """Issue a key and show its secret in this response only; a GET shows nothing secret."""
    user = _get_user(prime_id)
    if request.method == "GET":
        return no_store(render_htmx(request, ISSUED, "issued-panel", {"prime_user": user}))
    form = IssueForm(request.POST, user=user)
    if not form.is_valid():
        if "token" in form.errors:
            # A fresh token, so that submitting again works after reading the error.
            form.data = form.data.copy()
            form.data["token"] = new_issue_token(user)
        return render_htmx(
            request, LIST, "issue-panel", _page_context(user, issue_form=form), status=422
        )
    try:
        result = services.key_issue(
            user=user,
            actor=request.user,
            label=form.cleaned_data["label"],
            whitelisted_ips=form.entries,
            issue_token=form.cleaned_data["token"],
        )
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
    # The one message says nothing secret; the secret goes only into this response's body.
    if result.allowlist_error:
        messages.warning(request, f"Key {result.key.prime_key_id} issued without its allow-list.")
    else:
        messages.success(request, f"Key {result.key.prime_key_id} issued.")
    context = {"prime_user": user, "issued": result, "key": result.key}
    return no_store(render_htmx(request, ISSUED, "issued-panel", context))


@require_GET
@require_perm(VIEW_PORTAL)
def key_row(request: HttpRequest, prime_key_id: str) -> HttpResponse:
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
def key_allowlist(request: HttpRequest, prime_key_id: str) -> HttpResponse:
    """GET: the editor. POST: save the previewed allow-list (step two)."""
    key = _get_key(prime_key_id)
    if request.method == "GET" or not key.is_active:
        form = AllowlistForm(initial=_allowlist_initial(key))
        notice = "" if key.is_active else "This key is no longer active."
        return _row_response(request, KeyRow(key, mode="allowlist", form=form, notice=notice))
    form = AllowlistForm(request.POST)
    if not form.is_valid():
        return _row_response(request, KeyRow(key, mode="allowlist", form=form), status=422)
    parsed = form.parsed()
    diff = diff_allowlist(key.whitelisted_ips, parsed.entries)
    if form.base_entries() != list(key.whitelisted_ips):
        notice = "The allow-list changed since your preview; check this preview again."
        return _preview(request, key, parsed, diff, notice=notice, status=409)
    if not parsed.entries and not form.cleaned_data["confirm_anywhere"]:
        confirm_error = (
            "An empty allow-list makes the key usable from any address: tick the box to "
            "confirm that."
        )
        return _preview(request, key, parsed, diff, confirm_error=confirm_error, status=422)
    try:
        services.key_update_allowlist(key=key, actor=request.user, entries=list(parsed.entries))
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
    if key.whitelisted_ips:
        messages.success(request, f"Allow-list of key {key.prime_key_id} saved.")
    else:
        messages.warning(
            request, f"Key {key.prime_key_id} has no allow-list: usable from any address."
        )
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
def key_allowlist_preview(request: HttpRequest, prime_key_id: str) -> HttpResponse:
    """Step one: normalise, check and show the difference; nothing is sent yet."""
    key = _get_key(prime_key_id)
    form = AllowlistForm(request.POST)
    if not key.is_active or not form.is_valid():
        return _row_response(request, KeyRow(key, mode="allowlist", form=form), status=422)
    parsed = form.parsed()
    diff = diff_allowlist(key.whitelisted_ips, parsed.entries)
    if not diff.changed:
        notice = "That is the allow-list the key already has: nothing to save."
        return _row_response(request, KeyRow(key, mode="allowlist", form=form, notice=notice))
    return _preview(request, key, parsed, diff)


@require_http_methods(["GET", "POST"])
@require_perm(MANAGE_KEYS)
def key_label(request: HttpRequest, prime_key_id: str) -> HttpResponse:
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
        messages.info(request, f"Key {key.prime_key_id} already had that label.")
    else:
        messages.success(request, f"Label of key {key.prime_key_id} saved.")
    return _row_done(request, key)


@require_http_methods(["GET", "POST"])
@require_perm(MANAGE_KEYS)
def key_revoke(request: HttpRequest, prime_key_id: str) -> HttpResponse:
    """GET: the confirmation form. POST: revoke after the public key was typed."""
    key = _get_key(prime_key_id)
    if request.method == "GET" or key.revoked_at is not None:
        return _row_response(request, KeyRow(key, mode="revoke", form=RevokeForm(key=key)))
    form = RevokeForm(request.POST, key=key)
    if not form.is_valid():
        return _row_response(request, KeyRow(key, mode="revoke", form=form), status=422)
    try:
        services.key_revoke(key=key, actor=request.user, reason=form.cleaned_data["reason"])
    except services.PrimeActionFailed as failure:
        row = KeyRow(
            key, mode="revoke", form=form, error=failure.message, unknown=failure.outcome_unknown
        )
        return _row_response(request, row)
    messages.success(request, f"Key {key.prime_key_id} revoked.")
    return _row_done(request, key)


@require_POST
@require_perm(MANAGE_KEYS)
def key_resync(request: HttpRequest, prime_key_id: str) -> HttpResponse:
    """After an unknown outcome: read the key's user and keys from Kraken."""
    key = _get_key(prime_key_id)
    try:
        report = prime_sync(actor=request.user, user=key.user)
    except services.PrimeActionFailed as failure:
        row = KeyRow(key, error=failure.message, unknown=failure.outcome_unknown)
        return _row_response(request, row)
    if report.differences:
        messages.info(request, "Resynced: " + " ".join(report.differences))
    else:
        messages.success(request, "Resynced: the portal already matched Kraken.")
    return _row_done(request, key)


@require_POST
@require_perm(MANAGE_KEYS)
def user_keys_resync(request: HttpRequest, prime_id: str) -> HttpResponse:
    """After an issue whose outcome is unknown: read the user's keys from Kraken."""
    user = _get_user(prime_id)
    try:
        report = prime_sync(actor=request.user, user=user)
    except services.PrimeActionFailed as failure:
        messages.error(request, failure.message)
    else:
        found = len(report.differences)
        messages.info(
            request,
            f"Resynced with Kraken: {found} difference(s) found."
            + (" " + " ".join(report.differences) if found else ""),
        )
    if wants_fragment(request):
        return render_htmx(request, LIST, "keys-page", _page_context(_get_user(prime_id)))
    return redirect("keys:list", prime_id=prime_id)
