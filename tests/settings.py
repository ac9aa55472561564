"""The project settings with fixed test secrets, set before config.settings reads them."""

import os

os.environ["SECRET_KEY"] = "test-secret-key-not-for-production"
os.environ["SALT_KEY"] = "test-salt"
os.environ.pop("SECRET_KEY_FALLBACKS", None)

from config.settings import *  # noqa: F403

DEBUG = False
# No collectstatic in tests: plain storage instead of the hashed manifest.
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = False
# Fast hashing: tests create users, they don't need slow password hashes.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# WhiteNoise finds files in the apps and looks them up per request (tests never fill
# STATIC_ROOT): the ASGI test server serves static files through it.
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True
if DATABASES["default"]["ENGINE"] == "config.sqlite":  # noqa: F405
    # In memory, as Django's SQLite backend tests by default: pytest-django knows that backend
    # by its name only, and would give each xdist worker a file named after the database's path.
    DATABASES["default"].setdefault("TEST", {})["NAME"] = ":memory:"  # noqa: F405
    DATABASES["default"]["ENGINE"] = "tests.sqlite"  # noqa: F405
elif DATABASES["default"]["ENGINE"] == "config.postgresql":  # noqa: F405
    DATABASES["default"]["ENGINE"] = "tests.postgresql"  # noqa: F405
