"""Amounts as people read them: digit grouping and each asset's own precision, in one place."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.template import Context, Template

from portal.settlement.messages import amount_text, what_text


@pytest.mark.parametrize(
    ("amount", "asset", "shown"),
    [
        ("236867.32156", "", "236,867.32156"),  # no asset: every significant digit, grouped
        ("236867.32156", "USD", "236,867.32"),
        ("45000", "USD", "45,000.00"),
        ("45000", "EUR", "45,000.00"),
        ("1.5", "BTC", "1.50000000"),
        ("1234567.123456789", "BTC", "1,234,567.12345679"),
        ("1.123456789012345678", "ETH", "1.12345679"),  # 18 on chain, 8 shown
        ("1000000.1", "USDT", "1,000,000.10"),
        ("0.5", "usdc", "0.50"),
        ("1234.56780000", "FOO", "1,234.5678"),  # unknown asset: significant digits kept
        ("1E+3", "FOO", "1,000"),
        ("0", "", "0"),
        ("-25000", "USD", "-25,000.00"),
    ],
)
def test_amounts_are_grouped_with_the_assets_precision(amount, asset, shown):
    assert amount_text(Decimal(amount), asset) == shown


def test_nonsense_is_shown_as_it_came_and_never_raises():
    assert amount_text("not a number") == "not a number"
    assert amount_text(Decimal("NaN")) == "NaN"


def test_what_a_leg_settles_reads_as_words():
    assert what_text("outgoing", Decimal("45000"), "USD") == "outgoing 45,000.00 USD"


def test_the_template_filter_uses_the_same_formatting():
    template = Template(
        '{% load settlement_format %}{{ x|amount:"BTC" }}|{{ y|amount }}|{{ z|amount }}'
    )
    rendered = template.render(
        Context({"x": Decimal("1.5"), "y": Decimal("236867.32156"), "z": None})
    )
    assert rendered == "1.50000000|236,867.32156|"
