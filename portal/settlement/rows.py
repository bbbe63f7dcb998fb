"""Table rows of the settlement pages, printed without the template engine.

The batches list shows 50 alike rows and a batch page up to 300 timeline entries and a
row per leg: the template engine spent 30-600 µs a row on their values, filters and
URLs, more than all the page's reads. Each row here is the markup its template had, one
`str.format` with every value escaped as the engine would (`html.escape`, which
`django.utils.html.escape` calls), dates in the current time zone as `|date` prints them.
The pages' templates draw everything else (`settlement/batch_list.html`,
`settlement/batch_detail.html`, `settlement/_batch_parts.html`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, tzinfo
from html import escape

from django.template.defaultfilters import timesince_filter
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString
from django.utils.text import slugify

from portal.approvals.models import RequestState
from portal.audit.models import AuditAction, Outcome
from portal.settlement.messages import amount_text
from portal.settlement.models import AssetKind, Batch, BatchStatus, Direction
from portal.settlement.selectors import LegRow, NetChart, TimelineEvent
from portal.staff.templatetags.row_urls import url_for

# `get_<field>_display()` without its walk over the choices on every call.
_ACTIONS = dict(AuditAction.choices)
_OUTCOMES = dict(Outcome.choices)
_KINDS = dict(AssetKind.choices)
_STATUSES = dict(BatchStatus.choices)
_DIRECTIONS = dict(Direction.choices)


def _label(labels: dict[str, str], value: str) -> str:
    """What `{{ obj.get_<field>_display|default:obj.<field> }}` prints, unescaped."""
    return str(labels.get(value, value) or value)


# --- the batches list ------------------------------------------------------------------------

_BATCH = """
      <tr>
        <td><a class="mono" href="{url}">{batch_id}</a></td>
        <td>{kind}</td>
        <td>{created}</td>
        <td><span class="badge{final}">{status}</span></td>
        <td>{confirmed}</td>
        <td class="num">{trades}</td>
        <td>
          <div class="progress" role="progressbar" aria-label="Legs settled" \
aria-valuemin="0" aria-valuemax="{total}" aria-valuenow="{settled}">\
<span style="width: {percent}%"></span></div>
          <span class="help">{settled} / {total}</span>
        </td>
        <td class="help">{ago} ago</td>
      </tr>
    """
_CONFIRMED = '<span class="badge ok">Confirmed</span>'
_NOT_YET = '<span class="badge warn">Not yet</span>'


def batch_rows(batches: Iterable[Batch]) -> SafeString:
    """The list's rows (each batch annotated with `legs_total` and `legs_settled`)."""
    zone = timezone.get_current_timezone()
    rows = []
    for batch in batches:
        total, settled = getattr(batch, "legs_total", 0), getattr(batch, "legs_settled", 0)
        rows.append(
            _BATCH.format(
                url=escape(url_for(batch.prime_batch_id, "settlement:batch-detail")),
                batch_id=escape(batch.prime_batch_id),
                kind=escape(_label(_KINDS, batch.asset_kind)),
                created=batch.created_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
                final=" ok" if batch.is_final else "",
                status=escape(_label(_STATUSES, batch.status)),
                confirmed=_CONFIRMED if batch.confirmed else _NOT_YET,
                trades=batch.trade_count,
                total=total,
                settled=settled,
                percent=_width(settled, total or 1),
                ago=escape(timesince_filter(batch.last_refreshed_at) or "never"),
            )
        )
    return SafeString("".join(rows))


def _width(value: int, most: int) -> str:
    """What `{% widthratio value most 100 %}` prints."""
    try:
        return str(round(float(value) / float(most) * 100))
    except ZeroDivisionError:
        return "0"
    except (ValueError, TypeError, OverflowError):
        return ""


# --- a batch's timeline ----------------------------------------------------------------------

_EVENT = """
    <li data-action="{action}">
      <time datetime="{iso}">{when}</time>
      <strong>{label}</strong>
      {leg}
      <span class="badge {tone}">{outcome}</span>
      <span class="muted">by {actor}</span>
      {message}
    </li>
    """
_EVENT_LEG = '<span class="badge">{}</span>'
_EVENT_MESSAGE = '<div class="help">{}</div>'
_OUTCOME_TONES = {"succeeded": "ok", "unknown": "warn"}


