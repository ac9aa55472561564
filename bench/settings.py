"""The project's settings with the floor endpoint's URL added, for bench/api_models.py."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
