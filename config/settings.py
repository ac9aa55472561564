"""Settings for llmadmin, read from the environment (and a local `.env`) with django-environ.

Secrets have no defaults: a missing SECRET_KEY or SALT_KEY stops start-up with a clear error.
`scripts/run` writes a `.env` with freshly generated secrets for local use.
"""

from __future__ import annotations

import warnings
from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# Variables already in the environment win over the file.
environ.Env.read_env(env.str("ENV_FILE", default=str(BASE_DIR / ".env")))

SECRET_KEY = env.str("SECRET_KEY")
# Old secret keys, tried when decrypting stored API keys during a rotation.
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])
# django-fernet-encrypted-fields derives its keys from SECRET_KEY and each salt;
# the first salt encrypts, the others only decrypt (for rotation).
SALT_KEY = [salt for salt in env.list("SALT_KEY") if salt.strip()]
if not SALT_KEY:  # "SALT_KEY=" is as missing as no SALT_KEY at all
    raise ImproperlyConfigured("Set the SALT_KEY environment variable (it is empty).")
DEBUG = env.bool("DEBUG", default=False)
# Secrets stay hidden in error reports and on the DEBUG error page alike.
DEFAULT_EXCEPTION_REPORTER_FILTER = "config.error_reports.SecretsHiddenFilter"
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])

INSTALLED_APPS = [
    # Django's admin on our site: every admin filters only by what it declares.
    "config.apps.AdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    # Swagger UI's files served by the app itself: the docs load nothing from a CDN.
    "drf_spectacular_sidecar",
    "axes",
    # The audit of admin changes (see llmadmin/audit.py).
    "auditlog",
    "llmadmin",
    "billing",
    "chat",
    "gateway",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Before WhiteNoise, so that static files carry the policies too.
    "csp.middleware.CSPMiddleware",
    "config.security.PermissionsPolicyMiddleware",
    # Serves collected static files efficiently from gunicorn, with far-future caching.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "config.sessions.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Who made each audited change: the logged-in user. Sync-only, and innermost but for axes:
    # under ASGI the whole chain outside it then runs in the request's thread in one go,
    # instead of hopping between the event loop and a thread for each middleware.
    "auditlog.middleware.AuditlogMiddleware",
    # Turns a locked-out login into axes' 429 answer; last, as axes requires.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"

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
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

# Each worker process runs every request's sync part (the middleware chain, a sync view) and
# the streams' database work on one of this many long-lived threads, the least busy
# (config/request_threads.py), each keeping its database connection (SQLite) from one request
# to the next. Two cores run Python code in one thread at a time (the GIL): more threads only
# help while some wait (on the database, or on a provider checked from the admin).
REQUEST_THREADS = env.int("REQUEST_THREADS", default=8)

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Many requests and streams at once would each hold a connection of their own: a pool per
    # worker process bounds them; a request waits for a free connection instead, and answers
    # 503 when none comes (the database is down) within the timeout. A connection goes back
    # to the pool at the end of each request (Django refuses persistent ones with a pool).
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 2,
        "max_size": env.int("DATABASE_POOL_SIZE", default=20),
        "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10),
    }
    # Django's backend, with a pool that checks each connection before handing it out.
    DATABASES["default"]["ENGINE"] = "config.postgresql"
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Concurrent writers: readers don't block the writer (WAL), and a write transaction takes
    # the lock when it begins, so it waits its turn instead of failing midway. It waits in
    # short pauses of its own (config/sqlite), not in SQLite's busy handler, whose pauses grow
    # to 100 ms: a writer polling that slowly loses the lock to the others, again and again.
    # Each long-lived request thread keeps its connection: opening one (Django's functions,
    # the PRAGMAs) cost a fifth of a turn's start.
    DATABASES["default"]["ENGINE"] = "config.sqlite"
    DATABASES["default"]["CONN_MAX_AGE"] = None
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 0.005,
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Django's database sessions, each read with its user in one query (config/sessions.py).
SESSION_ENGINE = "config.sessions"

# axes' backend comes first: it refuses a locked-out login before any password is checked.
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

LANGUAGE_CODE = "en-us"
# Also the budgets' time zone: a month's budget resets at midnight of the 1st here.
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Files of the whole site rather than of one app (the icon).
STATICFILES_DIRS = [BASE_DIR / "static"]
# WhiteNoise answers with a file iterator, which Django under ASGI reads in a thread (static
# files are small, and cached far-future); its warning for each one is noise.
warnings.filterwarnings(
    "ignore",
    message="StreamingHttpResponse must consume synchronous iterators",
    module="django.core.handlers.asgi",
)
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "var" / "static")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed, compressed file names: run `manage.py collectstatic` before serving.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Budget alerts are mailed (billing.budgets). By default they are printed to the console; set
# EMAIL_URL (e.g. smtp+tls://user:password@mail.example.com:587) to send them.
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="llmadmin@localhost")
# Alerts are sent as a turn's cost is stored: a mail server that hangs holds that turn's last
# events this long at most.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)

