"""Apps depend on each other one way: keys may use users, users never import keys."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PORTAL = Path(__file__).resolve().parents[2] / "portal"


def _imports(app: str) -> list[tuple[str, str, bool]]:
    """(file, imported module, at module level?) for every import in the app's code."""
    found = []
    for path in sorted((PORTAL / app).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.append((path.name, node.module, id(node) in top))
            elif isinstance(node, ast.Import):
                found += [(path.name, alias.name, id(node) in top) for alias in node.names]
    return found


def test_users_never_import_the_keys_app():
    assert [(f, m) for f, m, _ in _imports("users") if m.startswith("portal.keys")] == []


@pytest.mark.parametrize("app", ["users", "keys"])
def test_no_function_local_imports_between_apps(app):
    local = [
        (f, m)
        for f, m, top in _imports(app)
        if not top and m.startswith("portal.") and not m.startswith(f"portal.{app}")
    ]
    assert local == []


def test_users_write_no_key_rows():
    source = (PORTAL / "users" / "services.py").read_text(encoding="utf-8")
    assert "ApiKey" not in source
    assert re.search(r"\.keys\.(all|filter|update|create|bulk|get)", source) is None
