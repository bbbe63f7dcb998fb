"""Settlement fixtures: mirrored batches without Kraken, and real batches at the sandbox."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from portal.actors import SystemActor
from portal.approvals.models import ChangeKind, ChangeRequest, RequestState, StepUpMethod
from portal.settlement import services
from portal.settlement.models import Batch, Leg, leg_audit_id

# Buy 1.5 BTC at 30000 USD and sell 10 ETH at 2000 USD:
# BTC +1.5 (incoming), ETH -10 (outgoing), USD -45000 + 20000 = -25000 (outgoing).
TRADES = [
    {"base": "BTC", "quote": "USD", "side": "buy", "volume": "1.5", "price": "30000"},
    {"base": "ETH", "quote": "USD", "side": "sell", "volume": "10", "price": "2000"},
]


def mirror_batch(
    *,
    legs=(("BTC", "incoming", "1.5"), ("USD", "outgoing", "45000")),
    confirmed: bool = True,
    status: str = "unsettled",
    prime_batch_id: str | None = None,
    created_at=None,
    refreshed: bool = True,
) -> Batch:
    """A batch in the local mirror only (Kraken never heard of it)."""
    now = timezone.now()
    final = status == "completed"
    batch = Batch.objects.create(
        prime_batch_id=prime_batch_id or f"B_{uuid.uuid4().hex[:8].upper()}",
        asset_kind="currency",
        status=status,
        confirmed=confirmed,
        trade_count=2,
        trade_ids=[str(uuid.uuid4()), str(uuid.uuid4())],
        created_at=created_at or now,
        updated_at=now,
        last_refreshed_at=now if refreshed else None,
        is_final=final,
    )
    for asset, direction, amount in legs:
        Leg.objects.create(
            batch=batch,
            asset=asset,
            direction=direction,
            amount=Decimal(amount),
            can_settle=not final,
            status="settled" if final else "unsettled",
        )
    return batch


def open_request(
    leg: Leg, requester, *, state: str = RequestState.PENDING, **extra
) -> ChangeRequest:
    """A leg request written straight to the database (for tests that need a given state)."""
    from portal.approvals.services import canonical_payload, payload_hash
    from portal.settlement.approvals import SettlementLegKind, leg_payload

    now = timezone.now()
    text = canonical_payload(leg_payload(leg))
    fields = {
        "kind": ChangeKind.SETTLEMENT_LEG,
        "target_type": "leg",
        "target_id": leg_audit_id(leg.batch.prime_batch_id, leg.asset),
        "payload": text,
        "payload_hash": payload_hash(text),
        "target_fingerprint": SettlementLegKind().fingerprint(
            target_id=leg_audit_id(leg.batch.prime_batch_id, leg.asset)
        ),
        "requested_by": requester,
        "state": state,
        "quorum": 1,
        "created_at": now,
        "expires_at": now + timedelta(hours=1),
    }
    fields.update(extra)
    return ChangeRequest.objects.create(**fields)


def approve(change_ids, approver):
    """An Approver approves leg requests (the step-up is the view's; tests of it are there)."""
    return services.legs_approve(
        change_ids=list(change_ids), actor=approver, step_up=StepUpMethod.TOTP
    )


def request_leg(leg: Leg, operator) -> ChangeRequest:
    return services.leg_request(leg=leg, actor=operator).change


@pytest.fixture
def kraken_batch(prime_settings, operator):
    """A confirmed batch at the sandbox (BTC in, ETH out, USD out), mirrored by the portal."""
    control = prime_settings.control
    control.add_trades(TRADES)
    batch = services.batch_create(asset_kind="currency", actor=operator)
    control.confirm_batch(batch.prime_batch_id)
    services.batch_refresh(prime_batch_id=batch.prime_batch_id, actor=SystemActor.COMMAND_LINE)
    batch.refresh_from_db()
    assert batch.confirmed
    return batch


def settle_calls(sandbox, *, executed: bool | None = True) -> list[dict]:
    """The settle calls the sandbox logged (executed ones by default)."""
    return sandbox.control.calls(services.SETTLE, executed=executed)


def child_environment(sandbox=None) -> dict[str, str]:
    """Environment for a child process that must use this test's database (and sandbox)."""
    import os

    from django.db import connection

    db = connection.settings_dict
    env = dict(os.environ)
    if db["ENGINE"].endswith("sqlite3"):
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    else:
        user = db.get("USER") or "postgres"
        password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
        host = db.get("HOST") or "127.0.0.1"
        port = db.get("PORT") or 5432
        env["DATABASE_URL"] = f"postgresql://{user}{password}@{host}:{port}/{db['NAME']}"
    if sandbox is not None:
        env["PRIME_API_URL"] = sandbox.url
        env["PRIME_API_KEY"] = sandbox.admin_key
        env["PRIME_API_SECRET"] = sandbox.admin_secret
    env["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    return env


def said(template: str, *, html: bool = False) -> str:
    """A pattern matching one of `portal.settlement.messages`, whatever fills its blanks.

    With ``html=True`` it matches the message as a page shows it (HTML-escaped).
    """
    import re
    import string

    from django.utils.html import escape

    parts = []
    for literal, field, _spec, _conv in string.Formatter().parse(template):
        parts.append(re.escape(escape(literal) if html else literal))
        if field is not None:
            parts.append(".+?")
    return "".join(parts)
