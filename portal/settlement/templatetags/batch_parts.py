"""`{% load batch_parts %}`: the batch page's heavy parts, drawn once, then from the shared cache.

    {% batch_part live "legs" %}       the leg rows      {% batch_part live "chart" %}   the chart
    {% batch_part live "timeline" %}   the timeline      {% batch_part live "trades" %}  trade ids

The four are drawn together (`settlement/_batch_parts.html`, the timeline's entries, the
chart's bars and the trade ids printed here: many alike rows) and kept as one cache entry
(portal/trail/fragments.py), keyed by every value they show: the batch row (all but the
refresh time, which the page draws each time), every column of each leg and of its change
request, the requester's and voters' names, what the person looking may do (their
permissions, whether they requested or already voted), the notices of an action, and the
seqs of the timeline's events (an event never changes). A change to any of them is a new
key, so every web process draws the change on its next request.

The rows' forms need the person's CSRF token: the parts are drawn with a stand-in, which
each request swaps for its own token (the stand-in's field cannot come from data, whose
`<` is always escaped).
"""

from __future__ import annotations

from html import escape
from typing import Any

from django import template
from django.db import models
from django.template.context import Context
from django.template.defaulttags import CsrfTokenNode
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.text import slugify

from portal.approvals.models import RequestState
from portal.audit.models import AuditAction, Outcome
from portal.settlement.messages import amount_text
from portal.settlement.selectors import (
    LegRow,
    LiveBatch,
    NetChart,
    TimelineEvent,
    net_position_chart,
)
from portal.staff.roles import APPROVE_SETTLEMENT, REQUEST_SETTLEMENT
from portal.staff.templatetags.row_urls import url_for
from portal.trail.fragments import cached_fragments

register = template.Library()

TEMPLATE = "settlement/_batch_parts.html"
PARTS = ("legs", "timeline", "chart", "trades")
TEMPLATE_PARTS = ("legs", "chart", "trades")
# Entries are keyed by what they show, so this only bounds how long an unused one stays.
CACHE_SECONDS = 15 * 60
_CSRF_STANDIN = "csrf-token-of-the-request"
_CSRF_FIELD = str(
    format_html('<input type="hidden" name="csrfmiddlewaretoken" value="{}">', _CSRF_STANDIN)
)
_ACTIONS = dict(AuditAction.choices)
_OUTCOMES = dict(Outcome.choices)
_TONES = {"succeeded": "ok", "unknown": "warn"}
_LEG_TONES = {"settled": " ok", "settling": " info"}
_TRANSFER_TONES = {"completed": " ok", "failed": " bad"}
# The batch's refresh time is drawn by the page itself (its age changes every second).
_DRAWN_ELSEWHERE = frozenset({"last_refreshed_at"})


@register.simple_tag(takes_context=True)
def batch_part(context: Context, live: LiveBatch, name: str) -> SafeString:
    """One of the batch's parts (`legs`, `timeline`, `chart`, `trades`) as HTML."""
    if name not in PARTS:
        raise template.TemplateSyntaxError(f"batch_part: no part {name!r} (one of {PARTS})")
    # One drawing (or cache read) per page, however many of its parts the page shows.
    memo = f"batch_parts:{id(live)}"
    parts = context.render_context.get(memo)
    if parts is None:
        parts = context.render_context[memo] = _parts(context, live)
    html = parts[name]
    if _CSRF_FIELD in html:
        html = SafeString(html.replace(_CSRF_FIELD, str(CsrfTokenNode().render(context))))
    return html


def _parts(context: Context, live: LiveBatch) -> dict[str, SafeString]:
    perms = context.get("perms")
    values: dict[str, Any] = {
        "batch": live.batch,
        "rows": live.rows,
        "can_request": bool(perms is not None and REQUEST_SETTLEMENT in perms),
        "can_approve": bool(perms is not None and APPROVE_SETTLEMENT in perms),
        "notices": list(context.get("notices") or []),
        "action_error": context.get("action_error") or "",
        "error_asset": context.get("error_asset") or "",
        "csrf_token": _CSRF_STANDIN,
    }
    key = (
        _columns(live.batch, leave_out=_DRAWN_ELSEWHERE),
        [_row_key(row) for row in live.rows],
        values["can_request"],
        values["can_approve"],
        [(n.asset, n.level, n.message) for n in values["notices"]],
        values["action_error"],
        values["error_asset"],
        [event.seq for event in live.timeline],
    )

    def render() -> dict[str, str]:
        chart = net_position_chart(rows=live.rows)
        drawn = {
            **values,
            "legs": [_leg(row, values) for row in live.rows],
            "chart": chart,
            "bars": _bars(chart),
            "trade_items": format_html_join("", _TRADE, ((t,) for t in live.batch.trade_ids)),
        }
        parts: dict[str, str] = {
            part: render_to_string(f"{TEMPLATE}#{part}", drawn) for part in TEMPLATE_PARTS
        }
        parts["timeline"] = _timeline(live.timeline)
        return parts

    return cached_fragments(
        "settlement:batch", key, render, template=TEMPLATE, timeout=CACHE_SECONDS
    )


