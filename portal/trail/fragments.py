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
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache

from django.core.cache import cache
from django.template import engines
from django.template.backends.jinja2 import Jinja2
from django.template.loader import get_template
from django.utils import timezone, translation
from django.utils.safestring import SafeString

from portal.jinja import ENGINE as JINJA_ENGINE

# Bump when what a caller puts into a key changes meaning.
_KEY_VERSION = "1"


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
