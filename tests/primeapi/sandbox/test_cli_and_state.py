"""The command line as a real subprocess, ``--state`` persistence, and ``--demo``."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from primeapi.sandbox import SandboxControl, SandboxServer
from tests.primeapi.sandbox.conftest import BUY_BTC, Caller

REPO = Path(__file__).resolve().parents[3]
BANNER = "Kraken Prime sandbox listening on "


@contextmanager
def cli(*args: str, stop_signal: int = signal.SIGTERM) -> Iterator[tuple[str, list[str]]]:
    """Run ``python -m primeapi.sandbox --port 0 ARGS``; yields (url, output lines at exit)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "primeapi.sandbox", "--port", "0", "--quiet", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        output.append(line)
        assert line.startswith(BANNER), line
        yield line[len(BANNER) :].strip(), output
    finally:
        process.send_signal(stop_signal)
        rest, _ = process.communicate(timeout=15)
        output.extend(rest.splitlines())
        assert process.returncode == 0, output


def read_credentials(path: Path) -> dict[str, str]:
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    return json.loads(path.read_text())


def test_the_cli_writes_credentials_serves_and_stops_on_sigterm(tmp_path: Path):
    credentials_file = tmp_path / "creds.json"
    with cli("--credentials-file", str(credentials_file)) as (url, _):
        credentials = read_credentials(credentials_file)
        assert set(credentials) == {"api_key", "api_secret", "url"}
        assert credentials["url"] == url
        assert url.startswith("http://127.0.0.1:")
        admin = Caller(url, credentials["api_key"], credentials["api_secret"])
        assert admin.result("ListPrimeApiUsers") == {"data": []}


def test_the_cli_stops_cleanly_on_sigint(tmp_path: Path):
    credentials_file = tmp_path / "creds.json"
    with cli("--credentials-file", str(credentials_file), stop_signal=signal.SIGINT) as (url, out):
        assert SandboxControl(url).health()
    assert out[-1] == "Kraken Prime sandbox stopped"


def test_state_survives_a_restart_with_the_same_admin_key(tmp_path: Path):
    credentials_file = tmp_path / "creds.json"
    state_file = tmp_path / "state" / "sandbox.json"
    args = ("--credentials-file", str(credentials_file), "--state", str(state_file))
    with cli(*args) as (url, first_output):
        credentials = read_credentials(credentials_file)
        admin = Caller(url, credentials["api_key"], credentials["api_secret"])
        user = admin.result("CreatePrimeApiUser", {"name": "Persisted", "role": "Viewer"})
        key = admin.result("CreatePrimeApiUserKey", {"user_id": user["id"]})
        SandboxControl(url).add_trades([BUY_BTC])
        batch = admin.result("CreatePrimeSettlementBatch")["batch"]
        SandboxControl(url).confirm_batch(batch["id"])
        admin.result("SettlePrimeSettlementBatchAsset", {"batch_id": batch["id"], "asset": "BTC"})
        used_nonce = SandboxControl(url).calls()[-1]["nonce"]
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600

    credentials_file.unlink()
    with cli(*args) as (url, second_output):
        again = read_credentials(credentials_file)
        assert (again["api_key"], again["api_secret"]) == (
            credentials["api_key"],
            credentials["api_secret"],
        )
        admin = Caller(url, again["api_key"], again["api_secret"])
        assert admin.result("ListPrimeApiUsers") == {"data": [user]}
        # Nonces persist: the last one used before the restart is still spent.
        assert admin.error("ListPrimeApiUsers", nonce=used_nonce) == ["EAPI:Invalid nonce"]
        viewer = Caller(url, key["api_key"], key["api_secret"])
        restored = viewer.result("GetPrimeSettlementBatch", {"batch_id": batch["id"]})["batch"]
        assert restored["attributes"]["status"] == "partially_settled"
        assert restored["trade_ids"] == batch["trade_ids"]
        calls = SandboxControl(url).calls("SettlePrimeSettlementBatchAsset", executed=True)
        assert len(calls) == 1
        transfer = SandboxControl(url).state()["transfers"][0]
        assert SandboxControl(url).complete_transfer(transfer["id"])["status"] == "completed"
    everything_printed = "\n".join(first_output + second_output)
    assert credentials["api_secret"] not in everything_printed
    assert key["api_secret"] not in everything_printed


