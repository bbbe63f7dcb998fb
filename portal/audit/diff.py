"""Before/after as a list of changes, for the event detail page."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

ADDED, REMOVED, CHANGED, SAME = "added", "removed", "changed", "unchanged"
_MISSING = object()


@dataclass(frozen=True)
class Change:
    path: str
    kind: str
    old: Any = None
    new: Any = None

    @property
    def old_text(self) -> str:
        return _show(self.old) if self.kind in (REMOVED, CHANGED, SAME) else ""

    @property
    def new_text(self) -> str:
        return _show(self.new) if self.kind in (ADDED, CHANGED, SAME) else ""


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def diff(before: Any, after: Any) -> list[Change]:
    """Every leaf that was added, removed, changed or kept, with nested paths (`a.b[0].c`).

    A missing side (None) counts as an empty object when the other side is an object.
    """
    if before is None and isinstance(after, dict):
        before = {}
    if after is None and isinstance(before, dict):
        after = {}
    changes: list[Change] = []
    _walk("", before, after, changes)
    return changes


def _walk(path: str, old: Any, new: Any, out: list[Change]) -> None:
    if old is _MISSING:
        _leaves(path, new, ADDED, out)
        return
    if new is _MISSING:
        _leaves(path, old, REMOVED, out)
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            _walk(_join(path, key), old.get(key, _MISSING), new.get(key, _MISSING), out)
        return
    if isinstance(old, list) and isinstance(new, list):
        for index in range(max(len(old), len(new))):
            _walk(
                _join(path, index),
                old[index] if index < len(old) else _MISSING,
                new[index] if index < len(new) else _MISSING,
                out,
            )
        return
    out.append(Change(path or "(value)", SAME if old == new else CHANGED, old, new))


def _leaves(path: str, value: Any, kind: str, out: list[Change]) -> None:
    if isinstance(value, dict) and value:
        for key in sorted(value, key=str):
            _leaves(_join(path, key), value[key], kind, out)
        return
    if isinstance(value, list) and value:
        for index, item in enumerate(value):
            _leaves(_join(path, index), item, kind, out)
        return
    if kind == ADDED:
        out.append(Change(path or "(value)", ADDED, None, value))
    else:
        out.append(Change(path or "(value)", REMOVED, value, None))


def summary(changes: list[Change]) -> dict[str, int]:
    """How many of each kind (for the heading above the diff)."""
    counts = {ADDED: 0, REMOVED: 0, CHANGED: 0, SAME: 0}
    for change in changes:
        counts[change.kind] += 1
    return counts
