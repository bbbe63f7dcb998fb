"""The permission walk's vocabulary: one Case per URL (and method) with the roles allowed.

Each app lists its cases in `tests/walk/expect_<app>.py` as `CASES = [...]`;
`test_permission_walk.py` collects them all and fails for any URL without one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ROLES = ("Viewer", "Operator", "Approver", "Admin")
OUTSIDER = "Outsider"  # signed in, no portal role
ALL_ROLES = frozenset(ROLES)
EVERYONE_SIGNED_IN = frozenset((*ROLES, OUTSIDER))


@dataclass(frozen=True)
class Case:
    """What each persona should get from one URL.

    `kwargs` builds the URL arguments (it may create rows; it runs inside the test
    with database access and receives the `prime_settings` sandbox).  Allowed
    personas must get an answer that is neither 403 nor a sign-in redirect nor
    a 5xx; every other signed-in persona must get 403; an anonymous visitor is
    sent to sign in (or, for `public` URLs, served).
    """

    url_name: str
    allowed: frozenset[str]
    method: str = "GET"
    kwargs: Callable[[Any], dict[str, Any]] | None = None
    data: dict[str, Any] | None = None
    public: bool = False
    htmx: bool = False
    # Statuses an allowed persona may get besides the usual (e.g. 404 for a
    # URL whose object the kwargs deliberately do not create). Rarely needed.
    also_ok: tuple[int, ...] = field(default=())

    @property
    def id(self) -> str:
        return f"{self.method}-{self.url_name}"
