"""Template filters for settlement pages."""

from __future__ import annotations

from decimal import Decimal

from django import template

from portal.settlement.messages import amount_text

register = template.Library()


@register.filter
def amount(value: Decimal | None) -> str:
    """A Decimal as plain text, without exponent or trailing zeros (45000, 1.5)."""
    if value is None:
        return ""
    return amount_text(Decimal(value))
