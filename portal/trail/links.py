"""Links other pages use to show "the history of this thing" in the audit trail."""

from __future__ import annotations

from urllib.parse import urlencode

from django.urls import reverse

from portal.audit.filters import AuditFilter


def history_url(target_type: str, target_id: str = "") -> str:
    """The audit page filtered to one target, e.g. history_url("key", key_id)."""
    params = {"target_type": str(target_type)}
    if target_id:
        params["target_id"] = str(target_id)
    return f"{reverse('audit:list')}?{urlencode(params)}"


def filter_query(filters: AuditFilter, **extra: str | int | None) -> str:
    """`?a=b&...` for these filters plus extra parameters (None values left out)."""
    params = filters.as_params()
    params.update({k: str(v) for k, v in extra.items() if v is not None})
    return f"?{urlencode(params)}" if params else "?"
