"""The gunicorn worker scripts/serve runs: uvicorn, with the connecting address left alone."""

from __future__ import annotations

from typing import Any

from uvicorn_worker import UvicornWorker as BaseWorker

# uvicorn would otherwise replace the connecting address with one from X-Forwarded-For when
# the peer is in FORWARDED_ALLOW_IPS (127.0.0.1 by default): a client next to the server
# could then name any address, and login throttling counts failures by address. The app
# reads that header itself, as far as TRUSTED_PROXY_COUNT trusts it
# (config.security.client_ip_address), and X-Forwarded-Proto by SECURE_PROXY_SSL_HEADER.
UVICORN_OPTIONS: dict[str, Any] = {"proxy_headers": False}


class UvicornWorker(BaseWorker):
    CONFIG_KWARGS = {**BaseWorker.CONFIG_KWARGS, **UVICORN_OPTIONS}
