"""Permission walk: the Prime connection page is for Admins only.

The walk runs with the connection set by the environment (`prime_settings`), so
the save and clear actions answer 409 ("set by the environment") to an Admin.
"""

from tests.walk.cases import Case

ADMIN = frozenset({"Admin"})

CASES = [
    Case("connection:settings", allowed=ADMIN),
    Case("connection:settings", allowed=ADMIN, htmx=True),
    Case("connection:save", allowed=ADMIN, method="POST"),
    Case(
        "connection:save",
        allowed=ADMIN,
        method="POST",
        data={"api_url": "http://127.0.0.1:9", "api_key": "k" * 56, "api_secret": "c2VjcmV0"},
    ),
    Case("connection:test", allowed=ADMIN, method="POST"),
    Case("connection:test", allowed=ADMIN, method="POST", htmx=True),
    Case("connection:clear", allowed=ADMIN, method="POST"),
]
