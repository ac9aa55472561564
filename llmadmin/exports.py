"""What the admin's CSV exports (the audit, usage) share."""

from __future__ import annotations


def spreadsheet_safe(text: str) -> str:
    """A cell a spreadsheet won't run as a formula: a display name may start with "="."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
