from __future__ import annotations


def pytest_report_header() -> str:
    from django.db import connection

    return f"database: {connection.vendor}"
