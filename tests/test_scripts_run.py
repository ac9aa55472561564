"""scripts/run from a fresh checkout: what it installs and what it says, with python, pip and
uvicorn stood in for by stubs that write down how they were called."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

from django.conf import settings

STUB = '#!/bin/sh\necho "$(basename "$0") $*" >> "$STUB_LOG"\n'


def checkout(tmp_path) -> None:
    """The scripts and pyproject.toml, with a venv whose python and uvicorn are stubs."""
    shutil.copytree(settings.BASE_DIR / "scripts", tmp_path / "scripts")
    shutil.copy(settings.BASE_DIR / "pyproject.toml", tmp_path)
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    for name in ("python", "uvicorn"):
        stub = tmp_path / ".venv" / "bin" / name
        stub.write_text(STUB)
        stub.chmod(stub.stat().st_mode | stat.S_IXUSR)


def run(tmp_path, *command) -> list[str]:
    """What the command printed, run in the checkout; the stubs' calls go to tmp_path/calls."""
    result = subprocess.run(
        command,
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "STUB_LOG": str(tmp_path / "calls")},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.splitlines()


def test_scripts_run_installs_only_what_running_needs_and_says_each_step(tmp_path):
    checkout(tmp_path)
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "admin-password").write_text("as ensure_superuser writes it\n")

    printed = run(tmp_path, tmp_path / "scripts" / "run", "8765")
    later = run(tmp_path, "/bin/bash", "-c", "source scripts/lib.sh; ensure_venv dev")

    assert printed == [
        "Installing dependencies (first run takes a minute or two)…",
        "Wrote .env with new secrets.",
        "Migrating…",
        "Seeding the providers' model catalogs…",
        "Admin: http://127.0.0.1:8765/admin/  (user admin; password in var/admin-password)",
    ]
    quiet = "--quiet --quiet --disable-pip-version-check --no-input"
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls == [
        f"python -m pip install {quiet} -e .",
        "python manage.py migrate --no-input --verbosity 0",
        "python manage.py seed_defaults",
        "python manage.py ensure_superuser",
        "uvicorn config.asgi:application --host 127.0.0.1 --port 8765 --no-proxy-headers "
        "--reload --reload-dir config --reload-dir llmadmin --reload-dir chat",
        # scripts/test's, later: the test tools added to the same venv.
        f"python -m pip install {quiet} -e .[dev]",
    ]
    assert later == ["Installing dependencies (with dev) (first run takes a minute or two)…"]


def test_scripts_run_names_the_password_file_only_when_there_is_one(tmp_path):
    checkout(tmp_path)  # a superuser made otherwise: ensure_superuser writes no file

    printed = run(tmp_path, tmp_path / "scripts" / "run")

    assert printed[-1] == "Admin: http://127.0.0.1:8000/admin/  (log in as your superuser)"
