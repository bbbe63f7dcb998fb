"""The audit explorer: list with filters, one event's detail, and the export."""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from datetime import tzinfo
from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import quote

from django.conf import settings
from django.http import Http404, HttpResponse, HttpResponseBase, QueryDict, StreamingHttpResponse
from django.urls import get_script_prefix, reverse
from django.utils import timezone
from django.utils.safestring import SafeString
from django.utils.text import Truncator
from django.views.decorators.http import require_GET

from portal.audit import selectors
from portal.audit.diff import diff, summary
from portal.audit.export import CONTENT_TYPES, FORMATS, export_lines
from portal.audit.forms import AuditFilterForm
from portal.audit.models import AuditAction, AuditEvent, Outcome, TargetType
from portal.audit.page_sql import EventRow
from portal.audit.services import audit_record
from portal.audit.verify import read_head
from portal.fragments import cached_html
from portal.jinja import render_jinja
from portal.staff.access import require_perm
from portal.staff.roles import VIEW_PORTAL
from portal.trail.links import filter_query
from portal.web import RowUrl, StaffRequest, no_store, render_htmx, row_url

LIST = ("audit/list.html", "results")
_BADGES = {"succeeded": "ok", "failed": "bad", "refused": "warn"}
# What `get_FOO_display()` shows for each stored value (an unknown value shows as itself).
_ACTIONS = dict(AuditAction.choices)
_TARGET_TYPES = dict(TargetType.choices)
_OUTCOMES = dict(Outcome.choices)
# Rendered rows are kept this long in the shared cache: events never change once written
# (append-only, hash-chained), so the same rows always draw the same HTML.
ROWS_CACHE_SECONDS = 300
ROWS_TEMPLATE = "audit/_rows.jinja"


@dataclass(frozen=True)
class _Urls:
    """The addresses the list draws, reversed once per process (and URL prefix)."""

    list: str
    export: str
    detail: RowUrl


@lru_cache(maxsize=8)
def _urls(prefix: str, urlconf: str) -> _Urls:
    return _Urls(
        list=reverse("audit:list"), export=reverse("audit:export"), detail=row_url("audit:detail")
    )


def _list_urls() -> _Urls:
    return _urls(get_script_prefix(), str(settings.ROOT_URLCONF))


class _RowView(NamedTuple):
    """What one row of the list shows, every value ready to print."""

    seq: int
    url: str
    iso: str
    when: str
    actor: str
    action: str
    target_type: str
    target_type_lower: str
    target_id: str
    history: str
    badge: str
    outcome: str
    message: str


def _row(event: EventRow, urls: _Urls, zone: tzinfo) -> _RowView:
    at = event.occurred_at.astimezone(zone)  # timezone.localtime(), the zone read once
    target_type = str(_TARGET_TYPES.get(event.target_type, event.target_type))
    return _RowView(
        seq=event.seq,
        url=urls.detail(event.seq),
        iso=at.isoformat(),
        when=at.strftime("%Y-%m-%d %H:%M:%S"),
        actor=event.actor_label,
        action=str(_ACTIONS.get(event.action, event.action)),
        target_type=target_type,
        target_type_lower=target_type.lower(),
        target_id=event.target_id,
        history=f"{urls.list}?target_type={quote(event.target_type, safe='/')}"
        f"&target_id={quote(event.target_id, safe='/')}",
        badge=_BADGES.get(event.outcome, "info"),
        outcome=str(_OUTCOMES.get(event.outcome, event.outcome)),
        message=_shortened(event.message, 80),
    )


def _shortened(text: str, length: int) -> str:
    """`Truncator(text).chars(length)`, which returns short text NFC-normalised, as here."""
    text = unicodedata.normalize("NFC", text)
    return text if len(text) <= length else Truncator(text).chars(length)


