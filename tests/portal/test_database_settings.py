"""How DATABASE_URL becomes the database settings: the portal's PostgreSQL engine, and
prepared statements that a deployment behind a transaction-mode pooler can turn off."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_PRINT = (
    "import portal.settings as s; d = s.DATABASES['default'];"
    " print(d['ENGINE'], d.get('OPTIONS', {}).get('prepare_threshold', 'unset'))"
)


def _settings(**extra: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DJANGO_"))}
    env.update(DATABASE_URL="postgresql://portal@db.example.com:5432/portal", **extra)
    result = subprocess.run(
        [sys.executable, "-c", _PRINT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_postgresql_urls_get_the_portals_engine_with_prepared_statements():
    assert _settings() == "portal.dbengine.postgresql unset"


def test_prepared_statements_can_be_turned_off_for_a_pooler():
    assert _settings(DATABASE_PREPARED_STATEMENTS="false") == "portal.dbengine.postgresql None"
