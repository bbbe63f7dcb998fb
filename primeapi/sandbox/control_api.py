"""Server side of the unauthenticated control API under ``/_sandbox/`` (see the package doc)."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote

from primeapi.sandbox.app import Reply, SandboxApp
from primeapi.sandbox.auth import RATE_LIMIT_CHOICES
from primeapi.sandbox.demo import random_trades
from primeapi.sandbox.faults import FAULT_KINDS
from primeapi.sandbox.state import (
    ASSET_KINDS,
    TRADE_SIDES,
    KrakenError,
    Trade,
    format_decimal,
    new_trade_id,
    parse_positive_decimal,
)

CONTROL_PREFIX = "/_sandbox/"
MAX_RANDOM_TRADES = 10_000
_TRADE_FIELDS = {"id", "asset_kind", "base", "quote", "side", "volume", "price", "created_at"}


class ControlError(Exception):
    """A control-API request error, answered as ``{"error": message}``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


Route = Callable[[SandboxApp, Any, dict[str, list[str]], list[str]], Any]


def _object(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ControlError("body must be a JSON object")
    return body


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ControlError(f"{name} must be true or false")
    return value


def _optional_seconds(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ControlError(f"{name} must be null or a non-negative number of seconds")
    return float(value)


# ------------------------------------------------------------------- routes


def _health(app: SandboxApp, body: Any, query: dict[str, list[str]], groups: list[str]) -> Any:
    return {"ok": True}


def _state(app: SandboxApp, body: Any, query: dict[str, list[str]], groups: list[str]) -> Any:
    with app.lock:
        app.tick()
        state = app.state
        pending: dict[str, int] = dict.fromkeys(ASSET_KINDS, 0)
        for trade in state.trades.values():
            if trade.batch_id is None:
                pending[trade.asset_kind] = pending.get(trade.asset_kind, 0) + 1
        return {
            "admin_key": state.admin_key.api_key,
            "users": [state.user_json(user) for user in state.users.values()],
            "keys": [
                {
                    "id": key.id,
                    "api_key": key.api_key,
                    "user_id": key.user_id,
                    "admin": key.id == state.admin_key_id,
                    "whitelisted_ips": list(key.whitelisted_ips),
                    "last_nonce": key.last_nonce,
                }
                for key in state.keys.values()
            ],
            "trades": {"total": len(state.trades), "pending": pending},
            "batches": [state.batch_json(batch) for batch in state.batches.values()],
            "transfers": [state.control_transfer_json(t) for t in state.transfers.values()],
            "settings": app.settings.as_dict(),
            "faults": app.faults.as_list(),
            "calls": len(state.calls),
            "last_call_seq": state.call_seq,
        }


def _reset(app: SandboxApp, body: Any, query: dict[str, list[str]], groups: list[str]) -> Any:
    demo = _bool(_object(body).get("demo", False), "demo")
    app.reset(demo=demo)
    return {"ok": True}


def _list_trades(app: SandboxApp, body: Any, query: dict[str, list[str]], groups: list[str]) -> Any:
    status = query.get("status", ["pending"])[0]
    if status not in ("pending", "batched", "all"):
        raise ControlError("status must be pending, batched or all")
    with app.lock:
        app.tick()
        trades = [
            app.state.trade_json(t)
            for t in app.state.trades.values()
            if status == "all" or (t.batch_id is None) == (status == "pending")
        ]
    return {"trades": trades}


def _parse_trade(raw: Any, now: int) -> Trade:
    if not isinstance(raw, dict):
        raise ControlError("each trade must be an object")
    unknown = set(raw) - _TRADE_FIELDS
    if unknown:
        raise ControlError(f"unknown trade field {sorted(unknown)[0]}")
    base, quote = raw.get("base"), raw.get("quote")
    if not isinstance(base, str) or not base or not isinstance(quote, str) or not quote:
        raise ControlError("base and quote must be non-empty strings")
    if base == quote:
        raise ControlError("base and quote must differ")
    if raw.get("side") not in TRADE_SIDES:
        raise ControlError("side must be buy or sell")
    # Tokenized equities are named like AAPLx; infer the kind when not given.
    default_kind = "tokenized_equity" if base.endswith("x") else "currency"
    asset_kind = raw.get("asset_kind", default_kind)
    if asset_kind not in ASSET_KINDS:
        raise ControlError("asset_kind must be currency or tokenized_equity")
    created_at = raw.get("created_at", now)
    if isinstance(created_at, bool) or not isinstance(created_at, int) or created_at < 0:
        raise ControlError("created_at must be integer milliseconds")
    trade_id = raw.get("id", new_trade_id())
    if not isinstance(trade_id, str) or not trade_id:
        raise ControlError("id must be a non-empty string")
    try:
        volume = parse_positive_decimal(raw.get("volume"), "volume")
        price = parse_positive_decimal(raw.get("price"), "price")
    except ValueError as exc:
        raise ControlError(str(exc)) from None
    return Trade(
        id=trade_id,
        asset_kind=asset_kind,
        base=base,
        quote=quote,
        side=raw["side"],
        volume=format_decimal(volume),
        price=format_decimal(price),
        created_at=created_at,
    )


def _add_trades(app: SandboxApp, body: Any, query: dict[str, list[str]], groups: list[str]) -> Any:
    payload = _object(body)
    with app.lock:
        now = app.tick()
        if "trades" in payload:
            if not isinstance(payload["trades"], list) or not payload["trades"]:
                raise ControlError("trades must be a non-empty list")
            trades = [_parse_trade(raw, now) for raw in payload["trades"]]
            ids = [t.id for t in trades]
            if len(set(ids)) != len(ids) or any(i in app.state.trades for i in ids):
                raise ControlError("duplicate trade id")
        elif "count" in payload:
            count = payload["count"]
            if isinstance(count, bool) or not isinstance(count, int):
                raise ControlError("count must be an integer")
            if not 1 <= count <= MAX_RANDOM_TRADES:
                raise ControlError(f"count must be between 1 and {MAX_RANDOM_TRADES}")
            asset_kind = payload.get("asset_kind", "currency")
            if asset_kind not in ASSET_KINDS:
                raise ControlError("asset_kind must be currency or tokenized_equity")
            rng = random.Random()
            trades = random_trades(rng, count, asset_kind, now, spread_ms=3_600_000)
        else:
            raise ControlError('give "trades": [...] or "count": N')
        for trade in trades:
            app.state.add_trade(trade)
        app.save()
        return {"trades": [app.state.trade_json(t) for t in trades]}


def _confirm(app: SandboxApp, body: Any, query: dict[str, list[str]], groups: list[str]) -> Any:
    with app.lock:
        now = app.tick()
        batch = _kraken(lambda: app.state.confirm_batch(groups[0], now))
        app.save()
        return {"batch": app.state.batch_json(batch)}


def _set_leg(app: SandboxApp, body: Any, query: dict[str, list[str]], groups: list[str]) -> Any:
    payload = _object(body)
    can_settle = _bool(payload.get("can_settle"), "can_settle")
    with app.lock:
        now = app.tick()
        leg = _kraken(lambda: app.state.set_can_settle(groups[0], groups[1], can_settle, now))
        app.save()
        return {"leg": app.state.leg_json(leg)}


def _finish_transfer(outcome: str) -> Route:
    def route(app: SandboxApp, body: Any, query: dict[str, list[str]], groups: list[str]) -> Any:
        with app.lock:
            now = app.tick()
            try:
                transfer = app.state.finish_transfer(groups[0], outcome, now)
            except KeyError:
                raise ControlError(f"unknown transfer {groups[0]}", 404) from None
            except ValueError as exc:
                raise ControlError(str(exc), 409) from None
            app.save()
            return {"transfer": app.state.control_transfer_json(transfer)}

    return route


def _complete_pending(
    app: SandboxApp, body: Any, query: dict[str, list[str]], groups: list[str]
) -> Any:
    with app.lock:
        now = app.tick()
        pending = [t.id for t in app.state.transfers.values() if t.status == "pending"]
        done = [app.state.finish_transfer(tid, "completed", now) for tid in pending]
        app.save()
        return {"transfers": [app.state.control_transfer_json(t) for t in done]}


def _settings(app: SandboxApp, body: Any, query: dict[str, list[str]], groups: list[str]) -> Any:
    payload = _object(body)
    with app.lock:
        settings = app.settings
        changes: dict[str, Any] = {}
        for name in ("transfer_delay", "auto_confirm_after"):
            if name in payload:
                changes[name] = _optional_seconds(payload[name], name)
        if "rate_limit" in payload:
            if payload["rate_limit"] not in RATE_LIMIT_CHOICES:
                raise ControlError(f"rate_limit must be one of {', '.join(RATE_LIMIT_CHOICES)}")
            changes["rate_limit"] = payload["rate_limit"]
        if "lockout_threshold" in payload:
            value = payload["lockout_threshold"]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ControlError("lockout_threshold must be a positive integer")
            changes["lockout_threshold"] = value
        for name in ("lockout_window", "lockout_duration"):
            if name in payload:
                value = _optional_seconds(payload[name], name)
                if value is None:
                    raise ControlError(f"{name} must be a non-negative number of seconds")
                changes[name] = value
        unknown = set(payload) - set(settings.as_dict())
        if unknown:
            raise ControlError(f"unknown setting {sorted(unknown)[0]}")
        for name, value in changes.items():
            setattr(settings, name, value)
        app.tick()
        return {"settings": settings.as_dict()}


def _clock(app: SandboxApp, body: Any, query: dict[str, list[str]], groups: list[str]) -> Any:
    with app.lock:
        return {"clock": {"time_ms": app.tick()}}


def _advance_clock(
    app: SandboxApp, body: Any, query: dict[str, list[str]], groups: list[str]
) -> Any:
    payload = _object(body)
    seconds = _optional_seconds(payload.get("advance"), "advance")
    if seconds is None or set(payload) != {"advance"}:
        raise ControlError('body must be {"advance": seconds}, a non-negative number')
    return {"clock": {"time_ms": app.advance_clock(seconds)}}


def _faults(app: SandboxApp, body: Any, query: dict[str, list[str]], groups: list[str]) -> Any:
    with app.lock:
        return {"faults": app.faults.as_list()}


def _add_fault(app: SandboxApp, body: Any, query: dict[str, list[str]], groups: list[str]) -> Any:
    payload = _object(body)
    kind = payload.get("kind")
    if kind not in FAULT_KINDS:
        raise ControlError(f"kind must be one of {', '.join(FAULT_KINDS)}")
    endpoint = payload.get("endpoint", "*")
    if not isinstance(endpoint, str) or not endpoint:
        raise ControlError("endpoint must be an endpoint name or *")
    count = payload.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ControlError("count must be a positive integer")
    seconds = _optional_seconds(payload.get("seconds"), "seconds")
    with app.lock:
        fault = app.faults.add(kind, endpoint, count, seconds)
        return {"fault": fault.as_dict()}


def _clear_faults(
    app: SandboxApp, body: Any, query: dict[str, list[str]], groups: list[str]
) -> Any:
    with app.lock:
        app.faults.clear()
    return {"faults": []}


def _calls(app: SandboxApp, body: Any, query: dict[str, list[str]], groups: list[str]) -> Any:
    endpoint = query.get("endpoint", [None])[0]
    executed = query.get("executed", [None])[0]
    since = query.get("since", ["0"])[0]
    if executed not in (None, "true", "false"):
        raise ControlError("executed must be true or false")
    if not since.isdigit():
        raise ControlError("since must be a call seq")
    with app.lock:
        calls = [
            dict(call)
            for call in app.state.calls
            if call["seq"] > int(since)
            and (endpoint is None or call["endpoint"] == endpoint)
            and (executed is None or call["executed"] == (executed == "true"))
        ]
    return {"calls": calls}


def _clear_calls(app: SandboxApp, body: Any, query: dict[str, list[str]], groups: list[str]) -> Any:
    with app.lock:
        app.state.calls.clear()
        app.save()
    return {"calls": []}


def _clear_lockouts(
    app: SandboxApp, body: Any, query: dict[str, list[str]], groups: list[str]
) -> Any:
    with app.lock:
        app.guard.clear()
    return {"ok": True}


def _kraken(action: Callable[[], Any]) -> Any:
    """Run a domain action, turning its Kraken error into a 404/400 control error."""
    try:
        return action()
    except KrakenError as exc:
        detail = exc.message.rsplit(":", 1)[-1]
        raise ControlError(detail, 404 if detail.startswith("Unknown") else 400) from None


_ROUTES: list[tuple[str, re.Pattern[str], Route]] = [
    ("GET", re.compile(r"health"), _health),
    ("GET", re.compile(r"state"), _state),
    ("POST", re.compile(r"reset"), _reset),
    ("GET", re.compile(r"trades"), _list_trades),
    ("POST", re.compile(r"trades"), _add_trades),
    ("POST", re.compile(r"batches/([^/]+)/confirm"), _confirm),
    ("POST", re.compile(r"batches/([^/]+)/legs/([^/]+)"), _set_leg),
    ("POST", re.compile(r"transfers/complete-pending"), _complete_pending),
    ("POST", re.compile(r"transfers/([^/]+)/complete"), _finish_transfer("completed")),
    ("POST", re.compile(r"transfers/([^/]+)/fail"), _finish_transfer("failed")),
    ("GET", re.compile(r"settings"), _settings),
    ("POST", re.compile(r"settings"), _settings),
    ("GET", re.compile(r"faults"), _faults),
    ("POST", re.compile(r"faults"), _add_fault),
    ("DELETE", re.compile(r"faults"), _clear_faults),
    ("POST", re.compile(r"faults/clear"), _clear_faults),
    ("GET", re.compile(r"calls"), _calls),
    ("DELETE", re.compile(r"calls"), _clear_calls),
    ("POST", re.compile(r"lockouts/clear"), _clear_lockouts),
    ("GET", re.compile(r"clock"), _clock),
    ("POST", re.compile(r"clock"), _advance_clock),
]


def handle(app: SandboxApp, method: str, path: str, query: str, raw: bytes) -> Reply:
    """Route one control request; errors are ``{"error": "message"}`` with 4xx."""
    route_path = path[len(CONTROL_PREFIX) :].strip("/")
    matched_path = False
    for route_method, pattern, route in _ROUTES:
        match = pattern.fullmatch(route_path)
        if not match:
            continue
        matched_path = True
        if route_method != method:
            continue
        try:
            body = json.loads(raw.decode("utf-8")) if raw.strip() else None
        except (UnicodeDecodeError, ValueError):
            return Reply.json({"error": "body must be JSON"}, 400)
        groups = [unquote(group) for group in match.groups()]
        try:
            return Reply.json(route(app, body, parse_qs(query), groups))
        except ControlError as exc:
            return Reply.json({"error": exc.message}, exc.status)
    if matched_path:
        return Reply.json({"error": f"{method} not allowed here"}, 405)
    return Reply.json({"error": f"unknown control path {path}"}, 404)
