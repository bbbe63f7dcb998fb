"""`{% load batch_rows %}`: the batches list's rows and its filter form, cheaply.

    {% batch_rows page.rows %}           the table's rows
    {% batch_filter_form filter_form %}  the filter form (`batch_list.html#filter-form`)

A page of the list is 50 alike rows, printed by portal/settlement/rows.py (the template
engine spent about 0.6 ms a row on their values, filters and URL). The filter form renders
three field templates and their widgets; unfilled, as the list first shows it, it is the
same for everyone, so it is drawn once into the shared cache (keyed by the templates'
sources, its fields and Django's version, which draws the widgets), and drawn each time
when it carries filters.
"""

from __future__ import annotations

import django
from django import template
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from portal.fragments import cached_html, template_fingerprint
from portal.settlement import rows
from portal.settlement.forms import BatchFilterForm
from portal.settlement.models import Batch

register = template.Library()

FORM_TEMPLATE = "settlement/batch_list.html#filter-form"
# The unfilled form changes only with a deploy; this bounds how long an old one stays.
FORM_CACHE_SECONDS = 60 * 60


@register.simple_tag
def batch_rows(batches: list[Batch]) -> SafeString:
    """The list's rows, newest first (each batch annotated with `legs_total`, `legs_settled`)."""
    return rows.batch_rows(batches)


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