def rows_fragment(events: list[EventRow]) -> SafeString:
    """The list's rows as HTML: from the shared cache when these events were drawn before,
    else drawn once by Jinja2 from precomputed values (no per-row URL reversing or filters)."""
    if not events:
        return SafeString("")

    def render() -> str:
        urls, zone = _list_urls(), timezone.get_current_timezone()
        return render_jinja(ROWS_TEMPLATE, rows=[_row(event, urls, zone) for event in events])

    return cached_html(
        "audit:rows",
        [event.seq for event in events],
        render,
        template=ROWS_TEMPLATE,
        timeout=ROWS_CACHE_SECONDS,
    )


def _query(query: QueryDict) -> str:
    """What `{% querystring query %}` gives: `?a=b&...`, or nothing for no parameters."""
    return f"?{query.urlencode()}" if query else ""


@require_GET
@require_perm(VIEW_PORTAL)
def event_list(request: StaffRequest) -> HttpResponse:
    """Newest first, filtered as you type, one page at a time by keyset on seq.

    The filter form and the results are drawn by Jinja2 inside the Django page
    (`audit/_filters.jinja`, `audit/_results.jinja`); the rows come from the shared cache.
    """
    form = AuditFilterForm(request.GET)
    urls = _list_urls()
    # A callable: the page calls it only when it draws the whole page (not for htmx).
    context: dict[str, Any] = {
        "form": form,
        "actors": selectors.audit_actor_names,
        "list_url": urls.list,
    }
    if not form.is_valid():
        context.update(page=None, filtered=True)
        return render_htmx(request, *LIST, context, status=422)
    filters = form.filters()
    page = selectors.audit_event_page(
        filters=filters,
        older_than=form.cleaned_data.get("older"),
        newer_than=form.cleaned_data.get("newer"),
    )
    path = request.path
    context.update(
        page=page,
        rows_html=rows_fragment(page.rows),
        pager=[(link, f"{path}{_query(link.query)}") for link in page.links(request.GET)],
        filtered=not filters.is_empty(),
        export_csv=f"{urls.export}{filter_query(filters, format='csv')}",
        export_jsonl=f"{urls.export}{filter_query(filters, format='jsonl')}",
    )
    return render_htmx(request, *LIST, context)


@require_GET
@require_perm(VIEW_PORTAL)
def event_detail(request: StaffRequest, seq: int) -> HttpResponse:
    """One event: who, what, from where, before/after as a diff, Kraken's answer, hashes."""
    try:
        event = selectors.audit_event_get(seq=seq)
    except AuditEvent.DoesNotExist as exc:
        raise Http404("No audit event with this number.") from exc
    changes = diff(event.before, event.after) if (event.before or event.after) else []
    context = {
        "event": event,
        "changes": changes,
        "counts": summary(changes),
        "response_text": _pretty(event.prime_response),
        "hash_ok": event.recomputed_hash() == event.hash,
        "has_next": selectors.audit_event_exists(seq=event.seq + 1),
    }
    return render_htmx(request, "audit/detail.html", "event", context)


@require_GET
@require_perm(VIEW_PORTAL)
def event_export(request: StaffRequest) -> HttpResponseBase:
    """The current filter as CSV or JSON Lines, streamed, with a proof trailer."""
    form = AuditFilterForm(request.GET)
    fmt = request.GET.get("format", "csv")
    if fmt not in FORMATS or not form.is_valid():
        return HttpResponse(
            "Cannot export: check the filters (and format=csv or format=jsonl).",
            status=422,
            content_type="text/plain; charset=utf-8",
        )
    filters = form.filters()
    head = read_head()
    audit_record(
        actor=request.user,
        action=AuditAction.AUDIT_EXPORTED,
        target_type=TargetType.AUDIT,
        after={"format": fmt, "filter": filters.as_params(), "head_seq": head[0] if head else 0},
    )
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response = StreamingHttpResponse(
        export_lines(filters=filters, fmt=fmt, exported_by=request.user.get_username()),
        content_type=CONTENT_TYPES[fmt],
    )
    response.headers["Content-Disposition"] = f'attachment; filename="audit-{stamp}.{fmt}"'
    no_store(response)
    return response


def _pretty(value: Any) -> str:
    if value is None:
        return ""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
