"""scripts/run, the README's run command: it serves a working portal and stops cleanly."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

BASE_DIR = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_page(url: str, proc: subprocess.Popen, log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"scripts/run exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.25)
    pytest.fail(f"{url} did not answer 200 in {seconds} s:\n{log.read_text()[-3000:]}")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_run_command_serves_the_portal_and_stops_everything_on_ctrl_c(tmp_path):
    portal_port, sandbox_port, mail_port = _free_port(), _free_port(), _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PRIME_", "DATABASE_URL", "PORTAL_", "DJANGO_"))
    }
    env.update(
        PORTAL_VAR_DIR=str(tmp_path / "var"),
        PORTAL_PORT=str(portal_port),
        SANDBOX_PORT=str(sandbox_port),
        MAIL_PORT=str(mail_port),
        PORTAL_SKIP_BROWSER="true",
    )
    env.pop("EMAIL_HOST", None)
    env.pop("EMAIL_PORT", None)
    log = tmp_path / "run.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(BASE_DIR / "scripts" / "run")],
            cwd=BASE_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, to find every child afterwards
        )
    try:
        base = f"http://127.0.0.1:{portal_port}"
        login = f"{base}/staff/login/"
        _wait_for_page(login, proc, log, seconds=45)
        deadline = time.monotonic() + 10
        while "Press Ctrl-C" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        printed = log.read_text()
        assert f"Prime Ops Portal   {base}/" in printed
        assert "admin      demo-admin-pass" in printed
        assert f"Prime sandbox      http://127.0.0.1:{sandbox_port}" in printed
        assert f"demo's mail catcher (127.0.0.1:{mail_port}" in printed
        # The catcher the portal's email goes to prints what it is sent.
        with smtplib.SMTP("127.0.0.1", mail_port, timeout=5) as smtp:
            smtp.sendmail("portal@localhost", ["ops@example.test"], "Subject: run-test\n\nhello")
        deadline = time.monotonic() + 10
        while "Subject: run-test" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "Subject: run-test" in log.read_text()

        browser = requests.Session()
        assert browser.get(login, timeout=5).status_code == 200
        answer = browser.post(
            login,
            data={
                "username": "admin",
                "password": "demo-admin-pass",
                "csrfmiddlewaretoken": browser.cookies["csrftoken"],
            },
            headers={"Referer": login},
            allow_redirects=False,
            timeout=5,
        )
        assert answer.status_code == 302, answer.text[-500:]
        home = browser.get(base + "/", timeout=5)
        assert home.status_code == 200
        assert "Ada Admin" in home.text
        assert 'id="prime-status"' in home.text
        assert ">sandbox<" in home.text

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
        deadline = time.monotonic() + 5
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _group_alive(proc.pid), "a child of scripts/run is still running"
        assert "run: stopped" in log.read_text()
    finally:
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
