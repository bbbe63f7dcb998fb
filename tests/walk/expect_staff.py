"""Walk entries for the staff pages and the two-factor steps."""

from tests.walk.cases import EVERYONE_SIGNED_IN, Case

ADMIN = frozenset({"Admin"})


def _someone(_sandbox) -> dict:
    """A throwaway staff member to act on."""
    from tests.conftest import make_staff

    return {"pk": make_staff("walk-target", "Viewer").pk}


CASES = [
    # Two-factor steps: any signed-in person (without a device they are sent on).
    Case("staff:two-factor", allowed=EVERYONE_SIGNED_IN),
    Case("staff:two-factor", allowed=EVERYONE_SIGNED_IN, method="POST"),
    Case("staff:two-factor-setup", allowed=EVERYONE_SIGNED_IN),
    Case("staff:two-factor-setup", allowed=EVERYONE_SIGNED_IN, method="POST"),
    # The Admin's staff page and its actions.
    Case("staff:list", allowed=ADMIN),
    Case("staff:list", allowed=ADMIN, htmx=True),
    Case("staff:create", allowed=ADMIN, method="POST"),
    Case("staff:create", allowed=ADMIN, method="POST", htmx=True),
    Case(
        "staff:roles",
        allowed=ADMIN,
        method="POST",
        kwargs=_someone,
        data={"role": "Operator", "action": "grant"},
        htmx=True,
    ),
    Case("staff:roles", allowed=ADMIN, method="POST", kwargs=_someone),
    Case("staff:deactivate", allowed=ADMIN, method="POST", kwargs=_someone, htmx=True),
    Case("staff:two-factor-requirement", allowed=ADMIN, method="POST", htmx=True),
]
