"""Benchmark GET /api/v1/models/ against a floor, both served by gunicorn on 127.0.0.1.

Usage: .venv/bin/python bench/api_models.py [--requests N] [--concurrency C] [--rounds R]

Sets up a throwaway SQLite database (or DATABASE_URL's) with 8 providers x 25 models, logs a
developer in, and sends the same bounded load to the model list and to a floor endpoint that
returns the same bytes pre-rendered through the same stack. Prints requests/s of each (best of
the rounds, interleaved), their ratio (target >= 0.8) and the queries each request runs.
"""

from __future__ import annotations

import argparse
import http.client
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROVIDERS, MODELS_PER_PROVIDER = 8, 25


def require(condition: bool, message: object) -> None:
    if not condition:
        raise SystemExit(f"benchmark aborted: {message}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare(environment: dict[str, str]) -> tuple[str, dict[str, int]]:
    """Migrate and fill the database; return a session cookie and queries per request."""
    os.environ.update(environment)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from llmadmin.models import LLMModel, Provider
    from llmadmin.providers import PROVIDER_TYPES

    call_command("migrate", verbosity=0)
    for index, slug in enumerate(PROVIDER_TYPES):
        # migrate made the row of every type.
        provider = Provider.objects.get(type=slug)
        provider.api_key, provider.base_url = f"sk-bench-{index}", "http://proxy:1/v1"
        provider.region = "us-east-1"
        provider.full_clean()
        provider.save()
        LLMModel.objects.bulk_create(
            LLMModel(
                provider=provider,
                identifier=f"{slug}-model-{n}",
                display_name=f"{slug} model {n:02d}",
                context_limit=200_000,
                is_default=(index == 0 and n == 0),
            )
            for n in range(MODELS_PER_PROVIDER)
        )
    require(Provider.objects.count() == PROVIDERS, "providers were not created")

    client = Client()
    client.force_login(User.objects.create_user("bench-dev", password=secrets.token_hex()))
    queries = {}
    # The floor renders its bytes on its first request: measure its second.
    for label, path in [
        ("cold", "/api/v1/models/"),
        ("cached", "/api/v1/models/"),
        ("floor", "/bench/floor/"),
        ("floor", "/bench/floor/"),
    ]:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(path)
        require(response.status_code == 200, response.content[:200])
        queries[label] = len(captured)
    return client.cookies["sessionid"].value, queries


def load(port: int, path: str, cookie: str, total: int, concurrency: int) -> tuple[float, bytes]:
    """Send `total` GETs from `concurrency` threads; return requests/s and one body."""
    headers = {"Cookie": f"sessionid={cookie}", "Accept": "application/json"}
    per_thread = total // concurrency

    def worker(_: int) -> bytes:
        body = b""
        for _ in range(per_thread):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            body = response.read()
            require(response.status == 200, (path, response.status))
            connection.close()
        return body

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        bodies = list(pool.map(worker, range(concurrency)))
    return per_thread * concurrency / (time.perf_counter() - started), bodies[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="per endpoint and round")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as workdir:
        environment = {
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "ENV_FILE": "/nonexistent",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "SALT_KEY": secrets.token_urlsafe(16),
            "DEBUG": "false",
            "ALLOWED_HOSTS": "127.0.0.1,testserver",
            "DATABASE_URL": os.environ.get("DATABASE_URL", f"sqlite:///{workdir}/bench.sqlite3"),
        }
        cookie, queries = prepare(environment)
        port = free_port()
        server = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(args.workers),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env={**os.environ, **environment},
        )
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            # Warm both endpoints in every worker before measuring.
            load(port, "/api/v1/models/", cookie, 200, args.concurrency)
            _, floor_body = load(port, "/bench/floor/", cookie, 200, args.concurrency)
            best = {"models": 0.0, "floor": 0.0}
            for _ in range(args.rounds):
                for name, path in (("floor", "/bench/floor/"), ("models", "/api/v1/models/")):
                    rate, body = load(port, path, cookie, args.requests, args.concurrency)
                    best[name] = max(best[name], rate)
                    if name == "models":
                        require(body == floor_body, "the floor must serve the same bytes")
        finally:
            server.terminate()
            server.wait(timeout=10)

    print(
        f"GET /api/v1/models/ ({PROVIDERS} providers x {MODELS_PER_PROVIDER} models, "
        f"{len(floor_body)} bytes), {args.requests} requests x {args.rounds} rounds at "
        f"concurrency {args.concurrency}, gunicorn {args.workers} workers"
    )
    print(f"  model list: {best['models']:8.1f} requests/s")
    print(f"  floor:      {best['floor']:8.1f} requests/s")
    print(f"  ratio:      {best['models'] / best['floor']:8.2f}  (target >= 0.8)")
    print(
        f"  queries per request: cold {queries['cold']}, cached {queries['cached']}, "
        f"floor {queries['floor']}"
    )


if __name__ == "__main__":
    main()
