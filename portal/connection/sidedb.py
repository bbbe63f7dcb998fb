"""A database connection whose statements commit at once, whatever the caller's transaction.

The nonce counter and the health row are touched on behalf of a Prime call, not
of the business transaction around it. On PostgreSQL, running them inside the
caller's `atomic()` block would hold their row locks until that block commits
(every other process wanting a nonce would wait for it) and would roll the
counter back with it. So inside an atomic block they run on a short-lived second
connection to the same database, in autocommit; outside one, the thread's normal
connection (already in autocommit) is used and nothing extra is opened.

SQLite has one writer at a time for the whole file: a caller inside an atomic
block already holds that write lock, so a second connection would wait on its
own thread. There the statements join the caller's transaction instead; the
per-process nonce floor (see nonce.py) keeps a rolled-back counter from ever
handing out a nonce twice in that process.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import load_backend

SIDE_ALIAS = "prime_side"


def default_connection() -> BaseDatabaseWrapper:
    """The calling thread's connection to the default database."""
    return connections[DEFAULT_DB_ALIAS]


def needs_side_connection() -> bool:
    """True when statements on the default connection would join a PostgreSQL transaction."""
    default = default_connection()
    return default.vendor == "postgresql" and default.in_atomic_block


def new_side_connection() -> BaseDatabaseWrapper:
    """A new, unshared connection to the default database (autocommit); close it after use."""
    default = default_connection()
    settings_dict = copy.deepcopy(default.settings_dict)
    settings_dict["CONN_MAX_AGE"] = 0
    backend = load_backend(settings_dict["ENGINE"])
    return backend.DatabaseWrapper(settings_dict, alias=SIDE_ALIAS)


@contextmanager
def autocommit_connection() -> Iterator[BaseDatabaseWrapper]:
    """Yield a connection whose statements commit at once (see the module docstring)."""
    if not needs_side_connection():
        yield default_connection()
        return
    side = new_side_connection()
    try:
        yield side
    finally:
        side.close()
