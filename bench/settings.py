"""Settings for `bench/run` only: the portal's own settings plus what the benchmark needs.

- `bench` itself as an app, for `manage.py seed_audit_events` (the synthetic audit
  generator, `bench/audit_seed.py`), which the portal never ships;
- `bench.middleware.QueryCountMiddleware` first in the chain, so every query a request
  makes (session, auth, the page, the session save) is counted and reported in the
  `X-Bench-Queries`, `X-Bench-DB-Ms` and `X-Bench-Ms` response headers;
- `bench.urls`: the portal's URLs plus Django's admin at /bench-admin/ with AuditEvent
  registered, the "what a team gets for free" anchor. The admin is never mounted by
  `portal.urls`.

Never used by the portal itself or its tests (except the harness test).
"""

from portal.settings import *  # noqa: F403
from portal.settings import INSTALLED_APPS, MIDDLEWARE

INSTALLED_APPS = [*INSTALLED_APPS, "bench"]
MIDDLEWARE = ["bench.middleware.QueryCountMiddleware", *MIDDLEWARE]
ROOT_URLCONF = "bench.urls"
