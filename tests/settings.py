"""The project settings with fixed test secrets, set before config.settings reads them."""

import os

os.environ["SECRET_KEY"] = "test-secret-key-not-for-production"
os.environ["SALT_KEY"] = "test-salt"
os.environ.pop("SECRET_KEY_FALLBACKS", None)

from config.settings import *  # noqa: F403

DEBUG = False
# Fast hashing: tests create users, they don't need slow password hashes.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
