"""`{% load batch_parts %}`: the batch page's heavy parts, drawn once, then from the shared cache.

    {% batch_part live "legs" %}       the leg rows      {% batch_part live "chart" %}   the chart
    {% batch_part live "timeline" %}   the timeline      {% batch_part live "trades" %}  trade ids

The four are drawn together (rows by portal/settlement/rows.py, the chart's and trades'
frames by `settlement/_batch_parts.html`) and kept as one cache entry
(portal/fragments.py), keyed by every value they show: the batch row (all but the
refresh time, which the page draws each time), every column of each leg and of its change
request, the requester's and voters' names, what the person looking may do (their
permissions, whether they requested or already voted), the notices of an action, and the
seqs of the timeline's events (an event never changes). A change to any of them is a new
key, so every web process draws the change on its next request. One entry per batch page,
not one per part, so that a small local-memory cache holds as many pages as it can.

The rows' forms need the person's CSRF token: the parts are drawn with the shared stand-in
field, which each request swaps for its own (`portal.fragments.with_csrf`).
"""

from __future__ import annotations

from typing import Any

from django import template
from django.db import models
from django.template.context import Context
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from portal.fragments import CSRF_STAND_IN, cached_fragments, with_csrf
from portal.settlement import rows
from portal.settlement.selectors import LegRow, LiveBatch, net_position_chart
from portal.staff.roles import APPROVE_SETTLEMENT, REQUEST_SETTLEMENT

register = template.Library()

TEMPLATE = "settlement/_batch_parts.html"
PARTS = ("legs", "timeline", "chart", "trades")
# Entries are keyed by what they show, so this only bounds how long an unused one stays.
CACHE_SECONDS = 15 * 60
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
    return with_csrf(parts[name], context.get("request"))


def _parts(context: Context, live: LiveBatch) -> dict[str, SafeString]:
    perms = context.get("perms")
    seen: dict[str, Any] = {
        "can_request": bool(perms is not None and REQUEST_SETTLEMENT in perms),
        "can_approve": bool(perms is not None and APPROVE_SETTLEMENT in perms),
        "notices": list(context.get("notices") or []),
        "action_error": str(context.get("action_error") or ""),
        "error_asset": str(context.get("error_asset") or ""),
    }
    key = (
        _columns(live.batch, leave_out=_DRAWN_ELSEWHERE),
        [_row_key(row) for row in live.rows],
        seen["can_request"],
        seen["can_approve"],
        [(n.asset, n.level, n.message) for n in seen["notices"]],
        seen["action_error"],
        seen["error_asset"],
        [event.seq for event in live.timeline],
    )

    def render() -> dict[str, str]:
        chart = net_position_chart(rows=live.rows)
        frame = {
            "batch": live.batch,
            "chart": chart,
            "bars": rows.chart_bars(chart),
            "trade_items": rows.trade_items(live.batch.trade_ids),
        }
        return {
            "legs": rows.leg_rows(live.rows, batch=live.batch, csrf_field=CSRF_STAND_IN, **seen),
            "timeline": rows.timeline_rows(live.timeline),
            "chart": render_to_string(f"{TEMPLATE}#chart", frame),
            "trades": render_to_string(f"{TEMPLATE}#trades", frame),
        }

    return cached_fragments(
        "settlement:batch", key, render, template=TEMPLATE, timeout=CACHE_SECONDS
    )


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
