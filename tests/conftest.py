from __future__ import annotations

import os

# Test secrets, set before Django reads its settings (a local .env does not override them).
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
os.environ.setdefault("SALT_KEY", "test-salt")
