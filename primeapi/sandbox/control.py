"""Client for the sandbox control API (``/_sandbox/...``): plain ``requests``, no auth."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests


class SandboxControlError(RuntimeError):
    """The control API refused a request."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class SandboxControl:
    """Drive a running sandbox: trades, confirmations, transfers, settings, faults, call log."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()

    def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        response = self._session.request(
            method,
            f"{self.url}/_sandbox/{path}",
            json=body,
            params=params,
            timeout=self.timeout,
        )
        payload = response.json()
        if response.status_code != 200:
            raise SandboxControlError(response.status_code, payload.get("error", response.text))
        return payload

    # ------------------------------------------------------------------ state

    def health(self) -> bool:
        """True when the sandbox answers."""
        return bool(self._request("GET", "health")["ok"])

    def state(self) -> dict[str, Any]:
        """Summary: users, keys (no secrets), trade counts, batches, transfers, settings."""
        return self._request("GET", "state")

    def reset(self, *, demo: bool = False) -> None:
        """Forget everything except the admin key (optionally reseed demo data)."""
        self._request("POST", "reset", {"demo": demo})

    # ----------------------------------------------------------------- trades

    def trades(self, status: str = "pending") -> list[dict[str, Any]]:
        """Trades with ``status`` pending (default), batched or all."""
        return self._request("GET", "trades", params={"status": status})["trades"]

    def add_trades(
        self,
        trades: list[dict[str, Any]] | None = None,
        *,
        count: int | None = None,
        asset_kind: str = "currency",
    ) -> list[dict[str, Any]]:
        """Add explicit trades, or ``count`` random realistic ones of ``asset_kind``."""
        if trades is not None:
            body: dict[str, Any] = {"trades": trades}
        elif count is not None:
            body = {"count": count, "asset_kind": asset_kind}
        else:
            raise ValueError("give trades or count")
        return self._request("POST", "trades", body)["trades"]

    # ------------------------------------------------------------- settlement

    def confirm_batch(self, batch_id: str) -> dict[str, Any]:
        """Confirm a batch as Kraken would; returns the batch."""
        return self._request("POST", f"batches/{quote(batch_id, safe='')}/confirm")["batch"]

    def set_can_settle(self, batch_id: str, asset: str, can_settle: bool) -> dict[str, Any]:
        """Set one leg's ``can_settle``; returns the leg."""
        path = f"batches/{quote(batch_id, safe='')}/legs/{quote(asset, safe='')}"
        return self._request("POST", path, {"can_settle": can_settle})["leg"]

    def complete_transfer(self, transfer_id: str) -> dict[str, Any]:
        """Complete a pending transfer now."""
        return self._request("POST", f"transfers/{quote(transfer_id, safe='')}/complete")[
            "transfer"
        ]

    def fail_transfer(self, transfer_id: str) -> dict[str, Any]:
        """Fail a pending transfer now (its leg becomes settleable again)."""
        return self._request("POST", f"transfers/{quote(transfer_id, safe='')}/fail")["transfer"]

    def complete_pending_transfers(self) -> list[dict[str, Any]]:
        """Complete every pending transfer now."""
        return self._request("POST", "transfers/complete-pending")["transfers"]

    # --------------------------------------------------------------- settings

    def settings(self) -> dict[str, Any]:
        """Current settings."""
        return self._request("GET", "settings")["settings"]

    def update_settings(self, **changes: Any) -> dict[str, Any]:
        """Change transfer_delay, auto_confirm_after, rate_limit or lockout_* settings."""
        return self._request("POST", "settings", changes)["settings"]

    def clear_lockouts(self) -> None:
        """Forget lockouts, failure counts and rate-limit counters."""
        self._request("POST", "lockouts/clear")

    # ------------------------------------------------------------------ clock

    def clock(self) -> int:
        """The sandbox's time in integer milliseconds."""
        return int(self._request("GET", "clock")["clock"]["time_ms"])

    def advance_clock(self, seconds: float) -> int:
        """Move the sandbox's time forward (auto-confirm, transfer delay, lockouts, rate
        limits fall due as if that time had passed); returns the new time in ms."""
        return int(self._request("POST", "clock", {"advance": seconds})["clock"]["time_ms"])

    # ----------------------------------------------------------------- faults

    def inject_fault(
        self, kind: str, endpoint: str = "*", *, count: int = 1, seconds: float | None = None
    ) -> dict[str, Any]:
        """Make the next ``count`` calls of ``endpoint`` (or ``*``) misbehave."""
        body: dict[str, Any] = {"kind": kind, "endpoint": endpoint, "count": count}
        if seconds is not None:
            body["seconds"] = seconds
        return self._request("POST", "faults", body)["fault"]

    def faults(self) -> list[dict[str, Any]]:
        """Pending faults."""
        return self._request("GET", "faults")["faults"]

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        self._request("DELETE", "faults")

    # --------------------------------------------------------------- call log

    def calls(
        self, endpoint: str | None = None, *, executed: bool | None = None, since: int = 0
    ) -> list[dict[str, Any]]:
        """Logged private calls, optionally filtered by endpoint, executed flag, seq."""
        params: dict[str, Any] = {"since": since}
        if endpoint is not None:
            params["endpoint"] = endpoint
        if executed is not None:
            params["executed"] = "true" if executed else "false"
        return self._request("GET", "calls", params=params)["calls"]

    def clear_calls(self) -> None:
        """Empty the call log (seq numbers keep increasing)."""
        self._request("DELETE", "calls")