def timeline_rows(events: Iterable[TimelineEvent]) -> SafeString:
    """A batch's timeline entries, in the order given."""
    zone = timezone.get_current_timezone()
    # A page repeats a handful of actions, outcomes and actors: each printed once.
    actions: dict[str, tuple[str, str]] = {}
    outcomes: dict[str, tuple[str, str]] = {}
    actors: dict[str, str] = {}
    entries = []
    for event in events:
        at = event.occurred_at.astimezone(zone)
        iso = at.isoformat()
        asset, message = event.leg_asset, event.message
        action = actions.get(event.action)
        if action is None:
            action = actions[event.action] = (
                escape(event.action),
                escape(_label(_ACTIONS, event.action)),
            )
        outcome = outcomes.get(event.outcome)
        if outcome is None:
            outcome = outcomes[event.outcome] = (
                _OUTCOME_TONES.get(event.outcome, "bad"),
                escape(_label(_OUTCOMES, event.outcome)),
            )
        actor = actors.get(event.actor_label)
        if actor is None:
            actor = actors[event.actor_label] = escape(event.actor_label)
        entries.append(
            _EVENT.format(
                action=action[0],
                iso=iso,
                # `strftime("%Y-%m-%d %H:%M:%S")`, read off the ISO form (four-digit years).
                when=f"{iso[:10]} {iso[11:19]}" if at.year >= 1000 else _when(at),
                label=action[1],
                leg=_EVENT_LEG.format(escape(asset)) if asset else "",
                tone=outcome[0],
                outcome=outcome[1],
                actor=actor,
                message=_EVENT_MESSAGE.format(escape(message)) if message else "",
            )
        )
    return SafeString("".join(entries))


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S")


# --- a batch's legs --------------------------------------------------------------------------

_LEG = """
      <tr id="leg-{slug}" data-asset="{asset}" data-leg-status="{status}" \
data-request-state="{state}" data-waiting="{waiting}">
        <td><strong>{asset}</strong></td>
        <td>{direction}</td>
        <td class="num mono">{amount}</td>
        <td>{can_settle}</td>
        <td><span class="badge{status_tone}" data-leg-status-badge>{status}</span></td>
        <td>{transfer}</td>
        <td>
          {request}
        </td>
        <td class="leg-actions">
          {actions}
        </td>
      </tr>
    """
_NO_LEGS = """
      <tr><td colspan="8" class="muted">This batch has no legs (its trades net to zero).</td></tr>
    """
_CAN_SETTLE = ('<span class="badge">no</span>', '<span class="badge ok">yes</span>')
_LEG_TONES = {"settled": " ok", "settling": " info"}
_TRANSFER = '<span class="mono">#{}</span> <span class="badge{}">{}</span>'
_TRANSFER_TONES = {"completed": " ok", "failed": " bad"}
_NO_TRANSFER = '<span class="muted">none</span>'
_NOT_REQUESTED = '<span class="muted">not requested</span>'
_REQUEST = """<a href="{url}" class="badge {tone}" data-request-badge>{label}</a>
            <div class="help">{what} · requested by {requester} {requested_at}
              {expires}</div>
            {approvers}
            {rejection}
            {note}"""
_WAITING = "Approved — waits for Kraken's confirmation"
_EXPIRES = "(expires {})"
_APPROVERS = '<div class="help">Approved by {}</div>'
_REJECTION = '<div class="help">Rejected by {}</div>'
_NOTE = '<div class="note" data-request-note>{}</div>'
_REQUEST_FORM = """
            <form method="post" action="{url}" class="inline"
                  hx-post="{url}" hx-target="#batch-live" hx-swap="outerHTML">
              {csrf}<button type="submit" class="primary">Request settlement</button>
            </form>
          """
_OWN_REQUEST = """
              <span class="help">You requested this; another Approver must decide.</span>
          """
_DECIDE = """
              <label class="inline"><input type="checkbox" name="change" value="{pk}" \
form="approve-legs" data-approve-choice>
                Approve {what}</label>
              <form method="post" action="{url}" class="reject"
                    hx-post="{url}" hx-target="#batch-live" hx-swap="outerHTML">
                {csrf}
                <label for="reason-{pk}" class="sr-only">Reason</label>
                <input id="reason-{pk}" name="reason" maxlength="500" required \
placeholder="Reason for rejecting">
                <button type="submit" class="danger">Reject</button>
              </form>
          """
_NEEDS_CHECK = """
            <span class="help">Outcome unknown: the poller checks with Kraken{}. \
Nothing is sent meanwhile.</span>
          """
_CHECK_NOW = ", or use “Check with Kraken now”"
_NOTICE = '<p class="message {}" role="status" data-action-message>{}</p>'
_ERROR = '<p class="message error" role="alert" data-action-error>{}</p>'


