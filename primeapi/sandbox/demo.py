"""Realistic random trades and the ``--demo`` seed data."""

from __future__ import annotations

import random
from decimal import Decimal

from primeapi.sandbox.state import (
    ASSET_KINDS,
    SandboxState,
    Trade,
    format_decimal,
    new_trade_id,
)

# (base, quote, typical price, price decimals, (min, max) volume, volume decimals)
_MARKETS: dict[str, list[tuple[str, str, float, int, tuple[float, float], int]]] = {
    "currency": [
        ("BTC", "USD", 64000.0, 1, (0.01, 3.0), 4),
        ("BTC", "EUR", 59000.0, 1, (0.01, 2.0), 4),
        ("ETH", "USD", 3200.0, 2, (0.1, 40.0), 3),
        ("ETH", "EUR", 2950.0, 2, (0.1, 25.0), 3),
        ("SOL", "USD", 155.0, 2, (1.0, 400.0), 2),
        ("SOL", "USDC", 155.0, 2, (1.0, 300.0), 2),
        ("USDC", "USD", 1.0, 4, (1000.0, 250000.0), 0),
        ("BTC", "USDC", 64000.0, 1, (0.01, 1.5), 4),
    ],
    "tokenized_equity": [
        ("AAPLx", "USD", 212.0, 2, (1.0, 150.0), 2),
        ("TSLAx", "USD", 245.0, 2, (1.0, 120.0), 2),
        ("NVDAx", "USD", 128.0, 2, (1.0, 200.0), 2),
        ("SPYx", "USD", 560.0, 2, (1.0, 60.0), 2),
    ],
}

DEMO_USERS: list[tuple[str, str, str, list[list[str]]]] = [
    # (name, role, status, allow-lists of the user's keys)
    ("Treasury Automation", "Trader", "Enabled", [["203.0.113.10", "198.51.100.0/24"], []]),
    ("Ops Dashboard", "Viewer", "Enabled", [[]]),
    ("Risk Monitor", "Viewer", "Enabled", [["192.0.2.44"]]),
    ("Legacy OTC Desk", "Trader", "Disabled", [[]]),
]

_HOUR_MS = 3_600_000


def random_trade(
    rng: random.Random, asset_kind: str, created_at: int, market: int | None = None
) -> Trade:
    """One trade on a (random, or the ``market``-th) market of ``asset_kind``."""
    if asset_kind not in ASSET_KINDS:
        raise ValueError(f"unknown asset_kind {asset_kind!r}")
    markets = _MARKETS[asset_kind]
    chosen = markets[market % len(markets)] if market is not None else rng.choice(markets)
    base, quote, price, price_dp, (low, high), volume_dp = chosen
    # ±3 % around the typical price; stablecoin pairs move in basis points.
    spread = 0.0015 if base == "USDC" else 0.03
    traded_price = round(price * (1 + rng.uniform(-spread, spread)), price_dp)
    volume = round(rng.uniform(low, high), volume_dp)
    return Trade(
        id=new_trade_id(),
        asset_kind=asset_kind,
        base=base,
        quote=quote,
        side=rng.choice(("buy", "sell")),
        volume=format_decimal(Decimal(str(volume))),
        price=format_decimal(Decimal(str(traded_price))),
        created_at=created_at,
    )


def random_trades(
    rng: random.Random, count: int, asset_kind: str, now: int, *, spread_ms: int = 0
) -> list[Trade]:
    """``count`` random trades within ``spread_ms`` before ``now``, oldest first.

    The first trades walk through every market once, so a batch of enough trades
    shows every asset of its kind.
    """
    times = sorted(now - rng.randint(0, spread_ms) for _ in range(count))
    order = list(range(len(_MARKETS[asset_kind])))
    rng.shuffle(order)
    return [
        random_trade(rng, asset_kind, created_at, order[i] if i < len(order) else None)
        for i, created_at in enumerate(times)
    ]


def seed_demo(state: SandboxState, now: int, rng: random.Random | None = None) -> None:
    """Users with keys, two settled historical batches, and fresh unsettled trades."""
    rng = rng or random.Random()
    for index, (name, role, status, allow_lists) in enumerate(DEMO_USERS):
        created = now - (30 - index) * 24 * _HOUR_MS
        user = state.create_user(name, role, created)
        for ips in allow_lists:
            key = state.create_key(user.id, created)
            state.update_key(user.id, key.id, ips, created + _HOUR_MS)
        if status != "Enabled":
            state.update_user(user.id, None, status)

    # History: two completed currency batches, settled leg by leg like the real flow.
    for days_ago in (3, 2):
        day = now - days_ago * 24 * _HOUR_MS
        for trade in random_trades(rng, 6, "currency", day - _HOUR_MS, spread_ms=8 * _HOUR_MS):
            state.add_trade(trade)
        batch = state.create_batch("currency", day)
        state.confirm_batch(batch.id, day + 10 * 60_000)
        for offset, leg in enumerate(batch.legs):
            transfer = state.settle(batch.id, leg.asset, day + (20 + offset) * 60_000)
            state.finish_transfer(transfer.id, "completed", day + (50 + offset) * 60_000)

    # Pending: what the next batches will capture.
    for trade in random_trades(rng, 14, "currency", now - 60_000, spread_ms=20 * _HOUR_MS):
        state.add_trade(trade)
    for trade in random_trades(rng, 5, "tokenized_equity", now - 60_000, spread_ms=6 * _HOUR_MS):
        state.add_trade(trade)
