"""The Prime status strip's data, computed only when a page actually shows the strip."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from portal.connection.selectors import connection_status_cached


def prime_status(request: HttpRequest) -> dict[str, Any]:
    """`prime_status` for templates/prime/_status.html: only if rendered, from the shared
    cache (at most one query every few seconds)."""
    return {"prime_status": SimpleLazyObject(connection_status_cached)}
