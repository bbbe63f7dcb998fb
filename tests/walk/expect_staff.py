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
    # Resetting someone's two-factor (lost phone): confirm, then remove.
    Case("staff:two-factor-reset", allowed=ADMIN, kwargs=_someone),
    Case("staff:two-factor-reset", allowed=ADMIN, kwargs=_someone, htmx=True),
    Case(
        "staff:two-factor-reset",
        allowed=ADMIN,
        method="POST",
        kwargs=_someone,
        data={"confirm": "on"},
    ),
    Case("staff:two-factor-reset", allowed=ADMIN, method="POST", kwargs=_someone, htmx=True),
    # Your own password: anyone signed in.
    Case("staff:password", allowed=EVERYONE_SIGNED_IN),
    Case("staff:password", allowed=EVERYONE_SIGNED_IN, htmx=True),
    Case("staff:password", allowed=EVERYONE_SIGNED_IN, method="POST"),
    Case("staff:password", allowed=EVERYONE_SIGNED_IN, method="POST", htmx=True),
]
