"""Rendered HTML kept in the shared cache, keyed by everything it is drawn from.

A list's rows cost far more to draw through the template engine than to read. HTML drawn
only from audit events is keyed by their seqs: an event never changes once written
(append-only, hash-chained), so the same events always draw the same HTML. HTML drawn from
rows that do change (a batch, a leg and its request) is keyed by every value it shows, so
a change makes a new key and the old entry is simply never asked for again (it expires).
Either way the key is data, never a flag some process must remember to clear, so every web
process sees a change on its next request.

The key also names the template's source (an edited template draws afresh), the time zone
(dates are shown in local time) and the language.

HTML with forms needs the request's CSRF token, which must never be stored: it is drawn
with `CSRF_STAND_IN` and each request puts its own in (`with_csrf`). No data can print the
stand-in (its `<` would be escaped).

Used by the audit rows, the batch page's parts, the batches list's filter form and the users
list's rows (`cached_jinja`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any

from django.core.cache import cache
from django.http import HttpRequest
from django.template import engines
from django.template.backends.jinja2 import Jinja2
from django.template.backends.utils import csrf_input
from django.template.loader import get_template
from django.urls import get_script_prefix
from django.utils import timezone, translation
from django.utils.html import format_html
from django.utils.safestring import SafeString
from markupsafe import Markup

from portal.jinja import ENGINE as JINJA_ENGINE
from portal.jinja import render_jinja

# Bump when what a caller puts into a key changes meaning.
_KEY_VERSION = "1"
# The CSRF field HTML kept in the cache carries instead of the request's own.
CSRF_STAND_IN = str(
    format_html(
        '<input type="hidden" name="csrfmiddlewaretoken" value="{}">', "csrf-token-of-the-request"
    )
)


@lru_cache(maxsize=64)
def template_fingerprint(name: str) -> str:
    """A short digest of a template's source (`name` may be `"file.html#partial"`; a
    `*.jinja` name is a template of the Jinja2 engine, portal/jinja.py)."""
    path = name.partition("#")[0]
    if path.endswith(".jinja"):
        backend = engines[JINJA_ENGINE]
        assert isinstance(backend, Jinja2) and backend.env.loader is not None
        source = backend.env.loader.get_source(backend.env, path)[0]
    else:
        compiled = getattr(get_template(path), "template", None)
        source = str(getattr(compiled, "source", name))
    return hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()[:12]


def fragment_key(namespace: str, parts: Iterable[object]) -> str:
    """The cache key of HTML drawn from `parts` (plain values: str, int, datetime, Decimal...).

    `parts` must hold every value the HTML shows; reprs of plain values are the same in
    every process, so the key is too.
    """
    raw = repr((timezone.get_current_timezone_name(), translation.get_language(), *parts))
    digest = hashlib.sha1(raw.encode(), usedforsecurity=False).hexdigest()
    return f"html:{_KEY_VERSION}:{namespace}:{digest}"


def cached_fragments(
    namespace: str,
    parts: Iterable[object],
    render: Callable[[], Mapping[str, str]],
    *,
    template: str,
    timeout: int,
) -> dict[str, SafeString]:
    """Several named pieces of HTML drawn from `parts` with `template`, kept as one entry:
    from the shared cache when the same parts were drawn before, else `render()` once and
    kept for `timeout` seconds."""
    key = fragment_key(namespace, (template_fingerprint(template), *parts))
    cached = cache.get(key)
    if not isinstance(cached, dict):
        cached = {name: str(html) for name, html in render().items()}
        cache.set(key, cached, timeout)
    return {name: SafeString(html) for name, html in cached.items()}


def cached_html(
    namespace: str,
    parts: Iterable[object],
    render: Callable[[], str],
    *,
    template: str,
    timeout: int,
) -> SafeString:
    """HTML drawn from `parts` with `template` (one piece of `cached_fragments`)."""
    pieces = cached_fragments(
        namespace, parts, lambda: {"html": render()}, template=template, timeout=timeout
    )
    return pieces["html"]


def with_csrf(html: str, request: HttpRequest | None) -> SafeString:
    """`html` with the request's own CSRF field where it was drawn with `CSRF_STAND_IN`
    (none without a request, as `{% csrf_token %}` draws none without a token)."""
    if CSRF_STAND_IN in html:
        html = html.replace(CSRF_STAND_IN, str(csrf_input(request)) if request else "")
    return SafeString(html)


def cached_jinja(
    name: str,
    values: dict[str, Any],
    request: HttpRequest,
    *,
    depends_on: Iterable[object],
    timeout: int,
) -> SafeString:
    """The Jinja2 template `name` drawn with `values`, from the shared cache when it was
    drawn before from the same content: `depends_on` is every value it shows and everything
    about the viewer it depends on (plain values). The template's `csrf_input` is the
    request's own, put in after the cache."""
    html = cached_html(
        f"jinja:{name}",
        (get_script_prefix(), *depends_on),
        lambda: render_jinja(name, **values, csrf_input=Markup(CSRF_STAND_IN)),  # noqa: S704
        template=name,
        timeout=timeout,
    )
    return with_csrf(html, request)
