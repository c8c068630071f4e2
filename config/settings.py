"""The one settings module. Everything comes from the environment (see README "Configuration").

With no DATABASE_URL/REDIS_URL the project runs embedded: SQLite under DATA_DIR, in-memory
channel layer, Celery tasks executed in-process and periodic ticks from an in-process scheduler.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import sys
from pathlib import Path
from typing import Any

import dj_database_url
import django_stubs_ext

from config.env import (
    ConfigError,
    env_bool,
    env_int,
    env_list,
    env_networks,
    env_rate,
    env_str,
    env_url,
    persistent_secret,
)

# Generic admin/queryset classes (ModelAdmin[M], QuerySet[M]) subscriptable at run time too.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "var")) or "var").resolve()
TESTING = "pytest" in sys.modules or env_bool("FLEET_TESTING", False)

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY") or persistent_secret(DATA_DIR / "secret_key", 48)
if len(SECRET_KEY) < 32:
    raise ConfigError("SECRET_KEY must be at least 32 characters")


def _master_key(raw: str, name: str = "FLEET_MASTER_KEY") -> bytes:
    try:
        key = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"{name} must be base64 of 32 random bytes") from exc
    if len(key) != 32:
        raise ConfigError(f"{name} must decode to 32 bytes, got {len(key)}")
    return key


FLEET_MASTER_KEY = _master_key(
    env_str("FLEET_MASTER_KEY") or persistent_secret(DATA_DIR / "master.key", 32)
)
# During a master-key rotation: the old key(s), still readable until rotate_master_key re-wraps.
FLEET_MASTER_KEYS_PREVIOUS = [
    _master_key(raw, "FLEET_MASTER_KEY_PREVIOUS")
    for raw in env_list("FLEET_MASTER_KEY_PREVIOUS", [])
]

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
if not ALLOWED_HOSTS:
    raise ConfigError(
        "ALLOWED_HOSTS is empty: every request would be refused (e.g. rw.example.com)"
    )
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
PORT = env_int("PORT", 8000, minimum=1, maximum=65535)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_prometheus",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "channels",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.socialaccount",
    "accounts",
    "fleet",
    "discovery",
    "proxy",
    "terminals",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # response headers only: outside everything that may answer early (ops endpoints, static)
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "accounts.middleware.SecurityHeadersMiddleware",
    "config.middleware.QueryStringLimitMiddleware",  # 414 before anything parses a huge query
    # before CommonMiddleware's Host check: health checks and scrapers call by IP/service name
    "config.middleware.OpsEndpointsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.TrackedSessionMiddleware",
    "accounts.sso.session.SsoSessionMiddleware",  # re-validates SSO logins (no-op without SSO)
    "django.contrib.messages.middleware.MessageMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "accounts.middleware.LoginRequiredMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = None

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
                "accounts.context_processors.shell",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------
DATABASE_URL = env_url("DATABASE_URL", ("postgres", "postgresql", "sqlite"))
if DATABASE_URL:
    try:
        _db: dict[str, Any] = dict(
            dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)
        )
    except ValueError as exc:
        raise ConfigError(f"DATABASE_URL is not a valid database URL ({exc})") from exc
else:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    _db = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(DATA_DIR / "rigwarden.sqlite3")}
    _db["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL;",
    }
if TESTING and "postgresql" in _db["ENGINE"]:
    # one test database per run, so two suites on one server (CI + a developer) never collide
    _db["TEST"] = {"NAME": f"test_{_db['NAME']}_{os.getpid()}"}
_db["ENGINE"] = _db["ENGINE"].replace("django.db.backends.", "django_prometheus.db.backends.")
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def _redis_per_test_worker(url: str) -> bool:
    """Under pytest-xdist each worker has its own test database, so ids repeat across workers
    (each one's first node is node 1): each worker gets its own Redis database as well, or their
    channel groups (``node-1``), queues and caches would meet. The rewritten ``REDIS_URL`` is put
    back in the environment, so the servers and agents a test starts use the same database."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw") or os.environ.get("_RW_REDIS_SPLIT") == url:
        return False
    base, _, db = url.rpartition("/")
    if not base.startswith("redis://") or not db.isdigit() or not worker[2:].isdigit():
        return False
    split = f"{base}/{(int(db) + int(worker[2:])) % 16}"
    os.environ["REDIS_URL"] = os.environ["_RW_REDIS_SPLIT"] = split
    return True