def test_the_cli_demo_seeds_users_and_trades(tmp_path: Path):
    credentials_file = tmp_path / "creds.json"
    with cli("--credentials-file", str(credentials_file), "--demo") as (url, _):
        credentials = read_credentials(credentials_file)
        admin = Caller(url, credentials["api_key"], credentials["api_secret"])
        assert len(admin.result("ListPrimeApiUsers")["data"]) >= 3
        assert admin.result("CreatePrimeSettlementBatch")["batch"]["legs"]


def test_the_in_process_server_reloads_its_state_file(tmp_path: Path):
    state_file = tmp_path / "state.json"
    with SandboxServer(state_path=state_file) as first:
        admin = Caller(first.url, first.admin_key, first.admin_secret)
        user = admin.result("CreatePrimeApiUser", {"name": "Kept", "role": "Trader"})
        first.control.add_trades(count=3)
    with SandboxServer(state_path=state_file) as second:
        assert (second.admin_key, second.admin_secret) == (first.admin_key, first.admin_secret)
        admin = Caller(second.url, second.admin_key, second.admin_secret)
        assert admin.result("ListPrimeApiUsers") == {"data": [user]}
        assert len(second.control.trades()) == 3


def test_demo_state_is_realistic_and_usable(tmp_path: Path):
    with SandboxServer(demo=True) as sandbox:
        admin = Caller(sandbox.url, sandbox.admin_key, sandbox.admin_secret)
        users = admin.result("ListPrimeApiUsers")["data"]
        assert {u["roles"][0] for u in users} == {"Trader", "Viewer"}
        assert "Disabled" in {u["status"] for u in users}
        keys = [
            key
            for user in users
            for key in admin.result("ListPrimeApiUserKeys", {"user_id": user["id"]})["data"]
        ]
        assert len(keys) >= len(users)
        assert any(key["whitelisted_ips"] for key in keys)

        pending = sandbox.control.trades()
        currency_assets = {
            asset for t in pending if t["asset_kind"] == "currency" for asset in (t["base"], t["quote"])
        }  # fmt: skip
        assert {"BTC", "ETH", "SOL", "USDC", "USD", "EUR"} <= currency_assets
        equities = {t["base"] for t in pending if t["asset_kind"] == "tokenized_equity"}
        assert "AAPLx" in equities
        assert len(equities) >= 2

        history = admin.result("ListPrimeSettlementBatches")["data"]
        assert [b["attributes"]["status"] for b in history] == ["completed", "completed"]
        batch = admin.result("CreatePrimeSettlementBatch")["batch"]
        equity = admin.result("CreatePrimeSettlementBatch", {"asset_kind": "tokenized_equity"})
        assert len(batch["legs"]) >= 4
        assert equity["batch"]["legs"]


def test_demo_seeds_only_a_fresh_state_file(tmp_path: Path):
    state_file = tmp_path / "state.json"
    with SandboxServer(state_path=state_file, demo=True) as first:
        users = first.control.state()["users"]
    with SandboxServer(state_path=state_file, demo=True) as second:
        assert second.control.state()["users"] == users


def test_reset_can_reseed_the_demo(sandbox):
    sandbox.control.reset(demo=True)
    assert sandbox.control.state()["users"]
    sandbox.control.reset()
    assert sandbox.control.state()["users"] == []


@pytest.mark.parametrize("rate_limit", ["fast", ""])
def test_an_unknown_rate_limit_is_refused(rate_limit: str):
    with pytest.raises(ValueError):
        SandboxServer(rate_limit=rate_limit)


def test_the_cli_help_lists_every_option():
    result = subprocess.run(
        [sys.executable, "-m", "primeapi.sandbox", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ},
    )
    for option in (
        "--host", "--port", "--credentials-file", "--state", "--demo",
        "--auto-confirm-after", "--transfer-delay", "--rate-limit",
    ):  # fmt: skip
        assert option in result.stdout


def test_stop_closes_kept_alive_connections(tmp_path: Path):
    sandbox = SandboxServer().start()
    control = sandbox.control  # one requests.Session, so its connection is kept alive
    assert control.health()
    sandbox.stop()
    with pytest.raises(requests.ConnectionError):
        control.health()
