from tests.users.conftest import (  # noqa: F401 - shared fixtures
    _fresh_prime_clients,
    admin_client,
    approve,
    control,
    make_prime_user,
    op_client,
    prime,
    prime_user,
    viewer_client,
    write_log,
)
