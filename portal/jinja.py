"""Jinja2 for the rows of the busiest lists, drawn from inside their Django pages.

A Django template resolves every `{{ value }}` through a chain of lookups and wrappers;
a list of 50 rows with a dozen values each cost tens of milliseconds a request. Jinja2
compiles a template to Python, so the same rows cost about a millisecond. The pages, their
partials and htmx stay Django's: only the rows are Jinja2 templates (`*.jinja`, next to
their page), drawn in place by

    {% load jinja %}
    {% jinja "users/_rows.jinja" rows=page.rows can_review=perms.staff.manage_prime_users %}

The environment escapes every value as Django does (`&#x27;`, `&quot;`), so the rows are
the bytes the Django template gave; a value that is already safe (a form, a SafeString)
goes in as it is. Missing values render empty, as in Django templates, DEBUG or not.
Filters and globals that belong to an app are named in the TEMPLATES setting's OPTIONS
(`filters`, `globals`: name -> dotted path), as Django's own template libraries are, so
this module imports no app.
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any

import jinja2
from django import template
from django.template import engines
from django.template.context import Context
from django.utils.module_loading import import_string
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator
from django.utils.timezone import template_localtime
from markupsafe import Markup

ENGINE = "jinja2"  # the NAME of the Jinja2 entry of TEMPLATES

register = template.Library()


@register.simple_tag(takes_context=True)
def jinja(context: Context, name: str, **values: Any) -> SafeString:
    """`{% jinja "app/_rows.jinja" a=b ... %}`: that Jinja2 template with these values (and
    `request`, `csrf_input`, `csrf_token` of the page's request)."""
    request = context.get("request")
    return mark_safe(engines[ENGINE].get_template(name).render(values, request))  # noqa: S308


def environment(
    *, filters: dict[str, str] | None = None, globals: dict[str, str] | None = None, **options: Any
) -> jinja2.Environment:
    """The Jinja2 environment (TEMPLATES' OPTIONS["environment"])."""
    options.update(autoescape=True, undefined=jinja2.Undefined, finalize=_escaped)
    env = jinja2.Environment(**options)  # noqa: S701 (autoescape is on, one line above)
    env.filters.update(localtime=template_localtime, strftime=_strftime, truncatechars=_truncate)
    env.filters.update({name: import_string(path) for name, path in (filters or {}).items()})
    env.globals.update({name: import_string(path) for name, path in (globals or {}).items()})
    return env


def _escaped(value: Any) -> Any:
    """Every `{{ value }}` escaped by Django's rules (`django.utils.html.escape`)."""
    if hasattr(value, "__html__"):
        return value
    return Markup(html.escape(str(value)))  # noqa: S704 (escaped here: Django's escape())


def _strftime(value: datetime | None, fmt: str) -> str:
    """Django's `date` filter with a strftime format: local time, empty for no value."""
    if value is None or value == "":
        return ""
    return template_localtime(value).strftime(fmt)


def _truncate(value: object, length: int) -> str:
    """Django's `truncatechars`."""
    return Truncator(str(value)).chars(length)