# --- Redis: cache, channel layer, Celery ----------------------------------------------------
REDIS_URL = env_url("REDIS_URL", ("redis", "rediss", "unix"))
if REDIS_URL and _redis_per_test_worker(REDIS_URL):
    REDIS_URL = os.environ["REDIS_URL"]
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_prometheus.cache.backends.redis.NativeRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_PREFIX", "rw") or "rw",
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "config.channel_layer.BlockingRedisChannelLayer",
            # redis-py 8 reads with a 5 s socket timeout by default, the same 5 s channels_redis
            # blocks in BZPOPMIN: an idle consumer died with 1011. Reads get 30 s. Its asyncio
            # pool (100 connections by default) raises MaxConnectionsError instead of waiting,
            # so a connect burst crashed consumers (403): the pool is sized explicitly and a
            # burst beyond it waits up to 20 s for a connection (config/channel_layer.py).
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_timeout": 30,
                        "max_connections": env_int(
                            "CHANNEL_REDIS_MAX_CONNECTIONS", 1000, minimum=10, maximum=100000
                        ),
                        "pool_timeout": 20,
                    }
                ],
                "prefix": "rw-asgi",
            },
        }
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_TASK_ALWAYS_EAGER = False
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
else:
    CACHES = {"default": {"BACKEND": "django_prometheus.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CELERY_BROKER_URL = "memory://"
    CELERY_TASK_ALWAYS_EAGER = True
    SESSION_ENGINE = "django.contrib.sessions.backends.db"
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
EMBEDDED = REDIS_URL is None
CELERY_BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "prune-history": {"task": "accounts.prune_history", "schedule": 3600.0},
    "poll-due-miners": {"task": "fleet.poll_due", "schedule": 2.0},
    "rollup-samples": {"task": "fleet.rollup_samples", "schedule": 300.0},
    "fleet-nodes-housekeeping": {"task": "fleet.nodes_housekeeping", "schedule": 30.0},
    "discovery-housekeeping": {"task": "discovery.housekeeping", "schedule": 30.0},
    "proxy-refresh-tokens": {"task": "proxy.refresh_tokens", "schedule": 30.0},
    "terminals-prune-recordings": {"task": "terminals.prune_recordings", "schedule": 3600.0},
}

# --- Auth -----------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
    "accounts.sso.backend.SsoBackend",  # OIDC callback only; idle while OIDC_ISSUER is empty
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False
ACCOUNT_SESSION_REMEMBER = None
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_RATE_LIMITS = {
    # allauth's own limits stay on as a second line behind accounts.lockout
    "login_failed": "30/m/ip,10/5m/key",
    "reset_password": "20/m/ip,5/m/key",
    "change_password": "5/m/user",
}
MFA_ADAPTER = "accounts.adapters.MFAAdapter"
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "Rigwarden"
SOCIALACCOUNT_PROVIDERS: dict[str, Any] = {}  # allauth's social login stays off (SSO below)

# --- Single sign-on (OIDC, mozilla-django-oidc; contracts.md "Single sign-on", docs/sso.md) ---
# Never a start-up error: a wrong value shows on the SSO pages while passwords keep working.
OIDC_ISSUER = (env_str("OIDC_ISSUER", "") or "").strip().rstrip("/")
OIDC_CLIENT_ID = (env_str("OIDC_CLIENT_ID", "") or "").strip()
OIDC_CLIENT_SECRET = env_str("OIDC_CLIENT_SECRET", "") or ""
OIDC_SCOPES = env_str("OIDC_SCOPES", "openid email profile") or "openid email profile"
OIDC_JIT = env_bool("OIDC_JIT", False)
OIDC_ORG = (env_str("OIDC_ORG", "") or "").strip()
OIDC_BUTTON_LABEL = env_str("OIDC_BUTTON_LABEL", "Sign in with SSO") or "Sign in with SSO"
# the claim that vouches for the e-mail (Entra ID: xms_edov); only an explicit true links accounts
OIDC_EMAIL_VERIFIED_CLAIM = (
    env_str("OIDC_EMAIL_VERIFIED_CLAIM", "email_verified") or "email_verified"
).strip()
OIDC_TIMEOUT_SECONDS = env_int("OIDC_TIMEOUT_SECONDS", 10, minimum=1, maximum=120)
OIDC_DISCOVERY_CACHE_SECONDS = env_int("OIDC_DISCOVERY_CACHE_SECONDS", 3600, minimum=0)
# re-validate with the provider this often at the latest (sooner when the ID token ends first)
OIDC_RENEW_SECONDS = env_int("OIDC_RENEW_SECONDS", 900, minimum=30, maximum=86400)

LOGIN_LOCKOUT_THRESHOLD = env_int("LOGIN_LOCKOUT_THRESHOLD", 5, minimum=1)
LOGIN_LOCKOUT_BASE_SECONDS = env_int("LOGIN_LOCKOUT_BASE_SECONDS", 60, minimum=1)
LOGIN_LOCKOUT_MAX_SECONDS = env_int("LOGIN_LOCKOUT_MAX_SECONDS", 3600, minimum=1)
LOGIN_IP_FAILURE_LIMIT = env_int("LOGIN_IP_FAILURE_LIMIT", 30, minimum=1)

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "rigwarden@localhost")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "") or ""
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "") or ""
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ConfigError("EMAIL_USE_TLS and EMAIL_USE_SSL are both on; use one (STARTTLS or SMTPS)")