def leg_rows(
    rows: Sequence[LegRow],
    *,
    batch: Batch,
    can_request: bool,
    can_approve: bool,
    notices: Sequence[object] = (),
    action_error: str = "",
    error_asset: str = "",
    csrf_field: str = "",
) -> SafeString:
    """A batch's leg rows as the person looking may act on them; `notices` (each with
    `asset`, `level`, `message`) and the action's error shown beside their leg."""
    if not rows:
        return SafeString(_NO_LEGS)
    zone = timezone.get_current_timezone()
    printed = []
    for row in rows:
        leg, change = row.leg, row.change
        status = escape(leg.status)
        printed.append(
            _LEG.format(
                slug=escape(slugify(leg.asset)),
                asset=escape(leg.asset),
                status=status,
                state=escape(change.state) if change is not None else "",
                waiting="true" if row.waiting_for_confirmation else "false",
                direction=escape(_label(_DIRECTIONS, leg.direction)),
                amount="" if leg.amount is None else escape(amount_text(leg.amount, leg.asset)),
                can_settle=_CAN_SETTLE[bool(leg.can_settle)],
                status_tone=_LEG_TONES.get(leg.status, ""),
                transfer=(
                    _TRANSFER.format(
                        escape(leg.transfer_id),
                        _TRANSFER_TONES.get(leg.transfer_status, ""),
                        escape(leg.transfer_status),
                    )
                    if leg.transfer_id
                    else _NO_TRANSFER
                ),
                request=_NOT_REQUESTED if change is None else _request(row, zone),
                actions=_actions(
                    row,
                    batch=batch,
                    can_request=can_request,
                    can_approve=can_approve,
                    notices=[n for n in notices if getattr(n, "asset", None) == leg.asset],
                    error=action_error if error_asset == leg.asset else "",
                    csrf_field=csrf_field,
                ),
            )
        )
    return SafeString("".join(printed))


def _request(row: LegRow, zone: tzinfo) -> str:
    change = row.change
    assert change is not None
    approvers, rejection, note = ", ".join(row.approvers), row.rejection, row.note
    pending = change.state == RequestState.PENDING
    return _REQUEST.format(
        url=escape(url_for(change.pk, "approvals:detail")),
        tone=escape(change.tone),
        label=_WAITING if row.waiting_for_confirmation else escape(change.get_state_display()),
        what=escape(row.what),
        requester=escape(str(change.requested_by)),
        requested_at=change.created_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
        expires=_EXPIRES.format(change.expires_at.astimezone(zone).strftime("%H:%M"))
        if pending
        else "",
        approvers=_APPROVERS.format(escape(approvers)) if approvers else "",
        rejection=_REJECTION.format(escape(rejection)) if rejection else "",
        note=_NOTE.format(escape(note)) if note else "",
    )


def _actions(
    row: LegRow,
    *,
    batch: Batch,
    can_request: bool,
    can_approve: bool,
    notices: list[object],
    error: str,
    csrf_field: str,
) -> str:
    leg, change, printed = row.leg, row.change, []
    if row.requestable and can_request:
        url = reverse("settlement:leg-request", args=[batch.prime_batch_id, leg.asset])
        printed.append(_REQUEST_FORM.format(url=escape(url), csrf=csrf_field))
    if change is not None and row.awaiting_approval and can_approve:
        if row.own_request:
            printed.append(_OWN_REQUEST)
        elif row.can_decide:
            printed.append(
                _DECIDE.format(
                    pk=change.pk,
                    what=escape(row.what),
                    url=escape(url_for(change.pk, "settlement:request-reject")),
                    csrf=csrf_field,
                )
            )
    if row.needs_check:
        printed.append(_NEEDS_CHECK.format(_CHECK_NOW if can_request or can_approve else ""))
    printed += [
        _NOTICE.format(escape(str(getattr(n, "level", ""))), escape(str(getattr(n, "message", ""))))
        for n in notices
    ]
    if error:
        printed.append(_ERROR.format(escape(error)))
    return "".join(printed)


# --- a batch's chart and trades --------------------------------------------------------------

_BAR = """
    <g class="bar {direction}" data-asset="{asset}">
      <text x="{asset_x}" y="{text_y}" text-anchor="end" class="asset">{asset}</text>
      <rect x="{x}" y="{y}" width="{width}" height="{height}" rx="2">\
<title>{asset}: {direction} {amount}</title></rect>
      <text x="{label_x}" y="{text_y}" text-anchor="{anchor}" class="amount">{amount}</text>
    </g>
    """
_TRADE = "<li>{}</li>"


def chart_bars(chart: NetChart) -> SafeString:
    """The net chart's bars, one per leg."""
    return SafeString(
        "".join(
            _BAR.format(
                direction=escape(bar.direction),
                asset=escape(bar.asset),
                asset_x=chart.asset_x,
                text_y=bar.text_y,
                x=bar.x,
                y=bar.y,
                width=bar.width,
                height=chart.bar_height,
                amount=escape(bar.amount),
                label_x=bar.label_x,
                anchor=escape(bar.anchor),
            )
            for bar in chart.bars
        )
    )


def trade_items(trade_ids: Iterable[object]) -> SafeString:
    """A batch's trade ids as list items."""
    return SafeString("".join(_TRADE.format(escape(str(trade_id))) for trade_id in trade_ids))
