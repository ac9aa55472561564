"""What the benchmarks share: a throwaway environment, and the server as scripts/serve runs it."""

from __future__ import annotations

import os
import secrets
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def require(condition: bool, message: object) -> None:
    if not condition:
        raise SystemExit(f"benchmark aborted: {message}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int) -> None:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"benchmark aborted: nothing listens on port {port}")


def bench_environment(workdir: str) -> dict[str, str]:
    """Fresh secrets and a database in `workdir` (or DATABASE_URL's), quiet logs."""
    return {
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "ENV_FILE": "/nonexistent",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "SALT_KEY": secrets.token_urlsafe(16),
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1,testserver",
        # Quiet: every login is logged at INFO; the server's warnings are reported.
        "LOG_LEVEL": "WARNING",
        # An existing directory (WhiteNoise warns of a missing one); no files are served.
        "STATIC_ROOT": workdir,
        "DATABASE_URL": os.environ.get("DATABASE_URL", f"sqlite:///{workdir}/bench.sqlite3"),
    }


def server_command(port: int, workers: int) -> list[str]:
    """As scripts/serve runs it, on loopback, without its access log."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "config.asgi:application",
        "--worker-class",
        "config.workers.UvicornWorker",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--log-level",
        "warning",
    ]


def server_processes(master: int) -> list[int]:
    """The gunicorn master's pid, then its workers'."""
    workers = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [master, *sorted(map(int, workers))]


def cpu_seconds(pid: int) -> float:
    """The CPU a process has used so far, user and system."""
    # utime and stime, the 14th and 15th fields; the name before them may hold spaces.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def providers_with_models(models_per_provider: int, *, base_url: str, restricted: bool) -> None:
    """Every provider type's row (migrate made them) with a key, `base_url` and
    `models_per_provider` models, the first type's first the default; with `restricted`, every
    other model kept to some groups. Call after django.setup() and migrate."""
    from llmadmin.models import LLMModel, Provider
    from llmadmin.providers import PROVIDER_TYPES

    for index, slug in enumerate(PROVIDER_TYPES):
        provider = Provider.objects.get(type=slug)
        provider.api_key, provider.base_url = f"sk-bench-{index}", base_url
        provider.region = "us-east-1"
        provider.full_clean()
        provider.save()
        LLMModel.objects.bulk_create(
            LLMModel(
                provider=provider,
                identifier=f"{slug}-model-{n}",
                display_name=f"{slug} model {n:04d}",
                context_limit=200_000,
                is_default=(index == 0 and n == 0),
                restricted=restricted and n % 2 == 1,
            )
            for n in range(models_per_provider)
        )
    require(Provider.objects.count() == len(PROVIDER_TYPES), "providers were not created")
