"""Template filters for amounts: the one formatting of `portal.settlement.messages`."""

from __future__ import annotations

from decimal import Decimal

from django import template

from portal.settlement.messages import amount_text

register = template.Library()


@register.filter
def amount(value: Decimal | str | None, asset: str = "") -> str:
    """An amount with digit grouping and the asset's own precision: ``{{ x|amount:"BTC" }}``."""
    if value is None or value == "":
        return ""
    return amount_text(value, asset or "")
