"""Walk entries for the frame: the start page, sign-in and sign-out."""

from tests.walk.cases import EVERYONE_SIGNED_IN, Case

CASES = [
    Case("home", allowed=EVERYONE_SIGNED_IN),
    Case("staff:login", allowed=EVERYONE_SIGNED_IN, public=True),
    Case("staff:login", allowed=EVERYONE_SIGNED_IN, method="POST", public=True),
    Case("staff:logout", allowed=EVERYONE_SIGNED_IN, method="POST", public=True),
]
