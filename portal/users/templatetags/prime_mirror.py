"""Template helpers for the users and keys pages."""

from __future__ import annotations

from urllib.parse import urlencode

from django import template
from django.urls import NoReverseMatch, reverse

register = template.Library()


@register.simple_tag
def audit_history_url(target_type: str, target_id: str) -> str:
    """The audit trail filtered to one target, or "" while the audit page is not there."""
    try:
        base = reverse("audit:list")
    except NoReverseMatch:
        return ""
    return f"{base}?{urlencode({'target_type': target_type, 'target_id': target_id})}"
