"""Jinja2 for the rows of the busiest lists, drawn from inside their Django pages.

A Django template resolves every `{{ value }}` through a chain of lookups and wrappers;
a list of 50 rows with a dozen values each cost tens of milliseconds a request. Jinja2
compiles a template to Python, so the same rows cost a millisecond or two. The pages, their
partials and htmx stay Django's: only the rows are Jinja2 templates (`*.jinja`, next to
their page), drawn in place by

    {% load jinja %}
    {% jinja "users/_rows.jinja" rows=page.rows can_review=perms.staff.manage_prime_users %}

Values are escaped (autoescape is always on); the two entities Jinja2 writes differently
from Django (`&#39;` and `&#34;` for `&#x27;` and `&quot;`) are renamed afterwards, so the
rows are the bytes the Django template gave. Missing values render empty, as in Django
templates, DEBUG or not. Globals that belong to an app are named in the TEMPLATES
setting's OPTIONS (`globals`: name -> dotted path), as Django's template libraries are,
so this module imports no app.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime, tzinfo
from typing import Any

import jinja2
from django import template
from django.conf import settings
from django.template import defaultfilters, engines
from django.template.context import Context
from django.templatetags.static import static
from django.urls import reverse
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator

from portal.web import row_url

ENGINE = "jinja2"  # the NAME of the Jinja2 entry of TEMPLATES

register = template.Library()


@register.simple_tag(takes_context=True)
def jinja(context: Context, name: str, **values: Any) -> SafeString:
    """`{% jinja "app/_rows.jinja" a=b ... %}`: that Jinja2 template with these values (and
    `request`, `csrf_input`, `csrf_token` of the page's request)."""
    return _django_entities(
        engines[ENGINE].get_template(name).render(values, context.get("request"))
    )


def render_jinja(name: str, **values: Any) -> SafeString:
    """The Jinja2 template `name` drawn with `values` alone (no request), as `{% jinja %}`
    draws it: for HTML kept and reused outside a page, such as cached rows."""
    return _django_entities(engines[ENGINE].get_template(name).render(values))


def _django_entities(html: str) -> SafeString:
    """Django's spelling of the two entities markupsafe writes otherwise (same characters)."""
    return mark_safe(html.replace("&#39;", "&#x27;").replace("&#34;", "&quot;"))  # noqa: S308


def environment(*, globals: dict[str, str] | None = None, **options: Any) -> jinja2.Environment:
    """The Jinja2 environment (TEMPLATES' OPTIONS["environment"])."""
    options.update(autoescape=True, undefined=jinja2.Undefined)
    env = jinja2.Environment(**options)  # noqa: S701 (autoescape is on, one line above)
    env.filters.update(localtime=_localtime, strftime=_strftime, truncatechars=_truncatechars)
    env.filters.update(date=_date, timesince=_timesince)
    env.globals.update(row_url=row_url, local_timezone=_local_timezone, url=reverse, static=static)
    env.globals.update({name: import_string(path) for name, path in (globals or {}).items()})
    return env


def _local_timezone() -> tzinfo | None:
    """The zone templates show times in (None without USE_TZ): read once per template."""
    return timezone.get_current_timezone() if settings.USE_TZ else None


def _localtime(value: datetime | None, tz: tzinfo | None = None) -> datetime | None:
    """Django's template_localtime, in `tz` (from local_timezone()) when given: asking for
    the current zone per row costs more than the conversion."""
    if (
        not isinstance(value, datetime)
        or not settings.USE_TZ
        or timezone.is_naive(value)
        or not getattr(value, "convert_to_local_time", True)
    ):
        return value
    return value.astimezone(tz) if tz is not None else timezone.localtime(value)


def _date(value: datetime | None, fmt: str) -> str:
    """Django's `date` filter (in local time, as Django templates give it)."""
    return defaultfilters.date(_localtime(value), fmt)


def _timesince(value: datetime | None) -> str:
    """Django's `timesince` filter."""
    return defaultfilters.timesince_filter(value)


def _strftime(value: datetime | None, fmt: str, tz: tzinfo | None = None) -> str:
    """Django's `date` filter with a strftime format: local time, empty for no value."""
    if value is None or value == "":
        return ""
    local = _localtime(value, tz)
    assert local is not None
    return local.strftime(fmt)


def _truncatechars(value: object, length: int) -> str:
    """Django's `truncatechars` (which returns short text NFC-normalised, as here)."""
    text = unicodedata.normalize("NFC", str(value))
    if len(text) <= length:
        return text
    return Truncator(text).chars(length)
