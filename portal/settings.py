"""Settings for the Prime Ops Portal: one file, deployment values from the environment.

`PORTAL_ENV` is `development` (the default: SQLite, the local sandbox, DEBUG on)
or `production` (DEBUG off, secure cookies, every secret required). Every
variable is listed in `.env.example`.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from portal.env import env_bool, env_int, env_list, env_secret, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
# Local state (SQLite file, sandbox credentials, lock files). Settings never create it:
# scripts/run does, and whatever writes a file there creates the folder it needs.
VAR_DIR = Path(env_str("PORTAL_VAR_DIR", str(BASE_DIR / "var")))

PORTAL_ENV = env_str("PORTAL_ENV", "development")
if PORTAL_ENV not in ("development", "production"):
    raise ImproperlyConfigured("PORTAL_ENV must be 'development' or 'production'.")
PRODUCTION = PORTAL_ENV == "production"

DEBUG = env_bool("DJANGO_DEBUG", default=not PRODUCTION)
_DEV_SECRET_KEY = "development-only-insecure-key-never-use-in-production-0123456789abcdef"
SECRET_KEY = env_secret("DJANGO_SECRET_KEY", default=None if PRODUCTION else _DEV_SECRET_KEY)
if SECRET_KEY is None:
    raise ImproperlyConfigured("Set DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) in production.")

ALLOWED_HOSTS = env_list(
    "DJANGO_ALLOWED_HOSTS", default=[] if PRODUCTION else ["127.0.0.1", "localhost", "[::1]"]
)
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.forms",  # the widget templates, for FORM_RENDERER's project templates
    "django_htmx",
    "template_partials",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
    "portal.staff",
    "portal.audit",
    "portal.trail",
    "portal.users",
    "portal.keys",
    "portal.settlement",
    "portal.connection",
    "portal.approvals",
    "django_q",
    "portal.worker",
    "portal.notifications",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Django's SessionMiddleware, writing an unchanged session at most once a minute.
    "portal.staff.sessions.PortalSessionMiddleware",
    # An unchanged live poll of a batch answered here, 204, with the checks the view makes.
    "portal.settlement.middleware.LivePollMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    # Django's AuthenticationMiddleware and django-otp's OTPMiddleware in one: the person,
    # their two-factor device and the two-factor facts in one statement.
    "portal.staff.middleware.PortalAuthenticationMiddleware",
    # Roles and permissions from the session (read once per session, dropped on a change).
    "portal.staff.middleware.SessionAccessMiddleware",
    # Django's LoginRequiredMiddleware, answering htmx requests with HX-Redirect.
    "portal.staff.middleware.PortalLoginRequiredMiddleware",
    # Half-signed-in people see only the two-factor pages (needs the person from above).
    "portal.staff.middleware.TwoFactorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "portal.audit.middleware.RequestContextMiddleware",
    "portal.web.HtmxMessagesMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

# Forms render with the portal's field markup (templates/forms/): `{{ form }}`, `.as_field_group`.
FORM_RENDERER = "portal.web.FormRenderer"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.staff.context_processors.portal_context",
                "portal.connection.context_processors.prime_status",
            ],
            "libraries": {"jinja": "portal.jinja"},
        },
    },
    {
        # The rows of the busiest lists (`*.jinja`), drawn inside their Django pages by
        # `{% jinja %}` (portal/jinja.py): a tenth of what Django templates cost per row.
        "NAME": "jinja2",
        "BACKEND": "django.template.backends.jinja2.Jinja2",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": False,
        "OPTIONS": {
            "environment": "portal.jinja.environment",
            "globals": {"history_url": "portal.trail.links.history_url"},
        },
    },
]

# SQLite by default; DATABASE_URL selects PostgreSQL (psycopg 3).
_DEFAULT_SQLITE = f"sqlite:///{VAR_DIR / 'portal.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(env_str("DATABASE_URL", _DEFAULT_SQLITE))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and IMMEDIATE transactions let the web server and the poller share the file.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's, with a health check that looks at the socket before any round trip.
        DATABASES["default"]["ENGINE"] = "portal.dbengine.postgresql"
    DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60)
    if not env_bool("DATABASE_PREPARED_STATEMENTS", default=True):
        # A pooler in transaction mode cannot keep prepared statements.
        DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = None
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# The test database of each run is chosen by tests/conftest.py (pytest-django's hook).

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "staff.Staff"

_REDIS_URL = env_str("REDIS_URL", "")
if _REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "portal.cache.PortalRedisCache",
            "LOCATION": _REDIS_URL,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
PASSWORD_HASHERS = env_list("PORTAL_PASSWORD_HASHERS") or [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]

LOGIN_URL = "staff:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "staff:login"

# Short idle sessions: activity pushes the expiry forward.
SESSION_COOKIE_AGE = env_int("PORTAL_SESSION_IDLE_SECONDS", 30 * 60)
# The expiry moves forward when the session is written: on a change, or when its idle
# mark is more than a minute old (portal.staff.sessions), not on every request.
SESSION_ENGINE = "portal.staff.sessions"
SESSION_SAVE_EVERY_REQUEST = False
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", default=PRODUCTION)
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = PRODUCTION
SECURE_HSTS_PRELOAD = PRODUCTION
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Behind a proxy: trust X-Forwarded-Proto only when told to.
if env_bool("PORTAL_BEHIND_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    USE_X_FORWARDED_HOST = True

# Number of trusted proxies in front of the portal; the client address is taken
# from X-Forwarded-For counting that many hops from the right (0 = REMOTE_ADDR).
PORTAL_TRUSTED_PROXY_COUNT = env_int("PORTAL_TRUSTED_PROXY_COUNT", 0)

# django-axes: lock out after repeated failed sign-ins.
AXES_FAILURE_LIMIT = env_int("PORTAL_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = env_int("PORTAL_LOGIN_COOLOFF_MINUTES", 15) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "portal.web.axes_client_ip"
AXES_LOCKOUT_TEMPLATE = "staff/locked_out.html"
AXES_VERBOSE = False

# django-otp: TOTP codes from an authenticator app; wrong codes slow down 1, 2, 4 ... seconds.
OTP_TOTP_ISSUER = "Prime Ops Portal"
OTP_TOTP_THROTTLE_FACTOR = 1

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env_str("PORTAL_TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(VAR_DIR / "static")))

MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

# The Prime connection. Only portal/prime.py reads these (at call time).
PRIME_API_URL = env_str("PRIME_API_URL", "")
PRIME_API_KEY = env_secret("PRIME_API_KEY", default="")
PRIME_API_SECRET = env_secret("PRIME_API_SECRET", default="")
PRIME_CREDENTIALS_FILE = env_str("PRIME_CREDENTIALS_FILE", "")
PRIME_TIMEOUT_SECONDS = env_int("PRIME_TIMEOUT_SECONDS", 10)
# Fernet keys (comma-separated, newest first) that encrypt a stored Prime secret.
PORTAL_ENCRYPTION_KEYS = env_list("PORTAL_ENCRYPTION_KEYS")

# Settlement.
SETTLEMENT_REQUEST_TTL_SECONDS = env_int("SETTLEMENT_REQUEST_TTL_SECONDS", 4 * 60 * 60)
# An unknown outcome with no transfer at Kraken after this long is treated as not sent.
SETTLEMENT_RECONCILE_GRACE_SECONDS = env_int("SETTLEMENT_RECONCILE_GRACE_SECONDS", 15)
# A `submitting` intent older than this was left by a crash: reconcile it as unknown.
SETTLEMENT_SUBMITTING_STALE_SECONDS = env_int("SETTLEMENT_SUBMITTING_STALE_SECONDS", 120)
PRIME_POLL_INTERVAL_SECONDS = env_int("PRIME_POLL_INTERVAL_SECONDS", 5)
PRIME_POLL_BUDGET_PER_MINUTE = env_int("PRIME_POLL_BUDGET_PER_MINUTE", 30)

# The worker (manage.py worker): django-q2 over the portal's own database (ORM broker), so
# it needs no service besides the database. One worker of many leads and runs the poller.
WORKER_LEADER_RETRY_SECONDS = env_int("WORKER_LEADER_RETRY_SECONDS", 3)
Q_CLUSTER = {
    "name": "portal",
    "orm": "default",
    "workers": env_int("WORKER_PROCESSES", 2),
    "timeout": 120,  # a job running longer is stopped ...
    "retry": 180,  # ... and a job not acknowledged within this is handed out again
    "max_attempts": 3,
    "catch_up": False,  # after downtime run a schedule once, not once per missed period
    "save_limit": 500,
    "ack_failures": True,
    "poll": 1,  # seconds between looks at the queue table
    "label": "Worker jobs",
}

# Notifications: links in messages are absolute (the address people open the portal at).
PORTAL_BASE_URL = env_str("PORTAL_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
EMAIL_HOST = env_str("EMAIL_HOST", "127.0.0.1")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT_SECONDS", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Prime Ops Portal <portal@localhost>")
NOTIFY_RETRY_BASE_SECONDS = env_int("NOTIFY_RETRY_BASE_SECONDS", 30)
NOTIFY_RETRY_CAP_SECONDS = env_int("NOTIFY_RETRY_CAP_SECONDS", 3600)
NOTIFY_MAX_ATTEMPTS = env_int("NOTIFY_MAX_ATTEMPTS", 20)
NOTIFY_CLAIM_SECONDS = env_int("NOTIFY_CLAIM_SECONDS", 60)
NOTIFY_WEBHOOK_TIMEOUT_SECONDS = env_int("NOTIFY_WEBHOOK_TIMEOUT_SECONDS", 10)
NOTIFY_TRANSFER_PENDING_MINUTES = env_int("NOTIFY_TRANSFER_PENDING_MINUTES", 30)
NOTIFY_KEY_EXPIRY_DAYS = env_int("NOTIFY_KEY_EXPIRY_DAYS", 14)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("PORTAL_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