# HTTPS and cookies. Secure cookies by default outside DEBUG; behind a TLS-terminating proxy,
# set SECURE_PROXY_SSL_HEADER=true (the proxy must set X-Forwarded-Proto).
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Login throttling (django-axes), on every login form (the admin's and /accounts/login/):
# the AXES_FAILURE_LIMITth wrong password for one username from one address locks that pair
# out: it and every attempt for AXES_COOLOFF_MINUTES are refused (429). Per pair, so that
# nobody can lock a colleague out from elsewhere, and one address can't lock out every user.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# A successful login forgets that pair's earlier typos.
AXES_RESET_ON_SUCCESS = True
# Behind proxies every request comes from the nearest proxy's address: the client's address
# is then read from X-Forwarded-For, TRUSTED_PROXY_COUNT entries from its right end (each
# proxy appends the address it was called from; what a client wrote itself is further left).
# At 0 the header is ignored, and the server rewrites no address from it (config/workers.py).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
AXES_CLIENT_IP_CALLABLE = "config.security.client_ip_address"
# The site's page saying how long the lockout lasts, with a way back to the login form.
AXES_LOCKOUT_CALLABLE = "config.security.locked_out"

# Content-Security-Policy (django-csp): only this origin's own files; no inline script or
# style, no plugins, no framing. A view needing more says so with csp_update (the API docs).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        # data: for the small icons the admin's and Swagger UI's stylesheets embed.
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "object-src": [NONE],
    },
}
# Browser features no page here uses, refused for every page (and anything it embeds).
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"

# Logs go to standard error; they never hold a key (tests capture them to prove it).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # The HTTP client libraries stay quiet whatever LOG_LEVEL says. httpx2 and httpcore2
        # log each response's status line and headers (a provider's reason phrase, header or
        # redirect Location may echo the key it received).
        "httpx2": {"level": "CRITICAL"},
        "httpcore2": {"level": "CRITICAL"},
        # botocore logs each SigV4 canonical request at DEBUG, an AWS session token included;
        # its credential chain calls the instance and container endpoints through urllib3,
        # which logs each request line at DEBUG.
        "botocore": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
        # axes' start-up banner, which every manage.py command would print (its lockouts and
        # logins are logged by other loggers).
        "axes.apps": {"level": "WARNING"},
    },
}

# Every call to a provider API has these timeouts, in seconds.
PROVIDER_CONNECT_TIMEOUT = env.float("PROVIDER_CONNECT_TIMEOUT", default=5)
PROVIDER_READ_TIMEOUT = env.float("PROVIDER_READ_TIMEOUT", default=10)
# Every chat answer ends: at this many seconds from the request, or when the provider has
# said nothing of the answer for the idle limit (keep-alive comments and pings don't count).
PROVIDER_STREAM_TIMEOUT = env.float("PROVIDER_STREAM_TIMEOUT", default=600)
PROVIDER_STREAM_IDLE_TIMEOUT = env.float("PROVIDER_STREAM_IDLE_TIMEOUT", default=60)
# A turn under a developer's limits holds a slot, renewed every third of this many seconds
# while it runs: a worker killed mid-turn frees its slots after at most this long.
TURN_LEASE_SECONDS = env.float("TURN_LEASE_SECONDS", default=60)
if not 1 <= TURN_LEASE_SECONDS <= 86400:
    raise ImproperlyConfigured("Set TURN_LEASE_SECONDS to 1 to 86400 (seconds).")

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "agents"
LOGOUT_REDIRECT_URL = "login"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "llmadmin API",
    "DESCRIPTION": "The models developers can chat with, as configured by administrators.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Swagger UI would otherwise show a badge image from validator.swagger.io, telling that
    # site the schema's address (and the Content-Security-Policy refuses it anyway).
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
}

# The audit stores each change as JSON (old, new) per field.
AUDITLOG_STORE_JSON_CHANGES = True
# Correlation ids are ours (an import's), never a request header's.
AUDITLOG_CID_HEADER = None
# auditlog would take the address from X-Forwarded-For as sent, which any client can forge:
# the audit records who, not an address it can't vouch for (axes logs logins by address).
AUDITLOG_DISABLE_REMOTE_ADDR = True
