from tests.walk.cases import ALL_ROLES, EVERYONE_SIGNED_IN, Case

CASES = [
    Case("home", allowed=EVERYONE_SIGNED_IN),
    Case("staff:login", allowed=EVERYONE_SIGNED_IN, public=True),
    Case("staff:logout", allowed=EVERYONE_SIGNED_IN, method="POST", public=True),
]

assert ALL_ROLES  # imported for other expectation modules to copy the pattern
