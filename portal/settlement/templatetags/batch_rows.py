"""`{% load batch_rows %}`: the batches list's rows and its filter form, cheaply.

    {% batch_rows page.rows %}           the table's rows
    {% batch_filter_form filter_form %}  the filter form (`batch_list.html#filter-form`)

A page of the list is 50 alike rows: the template engine spent about 0.6 ms a row on their
ten values, filters and URL, so the rows are printed here (the markup the template had,
each value escaped as the engine would). The filter form renders three field templates
and their widgets; unfilled, as the list first shows it, it is the same for everyone, so
it is drawn once into the shared cache (keyed by the templates' sources and Django's
version, which draws the widgets), and drawn each time when it carries filters.
"""

from __future__ import annotations

from html import escape

import django
from django import template
from django.template.defaultfilters import timesince_filter
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import SafeString

from portal.settlement.forms import BatchFilterForm
from portal.settlement.models import AssetKind, Batch, BatchStatus
from portal.staff.templatetags.row_urls import url_for
from portal.trail.fragments import cached_html, template_fingerprint

register = template.Library()

FORM_TEMPLATE = "settlement/batch_list.html#filter-form"
# The unfilled form changes only with a deploy; this bounds how long an old one stays.
FORM_CACHE_SECONDS = 60 * 60

_ROW = """
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
# `get_<field>_display()` without its per-call walk over the choices.
_KINDS = dict(AssetKind.choices)
_STATUSES = dict(BatchStatus.choices)


@register.simple_tag
def batch_rows(batches: list[Batch]) -> SafeString:
    """The list's rows, newest first (each batch annotated with `legs_total`, `legs_settled`)."""
    zone = timezone.get_current_timezone()
    rows = []
    for batch in batches:
        total, settled = getattr(batch, "legs_total", 0), getattr(batch, "legs_settled", 0)
        rows.append(
            _ROW.format(
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


def _label(labels: dict[str, str], value: str) -> str:
    """What `{{ obj.get_<field>_display|default:obj.<field> }}` prints."""
    return str(labels.get(value, value) or value)


def _width(value: int, most: int) -> str:
    """What `{% widthratio value most 100 %}` prints."""
    try:
        return str(round(float(value) / float(most) * 100))
    except ZeroDivisionError:
        return "0"
    except (ValueError, TypeError, OverflowError):
        return ""


@register.simple_tag
def batch_filter_form(form: BatchFilterForm) -> SafeString:
    """The list's filter form (from the shared cache when it carries no filters)."""
    if form.is_bound:
        return SafeString(render_to_string(FORM_TEMPLATE, {"filter_form": form}))
    drawn_with = [template_fingerprint(name) for name in ("forms/field.html", "forms/errors.html")]
    fields = [
        (name, field.label, field.help_text, field.required, getattr(field, "choices", None))
        for name, field in form.fields.items()
    ]
    return cached_html(
        "settlement:batch-filter",
        [django.get_version(), *drawn_with, repr(fields)],
        lambda: render_to_string(FORM_TEMPLATE, {"filter_form": form}),
        template=FORM_TEMPLATE,
        timeout=FORM_CACHE_SECONDS,
    )