# --- Security -------------------------------------------------------------------------------
SECURE_TLS = env_bool("SECURE_TLS", False)
SESSION_COOKIE_SECURE = SECURE_TLS
CSRF_COOKIE_SECURE = SECURE_TLS
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 14 * 24 * 3600, minimum=300)
SECURE_HSTS_SECONDS = 31536000 if SECURE_TLS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_TLS
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^(healthz|readyz|metrics)$"]  # health checks speak plain HTTP
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("TRUST_X_FORWARDED_PROTO", False) else None
)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'"
)
# W008 SSL redirect: TLS ends at the proxy. W021 HSTS preload: an operator decision, not ours.
SILENCED_SYSTEM_CHECKS = ["security.W008", "security.W021"]

# --- I18N / static --------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
# English only; the catalog there turns allauth's Title Case headings and buttons into sentence case.
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_TZ = True
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Hashed + compressed names once `collectstatic` has built the manifest (make run, Docker);
# before that, plain names served from the finders, so `manage.py migrate && daphne …` on a
# fresh checkout serves pages instead of failing on a missing manifest entry.
_HASHED_STATIC = not (DEBUG or TESTING) and (
    sys.argv[1:2] == ["collectstatic"] or (STATIC_ROOT / "staticfiles.json").exists()
)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if _HASHED_STATIC
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = True
# Tests build a fresh handler per test client: look files up per request instead of scanning
# every static file at start-up each time.
WHITENOISE_AUTOREFRESH = DEBUG or TESTING

# --- DRF / OpenAPI --------------------------------------------------------------------------
API_RATES: dict[str, str | None] = {
    "token": env_rate("API_RATE_TOKEN", "1200/minute"),
    "user": env_rate("API_RATE_USER", "1200/minute"),
    "anon": env_rate("API_RATE_ANON", "120/minute"),
}
if TESTING:
    # The suite makes thousands of calls a minute as a handful of users; the throttles are
    # proven with low rates of their own in tests/accounts/test_api_contract.py.
    API_RATES = dict.fromkeys(API_RATES)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.api.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON only: the browsable HTML renderer builds filter and raw-data forms from every
    # viewset's queryset, and the catalog and "me" views have none (a browser got a 500).
    # Browsers accept */* and get JSON; people explore the API in Swagger UI at /api/docs/.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "accounts.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "accounts.api.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["accounts.api.filters.StrictFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "accounts.api.schema.AutoSchema",
    "DEFAULT_METADATA_CLASS": "accounts.api.metadata.SafeMetadata",  # OPTIONS never a 500
    "EXCEPTION_HANDLER": "accounts.api.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "accounts.api.throttling.TokenRateThrottle",
        "accounts.api.throttling.UserRateThrottle",
        "accounts.api.throttling.AnonRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": API_RATES,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Rigwarden API",
    "DESCRIPTION": "Fleet management for bitcoin miners. Authenticate with a session or `Authorization: Token <token>`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # Scoped models' ``objects`` only restricts; every model (User included) has ``unscoped``.
    "DEFAULT_QUERY_MANAGER": "unscoped",
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "fleet.models.jobs.JobStatus",
        "InvitationStatusEnum": "accounts.models.invitations.InvitationStatus",
        "MinerHealthEnum": "fleet.models.miners.MinerHealth",
        "TerminalSessionStateEnum": "terminals.models.SessionState",
        # the invitations' "state" keeps the name it had before terminal sessions had one
        "StateEnum": ["pending", "expired", "accepted", "declined", "revoked"],
    },
    "COMPONENT_SPLIT_REQUEST": True,
    # The API speaks JSON. Form posts are still parsed (an HTML form may post to it), but an empty
    # form field means "left out", which no JSON schema can say: documented is JSON alone.
    "PARSER_WHITELIST": ["rest_framework.parsers.JSONParser"],
    # The schema describes an open-source API, not data: public, so clients can generate bindings.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Logging --------------------------------------------------------------------------------
