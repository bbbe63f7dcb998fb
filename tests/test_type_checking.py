"""mypy's configuration (pyproject.toml) is strict enough for the services' promise.

Runs the project's own mypy configuration over a throwaway services module in a
temporary package: an `actor: Any` argument and an unannotated argument must both be
reported, a fully typed function must not. (`scripts/test` runs mypy over the code.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[1]

PROBE = """\
from enum import StrEnum
from typing import Any


class ProbeActor(StrEnum):
    CRON = "cron"


def probe_with_any_actor(*, actor: Any, reason: str) -> None:
    return None


def probe_untyped(*, actor, reason: str) -> None:
    return None


def probe_typed(*, actor: ProbeActor, reason: str) -> str:
    return f"{actor}: {reason}"
"""


def test_mypy_refuses_an_any_actor_and_an_untyped_argument_in_a_services_module(tmp_path):
    package = tmp_path / "portal" / "probe"
    package.mkdir(parents=True)
    (tmp_path / "portal" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "services.py").write_text(PROBE)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(BASE_DIR / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            "portal/probe/services.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 1, report
    lines = {line.split(": error:")[0] for line in report.splitlines() if ": error:" in line}
    assert "portal/probe/services.py:9" in lines, report  # actor: Any
    assert "portal/probe/services.py:13" in lines, report  # unannotated actor
    assert 'Explicit "Any" is not allowed' in report
    assert "missing a type annotation" in report
    assert not any(line.startswith("portal/probe/services.py:17") for line in lines), report
