"""Create a superuser named admin with a generated password when no superuser exists.

Usage: manage.py ensure_superuser

Used by scripts/run so a new set-up can log in to the admin at once. The password is printed
once and written to var/admin-password (readable by its owner only); change it with
`manage.py changepassword admin`.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args: Any, **options: Any) -> None:
        users = get_user_model().objects
        if users.filter(is_superuser=True).exists():
            self.stdout.write("A superuser exists already.")
            return
        password = secrets.token_urlsafe(16)
        users.create_superuser(username="admin", email="", password=password)
        password_file = settings.BASE_DIR / "var" / "admin-password"
        password_file.parent.mkdir(exist_ok=True)
        password_file.touch(mode=0o600)
        password_file.write_text(password + "\n")
        self.stdout.write(f"Created superuser admin with password {password}")
        self.stdout.write(f"(also in {password_file}; change it with manage.py changepassword)")
