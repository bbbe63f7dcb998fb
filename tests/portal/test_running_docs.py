"""The production configuration documented in docs/running.md and .env.example holds."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

BASE_DIR = Path(__file__).resolve().parents[2]
READERS = re.compile(
    r"""(?:env_(?:str|bool|int|list|secret)\(\s*|os\.environ(?:\.get\(|\[)\s*)["']([A-Z][A-Z0-9_]+)["']"""
)


def _variables_read_by_the_portal() -> set[str]:
    names: set[str] = set()
    for path in (BASE_DIR / "portal").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        names |= set(READERS.findall(text))
        names |= {f"{n}_FILE" for n in re.findall(r"""env_secret\(\s*["']([A-Z0-9_]+)["']""", text)}
    return names - {"DJANGO_SETTINGS_MODULE"}


def test_env_example_lists_every_variable_the_portal_reads():
    listed = set(
        re.findall(
            r"^#?\s*([A-Z][A-Z0-9_]+)=",
            (BASE_DIR / ".env.example").read_text(encoding="utf-8"),
            re.MULTILINE,
        )
    )
    read = _variables_read_by_the_portal()
    assert {"DATABASE_URL", "PRIME_API_SECRET_FILE", "PORTAL_ENCRYPTION_KEYS"} <= read
    assert sorted(read - listed) == []


def _production_env(tmp_path, **extra) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PRIME_", "DATABASE_URL", "PORTAL_", "DJANGO_"))
    }
    env.update(
        PORTAL_ENV="production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="portal.example.com",
        PORTAL_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        PORTAL_VAR_DIR=str(tmp_path),
    )
    env.update(extra)
    return env


def _check_deploy(env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_deploy_passes_with_the_documented_production_settings(tmp_path):
    result = _check_deploy(_production_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_deploy_warns_when_stored_secrets_could_not_be_encrypted(tmp_path):
    result = _check_deploy(_production_env(tmp_path, PORTAL_ENCRYPTION_KEYS=""))
    assert result.returncode != 0
    assert "connection.W001" in result.stderr
