"""`{% load audit_links %}`: link any page to the audit history of what it shows.

{% audit_history_url "key" key.key_id %}      -> /audit/?target_type=key&target_id=...
{% audit_history_link "batch" batch.prime_batch_id %}   -> <a href=...>History</a>
{% audit_history_link "prime_user" user.user_id label="Audit trail" %}
"""

from __future__ import annotations

from django import template
from django.utils.html import format_html

from portal.trail.links import history_url

register = template.Library()


@register.simple_tag
def audit_history_url(target_type: str, target_id: str = "") -> str:
    """The audit page filtered to one target."""
    return history_url(target_type, target_id)


@register.simple_tag
def audit_history_link(target_type: str, target_id: str = "", label: str = "History") -> str:
    """An <a> to the audit page filtered to one target."""
    return format_html(
        '<a class="audit-history" href="{}">{}</a>', history_url(target_type, target_id), label
    )
