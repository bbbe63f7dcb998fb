from tests.users.conftest import (  # noqa: F401 - shared fixtures
    approve,
    _fresh_prime_clients,
    admin_client,
    control,
    make_prime_user,
    op_client,
    prime,
    prime_user,
    viewer_client,
    write_log,
)