LOG_LEVEL = (env_str("LOG_LEVEL", "INFO") or "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ConfigError(f"LOG_LEVEL={LOG_LEVEL!r} is not a log level")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # one line per task run (every 2 s for the poll tick) drowns everything else
        "celery.app.trace": {"level": "WARNING"},
    },
}

# --- Product settings ---------------------------------------------------------------------
DISCOVERY_ALLOWED_NETWORKS = env_networks("DISCOVERY_ALLOWED_NETWORKS")
# set by the demo launcher (fleet/demo) for its server only: the simulated miners' password,
# which the discovery page shows for pairing them; empty outside the demo
DEMO_SIM_PASSWORD = env_str("DEMO_SIM_PASSWORD", "") or ""
# miner proxy (proxy/): proxied requests per user per minute; other limits in proxy.limits
PROXY_RATE_PER_MINUTE = env_int("PROXY_RATE_PER_MINUTE", 600, minimum=1)
# Telemetry polling: every miner every interval; due miners split into shards of this size,
# each polled with this many concurrent connections and this deadline per miner.
FLEET_POLL_INTERVAL = env_int("FLEET_POLL_INTERVAL", 10, minimum=2, maximum=3600)
FLEET_POLL_SHARD_SIZE = env_int("FLEET_POLL_SHARD_SIZE", 500, minimum=1, maximum=20000)
FLEET_POLL_CONCURRENCY = env_int("FLEET_POLL_CONCURRENCY", 256, minimum=1, maximum=4096)
FLEET_POLL_DEADLINE = float(env_int("FLEET_POLL_DEADLINE", 8, minimum=1, maximum=60))
# Poll worker processes: shards go to queue poll.<miner id % FLEET_POLL_QUEUES>, one
# single-process worker per queue (docs/fleet.md), so a rig is always polled by the same process.
FLEET_POLL_QUEUES = env_int("FLEET_POLL_QUEUES", 4, minimum=1, maximum=256)
# A full status (hashboards, fans, PSUs, errors: several requests) this often; summaries between.
FLEET_FULL_STATUS_INTERVAL = env_int("FLEET_FULL_STATUS_INTERVAL", 60, minimum=10, maximum=86400)
# Samples: raw for hours, 5-minute averages for days, hourly averages for days.
FLEET_RAW_SAMPLE_HOURS = env_int("FLEET_RAW_SAMPLE_HOURS", 48, minimum=1, maximum=24 * 90)
FLEET_ROLLUP_5M_DAYS = env_int("FLEET_ROLLUP_5M_DAYS", 90, minimum=1, maximum=3650)
FLEET_ROLLUP_1H_DAYS = env_int("FLEET_ROLLUP_1H_DAYS", 730, minimum=1, maximum=36500)
# Bulk actions: this many miners at a time, then a pause (a job may set its own).
FLEET_JOB_BATCH_SIZE = env_int("FLEET_JOB_BATCH_SIZE", 10, minimum=1, maximum=10000)
FLEET_JOB_INTERVAL = float(env_int("FLEET_JOB_INTERVAL", 5, minimum=0, maximum=3600))
TRUSTED_PROXIES = env_networks("TRUSTED_PROXIES")
TRUSTED_PROXY_NETWORKS = [ipaddress.ip_network(n) for n in TRUSTED_PROXIES]
METRICS_TOKEN = env_str("METRICS_TOKEN") or None
ACTIVITY_RETENTION_DAYS = env_int("ACTIVITY_RETENTION_DAYS", 365, minimum=1)
LOGIN_EVENT_RETENTION_DAYS = env_int("LOGIN_EVENT_RETENTION_DAYS", 180, minimum=1)

# Terminals (docs/terminals.md): browser SSH sessions kept on the server.
TERMINAL_GRACE_SECONDS = env_int("TERMINAL_GRACE_SECONDS", 600, minimum=1, maximum=86400)
TERMINAL_IDLE_SECONDS = env_int("TERMINAL_IDLE_SECONDS", 3600, minimum=1, maximum=7 * 86400)
TERMINAL_MAX_SECONDS = env_int("TERMINAL_MAX_SECONDS", 12 * 3600, minimum=1, maximum=30 * 86400)
TERMINAL_PER_HOST = env_int("TERMINAL_PER_HOST", 2, minimum=1, maximum=1000)
TERMINAL_PER_USER = env_int("TERMINAL_PER_USER", 10, minimum=1, maximum=1000)
# Sessions are pinned to the replica that started them (a reattach elsewhere closes 4409).
TERMINAL_REPLICA = env_str("TERMINAL_REPLICA") or f"{os.uname().nodename}:{os.getpid()}"