def _leg(row: LegRow, values: dict[str, Any]) -> dict[str, object]:
    """What a leg's row shows, ready to print (no filters or reversing in the template)."""
    leg, change, batch = row.leg, row.change, values["batch"]
    view: dict[str, object] = {
        "slug": slugify(leg.asset),
        "asset": leg.asset,
        "status": leg.status,
        "state": change.state if change is not None else "",
        "waiting": row.waiting_for_confirmation,
        "direction": leg.get_direction_display() or leg.direction,
        "amount": "" if leg.amount is None else amount_text(leg.amount, leg.asset or ""),
        "can_settle": leg.can_settle,
        "status_tone": _LEG_TONES.get(leg.status, ""),
        "transfer_id": leg.transfer_id,
        "transfer_status": leg.transfer_status,
        "transfer_tone": _TRANSFER_TONES.get(leg.transfer_status, ""),
        "request_form": row.requestable and values["can_request"],
        "needs_check": row.needs_check,
        "notices": [n for n in values["notices"] if n.asset == leg.asset],
        "error": values["action_error"] if values["error_asset"] == leg.asset else "",
    }
    if view["request_form"]:
        view["request_url"] = reverse(
            "settlement:leg-request", args=[batch.prime_batch_id, leg.asset]
        )
    if change is None:
        return view
    zone = timezone.get_current_timezone()
    deciding = row.awaiting_approval and values["can_approve"]
    view.update(
        change=change.pk,
        change_url=url_for(change.pk, "approvals:detail"),
        tone=change.tone,
        state_label=change.get_state_display(),
        what=row.what,
        requester=str(change.requested_by),
        requested_at=change.created_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
        expires=(
            change.expires_at.astimezone(zone).strftime("%H:%M")
            if change.state == RequestState.PENDING
            else ""
        ),
        approvers=", ".join(row.approvers),
        rejection=row.rejection,
        note=row.note,
        own_request=deciding and row.own_request,
        decide=deciding and not row.own_request and row.can_decide,
    )
    if view["decide"]:
        view["reject_url"] = url_for(change.pk, "settlement:request-reject")
    return view


def _columns(row: models.Model, *, leave_out: frozenset[str] = frozenset()) -> tuple[object, ...]:
    """Every column of a row (its foreign keys as ids)."""
    return tuple(
        getattr(row, field.attname)
        for field in row._meta.concrete_fields
        if field.attname not in leave_out
    )


def _row_key(row: LegRow) -> tuple[object, ...]:
    change = row.change
    request: tuple[object, ...] | None = None
    if change is not None:
        votes = [(_columns(vote), str(vote.voter)) for vote in row.votes]
        request = (_columns(change), str(change.requested_by), votes)
    return (_columns(row.leg), request, row.can_decide, row.own_request)


# The timeline's entries are printed here rather than by the template engine, which spends
# about 40 µs an entry on its ten values (a few hundred entries a page): each value escaped
# as the engine would (`html.escape`, what `django.utils.html.escape` calls), then one
# `str.format`; the markup is what the template had.
_EVENT_ROW = """
    <li data-action="{action}">
      <time datetime="{iso}">{when}</time>
      <strong>{label}</strong>
      {leg}
      <span class="badge {tone}">{outcome}</span>
      <span class="muted">by {actor}</span>
      {message}
    </li>
    """
_LEG_BADGE = '<span class="badge">{}</span>'
_MESSAGE = '<div class="help">{}</div>'
_BAR = (
    '\n    <g class="bar {direction}" data-asset="{asset}">'
    '\n      <text x="{asset_x}" y="{text_y}" text-anchor="end" class="asset">{asset}</text>'
    '\n      <rect x="{x}" y="{y}" width="{width}" height="{height}" rx="2">'
    "<title>{asset}: {direction} {amount}</title></rect>"
    '\n      <text x="{label_x}" y="{text_y}" text-anchor="{anchor}" class="amount">{amount}</text>'
    "\n    </g>\n    "
)
_TRADE = "<li>{}</li>"


def _timeline(events: list[TimelineEvent]) -> SafeString:
    """The timeline's entries, oldest first, in local time."""
    zone = timezone.get_current_timezone()
    entries = []
    for event in events:
        at = event.occurred_at.astimezone(zone)
        asset, message = event.leg_asset, event.message
        entries.append(
            _EVENT_ROW.format(
                action=escape(event.action),
                iso=at.isoformat(),
                when=at.strftime("%Y-%m-%d %H:%M:%S"),
                label=escape(str(_ACTIONS.get(event.action, event.action))),
                leg=_LEG_BADGE.format(escape(asset)) if asset else "",
                tone=_TONES.get(event.outcome, "bad"),
                outcome=escape(str(_OUTCOMES.get(event.outcome, event.outcome))),
                actor=escape(event.actor_label),
                message=_MESSAGE.format(escape(message)) if message else "",
            )
        )
    return SafeString("".join(entries))


def _bars(chart: NetChart) -> SafeString:
    """The chart's bars, one per leg."""
    return format_html_join(
        "",
        _BAR,
        (
            {
                "direction": bar.direction,
                "asset": bar.asset,
                "asset_x": chart.asset_x,
                "text_y": bar.text_y,
                "x": bar.x,
                "y": bar.y,
                "width": bar.width,
                "height": chart.bar_height,
                "amount": bar.amount,
                "label_x": bar.label_x,
                "anchor": bar.anchor,
            }
            for bar in chart.bars
        ),
    )
